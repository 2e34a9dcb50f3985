"""The async client for Kotani Pay's v3 API (offramp refunds and the crypto bridge).

Follows Kotani's API reference (https://docs.kotanipay.com/api-reference, OpenAPI copies in
``../shared/kotani/``): base URL ``https://sandbox-api.kotanipay.com`` or
``https://api.kotanipay.com``, ``Authorization: Bearer <key>`` (security scheme ``JWT``, type
http/bearer), answers wrapped as ``{"success": bool, "message": str, "data": ...}``. The OpenAPI
documents no request signing towards Kotani, so none is done.

Every call has one deadline (``timeout`` seconds, covering retries and back-off). Retries, with
exponential back-off and full jitter, happen only where repeating cannot do anything twice:

* GET: on connect errors, timeouts, 429 (honouring ``Retry-After``) and 5xx;
* POST: only when the request provably never reached Kotani (connect error, connect or pool
  timeout). A POST that timed out after sending is *not* repeated: it may have been applied.

Every failure is one ``receiver.kotani.errors.KotaniError`` subclass, raised from the httpx
exception. The API key lives in a ``SecretStr`` and is only ever written into the request header.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from receiver.errors import ConfigError, ValidationFailed
from receiver.kotani.errors import (
    KotaniBadRequest,
    KotaniError,
    KotaniNotFound,
    KotaniProtocolError,
    KotaniRateLimited,
    KotaniRejected,
    KotaniServerError,
    KotaniTimeout,
    KotaniUnauthorized,
    KotaniUnavailable,
    clip,
)
from receiver.kotani.models import (
    BridgeDeposit,
    BridgeDepositRequest,
    BridgeDepositStatus,
    BridgeRate,
    BridgeRateRequest,
    KotaniAck,
    RefundConfig,
    RefundStatus,
)
from receiver.logs import get_logger
from receiver.settings import Settings

__all__ = ["KotaniClient", "RetryPolicy"]

M = TypeVar("M", bound=BaseModel)

USER_AGENT = "kotani-receiver/0.1"
MAX_BODY = 1_000_000
"""Answers larger than this are not parsed (Kotani's are a few kB)."""

log = get_logger("kotani")


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait between attempts: capped exponential, full jitter."""

    attempts: int = 3
    base: float = 0.25
    cap: float = 4.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return rng.uniform(0.0, min(self.cap, self.base * 2 ** (attempt - 1)))


@dataclass(frozen=True)
class Envelope:
    """Kotani's ``{success, message, data}`` wrapper, already checked for shape."""

    message: str
    data: Any


class KotaniClient:
    """Calls Kotani's API. Use as ``async with KotaniClient.from_settings(settings) as kotani:``."""

    def __init__(
        self,
        base_url: str,
        api_key: SecretStr | None,
        timeout: float,
        transport: httpx.AsyncBaseTransport | None = None,
        *,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not cryptography
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            transport=transport,
            timeout=timeout,
            follow_redirects=False,
            headers={"Accept": "application/json", "User-Agent": USER_AGENT},
        )

    @classmethod
    def from_settings(
        cls, settings: Settings, transport: httpx.AsyncBaseTransport | None = None
    ) -> KotaniClient:
        """A client for ``RECEIVER_KOTANI_BASE_URL`` / ``_API_KEY`` / ``_TIMEOUT``."""
        return cls(
            settings.kotani_base_url, settings.kotani_api_key, settings.kotani_timeout, transport
        )

    def __repr__(self) -> str:
        key = "set" if self._api_key is not None else "unset"
        return f"KotaniClient(base_url={self.base_url!r}, api_key={key}, timeout={self.timeout})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    # --- offramp refunds ----------------------------------------------------------------------

    async def submit_refund_invoice(self, reference_id: str, invoice: str) -> KotaniAck:
        """``POST /api/v3/offramp/submit-refund-invoice/{referenceId}`` with ``{"invoice"}``.

        The invoice must be for the exact refund amount, unexpired and unpaid (Kotani checks).
        """
        if not invoice.strip():
            raise ValidationFailed("the refund invoice is empty")
        path = f"/api/v3/offramp/submit-refund-invoice/{_segment(reference_id)}"
        envelope = await self._call("POST", path, {"invoice": invoice.strip()})
        return _ack(envelope)

    async def retry_refund(self, reference_id: str) -> KotaniAck:
        """``POST /api/v3/offramp/retry-refund/{referenceId}`` (no body): retry a FAILED refund."""
        path = f"/api/v3/offramp/retry-refund/{_segment(reference_id)}"
        return _ack(await self._call("POST", path, None))

    async def refund_status(self, reference_id: str) -> RefundStatus:
        """``GET /api/v3/offramp/refund-status/{referenceId}``."""
        path = f"/api/v3/offramp/refund-status/{_segment(reference_id)}"
        envelope = await self._call("GET", path, None)
        return _parse(RefundStatus, envelope, "GET", path)

    async def retry_refunds(self, reference_ids: list[str]) -> KotaniAck:
        """``POST /api/v3/offramp/retry-refunds-multiple`` with ``{"referenceIds": [...]}``."""
        if not reference_ids or any(not ref.strip() for ref in reference_ids):
            raise ValidationFailed("give at least one non-empty reference id")
        path = "/api/v3/offramp/retry-refunds-multiple"
        ids = list(dict.fromkeys(ref.strip() for ref in reference_ids))
        return _ack(await self._call("POST", path, {"referenceIds": ids}))

    # --- crypto bridge ------------------------------------------------------------------------

    async def bridge_rate(self, request: BridgeRateRequest) -> BridgeRate:
        """``POST /api/v3/rate/crypto-bridge``: a ``rate_id`` valid 60 s, single use."""
        path = "/api/v3/rate/crypto-bridge"
        return _parse(BridgeRate, await self._call("POST", path, request.body()), "POST", path)

    async def bridge_create_deposit(self, request: BridgeDepositRequest) -> BridgeDeposit:
        """``POST /api/v3/deposit/crypto-bridge`` (seed 004)."""
        path = "/api/v3/deposit/crypto-bridge"
        return _parse(BridgeDeposit, await self._call("POST", path, request.body()), "POST", path)

    async def bridge_status(self, kotani_reference_id: str) -> BridgeDepositStatus:
        """``GET /api/v3/deposit/crypto-bridge/status/{kotani_reference_id}`` (seed 003)."""
        path = f"/api/v3/deposit/crypto-bridge/status/{_segment(kotani_reference_id)}"
        return _parse(BridgeDepositStatus, await self._call("GET", path, None), "GET", path)

    async def bridge_refund_config(self, kotani_reference_id: str) -> RefundConfig:
        """``GET /api/v3/deposit/crypto-bridge/{kotani_reference_id}/refund-config`` (seed 001)."""
        path = f"/api/v3/deposit/crypto-bridge/{_segment(kotani_reference_id)}/refund-config"
        return _parse(RefundConfig, await self._call("GET", path, None), "GET", path)

    async def bridge_regenerate_refund_config(
        self, kotani_reference_id: str
    ) -> RefundConfig | None:
        """``POST .../crypto-bridge/{kotani_reference_id}/refund-config`` (seed 000).

        Raw call: the rules are enforced by ``receiver.kotani.bridge`` before this is called.
        The 200 body is undocumented: the new refund config when Kotani returns one, else None
        (the regeneration still happened; read it back with ``bridge_refund_config``).
        """
        path = f"/api/v3/deposit/crypto-bridge/{_segment(kotani_reference_id)}/refund-config"
        envelope = await self._call("POST", path, None)
        if isinstance(envelope.data, dict) and "primary_method" in envelope.data:
            return _parse(RefundConfig, envelope, "POST", path)
        return None

    # --- transport ----------------------------------------------------------------------------

    def _auth(self) -> dict[str, str]:
        if self._api_key is None or not self._api_key.get_secret_value():
            raise ConfigError("RECEIVER_KOTANI_API_KEY is not set: Kotani's API needs it")
        return {"Authorization": f"Bearer {self._api_key.get_secret_value()}"}

    async def _call(self, method: str, path: str, body: dict[str, Any] | None) -> Envelope:
        headers = self._auth()
        deadline = time.monotonic() + self.timeout
        attempt = 0
        while True:
            attempt += 1
            remaining = deadline - time.monotonic()
            started = time.monotonic()
            retry_after: float | None = None
            try:
                if remaining <= 0:
                    raise TimeoutError
                request = self._http.build_request(
                    method, path, json=body, headers=headers, timeout=httpx.Timeout(remaining)
                )
                # httpx's timeouts are per network operation; the outer one bounds the whole call.
                async with asyncio.timeout(remaining):
                    response = await self._http.send(request, stream=True)
                    try:
                        content = await _read_capped(response)
                    finally:
                        await response.aclose()
            except (httpx.HTTPError, TimeoutError) as exc:
                error, safe = _transport_error(exc, method, path, self.timeout)
                cause: BaseException | None = exc
            else:
                log.info(
                    "kotani.response",
                    method=method,
                    path=path,
                    status=response.status_code,
                    attempt=attempt,
                    ms=round((time.monotonic() - started) * 1000, 1),
                )
                if 200 <= response.status_code < 300:
                    return _envelope(response.status_code, content, method, path)
                error = _status_error(response, content, method, path)
                cause = None
                safe = method == "GET" and (
                    response.status_code == 429 or response.status_code >= 500
                )
                if isinstance(error, KotaniRateLimited):
                    retry_after = error.retry_after
            delay = self._retry.delay(attempt, self._rng) if retry_after is None else retry_after
            left = deadline - time.monotonic()
            if not safe or attempt >= self._retry.attempts or delay >= left:
                # Kotani's own refusals (4xx) are answers, not faults: the caller reports them.
                refused = error.status_code is not None and error.status_code < 500
                (log.info if refused else log.warning)(
                    "kotani.failed",
                    method=method,
                    path=path,
                    code=error.code,
                    status=error.status_code,
                    attempt=attempt,
                )
                if cause is None:
                    raise error
                raise error from cause
            log.warning(
                "kotani.retry",
                method=method,
                path=path,
                code=error.code,
                status=error.status_code,
                attempt=attempt,
                delay=round(delay, 3),
            )
            await self._sleep(delay)


def _segment(value: str) -> str:
    """One URL path segment: non-empty, every reserved character quoted (``/`` included)."""
    if not isinstance(value, str) or not value.strip():
        raise ValidationFailed("the reference id is empty")
    return quote(value.strip(), safe="")


async def _read_capped(response: httpx.Response) -> bytes:
    """The body, cut at ``MAX_BODY`` (a cut body then fails to parse: a protocol error)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size > MAX_BODY:
            break
    return b"".join(chunks)[:MAX_BODY]


def _transport_error(
    exc: BaseException, method: str, path: str, timeout: float
) -> tuple[KotaniError, bool]:
    """The error for a call that got no HTTP answer, and whether repeating it is safe.

    Only a request that never reached Kotani (no connection made) may be repeated as a POST.
    """
    never_sent = isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    error: KotaniError
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        error = KotaniTimeout(
            f"Kotani did not answer {method} {path} within {timeout:g} s ({type(exc).__name__})",
            method=method,
            path=path,
        )
    else:
        # The exception's text may hold the URL (never the header): its class name is enough.
        error = KotaniUnavailable(
            f"Kotani could not be reached for {method} {path} ({type(exc).__name__})",
            method=method,
            path=path,
        )
    return error, never_sent or method == "GET"


def _json(content: bytes) -> Any:
    try:
        return json.loads(content)
    except (ValueError, UnicodeDecodeError):
        return None


def _message_of(body: Any) -> str:
    """Kotani's ``message`` (NestJS validation errors send a list of messages)."""
    if not isinstance(body, dict):
        return ""
    message = body.get("message")
    if isinstance(message, list):
        return "; ".join(str(part) for part in message)
    return "" if message is None else str(message)


def _envelope(status: int, content: bytes, method: str, path: str) -> Envelope:
    body = _json(content)
    if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
        raise KotaniProtocolError(
            f"Kotani answered {status} to {method} {path} without its {{success, message, data}}"
            " envelope",
            status_code=status,
            method=method,
            path=path,
        )
    message = _message_of(body)
    if not body["success"]:
        raise KotaniRejected(
            f"Kotani refused {method} {path}: {clip(message) or 'success=false'}",
            status_code=status,
            kotani_message=message,
            method=method,
            path=path,
        )
    return Envelope(message=message, data=body.get("data"))


_STATUS_ERRORS: dict[int, type[KotaniError]] = {
    400: KotaniBadRequest,
    401: KotaniUnauthorized,
    403: KotaniUnauthorized,
    404: KotaniNotFound,
    422: KotaniBadRequest,
}


def _status_error(response: httpx.Response, content: bytes, method: str, path: str) -> KotaniError:
    status = response.status_code
    message = _message_of(_json(content)) or response.reason_phrase
    text = f"Kotani answered {status} to {method} {path}: {clip(message)}"
    fields: dict[str, Any] = {
        "status_code": status,
        "kotani_message": message,
        "method": method,
        "path": path,
    }
    if status == 429:
        return KotaniRateLimited(
            text, retry_after=_retry_after(response.headers.get("Retry-After")), **fields
        )
    if status >= 500:
        return KotaniServerError(text, **fields)
    if 400 <= status < 500:
        return _STATUS_ERRORS.get(status, KotaniRejected)(text, **fields)
    return KotaniProtocolError(text, **fields)


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _parse(model: type[M], envelope: Envelope, method: str, path: str) -> M:
    try:
        return model.model_validate(envelope.data)
    except ValidationError as exc:
        fields = ", ".join(
            ".".join(str(part) for part in error["loc"]) or "data"
            for error in exc.errors(include_input=False, include_url=False)[:5]
        )
        raise KotaniProtocolError(
            f"Kotani's answer to {method} {path} is not the documented {model.__name__}"
            f" (bad fields: {fields})",
            status_code=200,
            kotani_message=envelope.message,
            method=method,
            path=path,
        ) from exc


def _ack(envelope: Envelope) -> KotaniAck:
    return KotaniAck(message=envelope.message, data=envelope.data)
