"""Rate limits on the public doors, before any body is read (``limits``, moving windows).

What an unauthenticated client can make the service do is bounded per client IP; what Kotani
does with a valid invoice token is bounded per token, and never by someone else's failures:

- ``/invoices/{token}`` with a configured token: ``RECEIVER_RATE_LIMIT_TOKEN`` per token (Kotani
  calls it a few times a second at most). An unknown token counts as a failure of its IP.
- every other route except ``/healthz`` and ``/readyz`` (cheap, cached): a client IP that has
  had ``RECEIVER_RATE_LIMIT_FAILURES`` refusals (400, 401, 403, 404, 413, 415, 422, 429) within
  the window is answered 429 at once, without its body being read or its signature checked.
  Bogus-signature floods therefore cost one HMAC-free 429 each once the budget is spent.

Each answer 429 carries ``Retry-After``. Counts live in this process (``limits``' memory storage:
several workers or replicas each count their own, so the effective limit is N times higher;
that is a bound on abuse, not an accounting). The client IP is the connection's, or the one a
trusted proxy forwarded (uvicorn's ``forwarded_allow_ips``).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from limits import RateLimitItem, parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

FAILURE_STATUSES = frozenset({400, 401, 403, 404, 405, 413, 415, 422, 429})
_INVOICE_PATH = re.compile(r"^/invoices/([^/]+)$")
_FREE_PATHS = frozenset({"/healthz", "/readyz"})


class StatusRecorder:
    """Wraps ``send``; ``status`` is the response's status once it has started (0 before)."""

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 0

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
        await self._send(message)


def parse_limit(text: str) -> RateLimitItem:
    """``"30/minute"`` and the other forms ``limits`` reads; ``ValueError`` otherwise."""
    return parse(text)


class RateLimit:
    """Pure ASGI middleware; ``valid_token`` is the constant-time check of an invoice token."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        failures: str,
        per_token: str,
        valid_token: Callable[[str], bool],
    ) -> None:
        self.app = app
        self.failures = parse_limit(failures)
        self.per_token = parse_limit(per_token)
        self.valid_token = valid_token
        self.limiter = MovingWindowRateLimiter(MemoryStorage())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _FREE_PATHS:
            await self.app(scope, receive, send)
            return
        client = scope.get("client")
        ip = client[0] if client else "unknown"
        invoice = _INVOICE_PATH.match(scope["path"])
        if invoice is not None and self.valid_token(invoice.group(1)):
            if not await self.limiter.hit(self.per_token, "token", invoice.group(1)):
                await self._refuse(self.per_token, ("token", invoice.group(1)), scope, send)
                return
            await self.app(scope, receive, send)
            return
        if not await self.limiter.test(self.failures, "fail", ip):
            await self._refuse(self.failures, ("fail", ip), scope, send)
            return
        recorder = StatusRecorder(send)
        try:
            await self.app(scope, receive, recorder)
        finally:
            if recorder.status in FAILURE_STATUSES:
                await self.limiter.hit(self.failures, "fail", ip)

    async def _refuse(
        self, item: RateLimitItem, key: tuple[str, str], scope: Scope, send: Send
    ) -> None:
        stats = await self.limiter.get_window_stats(item, *key)
        retry = max(1, int(stats.reset_time - time.time() + 0.999))
        response = JSONResponse(
            {"error": {"code": "rate_limited", "message": "too many requests; slow down"}},
            status_code=429,
            # Close rather than read (and throw away) the body a refused client may still send.
            headers={"Retry-After": str(retry), "Connection": "close"},
        )

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)
