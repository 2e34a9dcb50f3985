"""One outermost ASGI middleware for what every request leaves behind: its request id, its
access-log line and its count in ``receiver_http_responses_total``.

One layer with one ``send`` wrapper, where there were three (request context, access log,
response counter), each with its own wrapper and status recorder, and a lazy logger proxy that
rebuilt its logger on every request, below INFO too.

- The request id: an incoming ``X-Request-ID`` is kept only from a trusted proxy
  (``is_trusted(peer_ip)``, the connection's own address, before any forwarded header is
  believed) and only if it is a short plain token; otherwise a new one is made, so a client
  cannot forge or inject one. It is bound to every line logged while the request runs
  (``receiver.logs.REQUEST_ID``) and returned as ``X-Request-ID``.
- The access line (``http.request``): method, path with its secret segment masked, status,
  milliseconds, and the query string decoded and redacted. Not built at all below INFO.
- The count: by route template (never the path: it may hold a token) and status.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from receiver.logs import REQUEST_ID, get_logger, mask_path, redact
from receiver.metrics import HTTP_RESPONSES

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class Observe:
    """Pure ASGI middleware, outermost (see module)."""

    def __init__(
        self, app: ASGIApp, *, is_trusted: Callable[[str], bool], route_of: Callable[[Scope], str]
    ) -> None:
        self.app = app
        self.is_trusted = is_trusted
        self.route_of = route_of
        # A concrete logger, made once the service has configured logging (not a lazy proxy,
        # which rebuilds its logger on every call).
        self.log: Any = get_logger("http").bind()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self._request_id(scope)
        header = (b"x-request-id", request_id.encode())
        status = 0

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            HTTP_RESPONSES.labels(self.route_of(scope), str(status)).inc()
            if self.log.is_enabled_for(logging.INFO):
                self._access_line(scope, status, started)
            REQUEST_ID.reset(token)

    def _request_id(self, scope: Scope) -> str:
        client = scope.get("client")
        if client and self.is_trusted(client[0]):
            for name, value in scope.get("headers", ()):
                if name == b"x-request-id":
                    text: str = value.decode("latin-1")
                    if _REQUEST_ID.fullmatch(text):
                        return text
        return uuid.uuid4().hex

    def _access_line(self, scope: Scope, status: int, started: float) -> None:
        # Decoded first: a secret spelled with %-escapes is still the secret.
        query = unquote(bytes(scope.get("query_string", b"")).decode("latin-1"))
        extra = {"query": redact(query)} if query else {}
        self.log.info(
            "http.request",
            method=scope.get("method"),
            path=redact(mask_path(str(scope.get("path", "")))),
            status=status,
            ms=round((time.perf_counter() - started) * 1000, 2),
            **extra,
        )
