"""respx for the HTTP backends: routes matched at ``Http11Transport.handle_async_request``.

``HttpBackendClient`` hands its httpx requests straight to its transport (no ``httpx.AsyncClient``
in between), so neither of respx's stock mockers (httpcore's pool, httpx's client) sees them.
This one patches the transport method itself: same routes, same assertions, and the request the
routes see is exactly the one that would have gone on the wire. Use ``respx.mock(using=NAME)``.
"""

from __future__ import annotations

from typing import Any

import httpx
import respx.mocks

NAME = "receiver-backends"


class BackendTransportMocker(respx.mocks.AbstractRequestMocker):
    name = NAME
    targets = ["receiver.lightning._transport.Http11Transport"]
    target_methods = ["handle_async_request"]

    @classmethod
    def to_httpx_request(cls, **kwargs: Any) -> httpx.Request:
        request: httpx.Request = kwargs["request"]
        return request

    @classmethod
    async def from_async_httpx_response(
        cls, httpx_response: httpx.Response, target: Any, **kwargs: Any
    ) -> httpx.Response:
        await httpx_response.aread()
        httpx_response.request = kwargs["request"]
        return httpx_response
