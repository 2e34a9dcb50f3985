"""respx for the HTTP backends: routes matched at ``Http11Transport.exchange``.

``HttpBackendClient`` hands its calls (``Call``: method, URL, headers, body) straight to its own
transport, so neither of respx's stock mockers (httpcore's pool, httpx's client) sees them. This
one patches the transport method itself: each call becomes the ``httpx.Request`` the routes
match and the assertions read (headers and body exactly as they would go on the wire, ``Host``
and ``Content-Length`` added as the transport adds them), and the route's ``httpx.Response``
becomes the ``Answer`` the client reads. Use ``respx.mock(using=NAME)``.
"""

from __future__ import annotations

from typing import Any

import httpx
import respx.mocks

from receiver.lightning._transport import Answer, Call

NAME = "receiver-backends"


class BackendTransportMocker(respx.mocks.AbstractRequestMocker):
    name = NAME
    targets = ["receiver.lightning._transport.Http11Transport"]
    target_methods = ["exchange"]

    @classmethod
    def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
        call: Call = kwargs["request"]
        headers = [(b"Host", call.url.netloc), *call.headers]
        if call.body or call.method in ("POST", "PUT", "PATCH"):
            headers.append((b"Content-Length", str(len(call.body)).encode("ascii")))
        return httpx.Request(call.method, call.url, headers=headers, content=call.body)

    @classmethod
    async def from_async_httpx_response(
        cls, httpx_response: httpx.Response, target: Any, **kwargs: Any
    ) -> Answer:
        body = await httpx_response.aread()
        headers = list(httpx_response.headers.raw)
        if httpx_response.headers.get("content-encoding", "identity") != "identity":
            # The route's content is already decoded: what the node would have sent is that.
            headers = [(k, v) for k, v in headers if k.lower() != b"content-encoding"]
        return Answer(httpx_response.status_code, headers, body)
