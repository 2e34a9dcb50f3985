"""The console's door: login with ``RECEIVER_API_KEY``, a signed session cookie, CSRF tokens.

- The key is compared in constant time; a wrong one answers 401 (so ``receiver.ratelimit``
  counts it against the client IP) and is also bounded by ``LOGIN_LIMIT`` failures per IP.
- The session is a cookie signed with itsdangerous under a key derived from RECEIVER_API_KEY
  (HMAC-SHA256 with a fixed label): every replica accepts every replica's cookie, a changed API
  key logs everyone out, and the key itself never leaves the server. It carries the CSRF token
  and its own timestamp (expiry: ``RECEIVER_CONSOLE_SESSION_HOURS``). HttpOnly,
  SameSite=Strict, Secure whenever the request came over https (``request.url.scheme``, after
  a trusted proxy's ``X-Forwarded-Proto``).
- Every POST carries the session's CSRF token in a hidden ``csrf`` field, compared in constant
  time. Without a session a GET is redirected to the login page and a POST answers 403.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import parse
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from starlette.requests import Request

from receiver.settings import Settings

COOKIE = "kr_console"
LOGIN_LIMIT = parse("10/15 minutes")
"""Failed logins one client IP may make before the login form answers 429."""
_LABEL = b"kotani-receiver/console/session/v1"


@dataclass(frozen=True)
class Session:
    """A logged-in operator's session (only the CSRF token: there is one operator role)."""

    csrf: str


class Door:
    """Signs and checks sessions and CSRF tokens for one ``Settings``."""

    def __init__(self, settings: Settings) -> None:
        key = settings.api_key.get_secret_value() if settings.api_key is not None else ""
        self._key = key.encode("utf-8")
        self.enabled = bool(key)
        self.max_age = int(settings.console_session_hours * 3600)
        signing = hmac.new(self._key, _LABEL, hashlib.sha256).digest()
        self._signer = URLSafeTimedSerializer(signing, salt="console-session")
        self._limiter = MovingWindowRateLimiter(MemoryStorage())

    def key_matches(self, given: str) -> bool:
        return self.enabled and hmac.compare_digest(self._key, given.encode("utf-8", "replace"))

    def new_cookie(self) -> tuple[Session, str]:
        session = Session(csrf=secrets.token_urlsafe(24))
        return session, self._signer.dumps({"csrf": session.csrf})

    def session(self, request: Request) -> Session | None:
        """The request's valid, unexpired session, or None."""
        if not self.enabled:
            return None
        cookie = request.cookies.get(COOKIE)
        if not cookie or len(cookie) > 512:
            return None
        try:
            payload = self._signer.loads(cookie, max_age=self.max_age)
        except BadSignature:  # also SignatureExpired
            return None
        csrf = payload.get("csrf") if isinstance(payload, dict) else None
        return Session(csrf=csrf) if isinstance(csrf, str) and csrf else None

    @staticmethod
    def csrf_ok(session: Session, given: object) -> bool:
        if not isinstance(given, str):
            return False
        return hmac.compare_digest(session.csrf.encode(), given.encode("utf-8", "replace"))

    @staticmethod
    def client(request: Request) -> str:
        return request.client.host if request.client else "unknown"

    async def login_allowed(self, request: Request) -> bool:
        return await self._limiter.test(LOGIN_LIMIT, "console-login", self.client(request))

    async def login_failed(self, request: Request) -> None:
        await self._limiter.hit(LOGIN_LIMIT, "console-login", self.client(request))

    def cookie_options(self, request: Request) -> dict[str, object]:
        return {
            "max_age": self.max_age,
            "path": "/console",
            "httponly": True,
            "samesite": "strict",
            "secure": request.url.scheme == "https",
        }
