"""The async client for Kotani Pay's v3 API (offramp refunds and the crypto bridge).

Follows Kotani's API reference (https://docs.kotanipay.com/api-reference, OpenAPI copies in
``../shared/kotani/``): base URL ``https://sandbox-api.kotanipay.com`` or
``https://api.kotanipay.com``, ``Authorization: Bearer <key>`` (security scheme ``JWT``, type
http/bearer), answers wrapped as ``{"success": bool, "message": str, "data": ...}``. The OpenAPI
documents no request signing towards Kotani, so none is done.

Every call has one deadline (``timeout`` seconds, covering retries and back-off). Calls go out
through ``receiver.outbound`` (the service's one client factory, answers bounded and decoded
once, failures classed once); retries follow ``receiver.retry.RetryPolicy`` (``RETRY``: capped
exponential back-off, full jitter) and happen only where repeating cannot do anything twice:

* GET: on connect errors, timeouts, 429 (honouring ``Retry-After``) and 5xx;
* POST: only when the request provably never reached Kotani (connect error, connect or pool
  timeout). A POST that timed out after sending is *not* repeated: it may have been applied.

Every failure is one ``receiver.kotani.errors.KotaniError`` subclass, raised from the httpx
exception. The API key lives in a ``SecretStr`` and is only ever written into the request header.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel, SecretStr, ValidationError

from receiver import outbound
from receiver.errors import ConfigError, ValidationFailed
from receiver.kotani.errors import (
    MAX_MESSAGE,
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
from receiver.metrics import KOTANI_CALLS
from receiver.outbound import Answer, Fault, StatusClass
from receiver.retry import RetryPolicy
from receiver.settings import Settings

__all__ = ["RETRY", "KotaniClient"]

M = TypeVar("M", bound=BaseModel)

RETRY = RetryPolicy(max_attempts=3, base=0.25, cap=4.0)
"""Three attempts in all, waits of up to 0.25 s then 0.5 s (always inside the call's timeout)."""

log = get_logger("kotani")


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
        retry: RetryPolicy = RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = timeout
        self._retry = retry
        self._sleep = sleep
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._closed = False

    @property
    def _http(self) -> httpx.AsyncClient:
        """The connection pool, built by the first call: its TLS context and httpcore cost every
        start ~70 ms and 3 MB, and without ``RECEIVER_KOTANI_API_KEY`` no call is ever made."""
        if self._client is None:
            if self._closed:
                raise RuntimeError("the Kotani client is closed")
            self._client = outbound.outbound_client(
                timeout=self.timeout, base_url=self.base_url, transport=self._transport
            )
        return self._client

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
        """Close the connection pool (if a call opened one); no call can be made afterwards."""
        self._closed = True
        if self._client is not None:
            await self._client.aclose()

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
            started = time.monotonic()
            retry_after: float | None = None
            try:
                answer = await outbound.exchange(
                    self._http,
                    method,
                    path,
                    timeout=deadline - started,
                    json_body=body,
                    headers=headers,
                )
            except (httpx.HTTPError, TimeoutError, outbound.OutboundError) as exc:
                error, safe = _transport_error(exc, method, path, self.timeout)
                cause: BaseException | None = exc
                KOTANI_CALLS.labels(error.code).inc()
            else:
                KOTANI_CALLS.labels(str(answer.status)).inc()
                log.info(
                    "kotani.response",
                    method=method,
                    path=path,
                    status=answer.status,
                    attempt=attempt,
                    ms=round((time.monotonic() - started) * 1000, 1),
                )
                if answer.ok:
                    return _envelope(answer, method, path)
                error = _status_error(answer, method, path)
                cause = None
                safe = method == "GET" and (answer.status == 429 or answer.status >= 500)
                if isinstance(error, KotaniRateLimited):
                    retry_after = error.retry_after
            delay = self._retry.next_delay(attempt) if retry_after is None else retry_after
            if attempt >= (self._retry.max_attempts or attempt + 1):
                delay = None  # Retry-After never buys an attempt beyond the policy's
            left = deadline - time.monotonic()
            if not safe or delay is None or delay >= left:
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


def _transport_error(
    exc: BaseException, method: str, path: str, timeout: float
) -> tuple[KotaniError, bool]:
    """The error for a call that got no HTTP answer, and whether repeating it is safe.

    Only a request that never reached Kotani (no connection made) may be repeated as a POST.
    """
    fault, detail = outbound.classify(exc)
    error: KotaniError
    if fault is Fault.TIMEOUT:
        error = KotaniTimeout(
            f"Kotani did not answer {method} {path} within {timeout:g} s ({type(exc).__name__})",
            method=method,
            path=path,
        )
    elif fault in (Fault.HOSTILE, Fault.REFUSED, Fault.REDIRECT):
        # Kotani (or something in its place) answered, in a way refused unread: not repeated.
        error = KotaniProtocolError(
            f"Kotani's answer to {method} {path} was refused unread ({detail})",
            method=method,
            path=path,
        )
        return error, False
    else:
        # The exception's text may hold the URL (never the header): its class name is enough.
        error = KotaniUnavailable(
            f"Kotani could not be reached for {method} {path} ({type(exc).__name__})",
            method=method,
            path=path,
        )
    return error, outbound.never_sent(exc) or method == "GET"


def _json(answer: Answer) -> Any:
    try:
        return answer.json()
    except ValueError:
        return None


def _envelope(answer: Answer, method: str, path: str) -> Envelope:
    status = answer.status
    body = _json(answer)
    if not isinstance(body, dict) or not isinstance(body.get("success"), bool):
        raise KotaniProtocolError(
            f"Kotani answered {status} to {method} {path} without its {{success, message, data}}"
            " envelope",
            status_code=status,
            method=method,
            path=path,
        )
    message = outbound.message_of(body.get("message"))
    if not body["success"]:
        raise KotaniRejected(
            f"Kotani refused {method} {path}: "
            f"{outbound.clip(message, limit=MAX_MESSAGE) or 'success=false'}",
            status_code=status,
            kotani_message=message,
            method=method,
            path=path,
        )
    return Envelope(message=message, data=body.get("data"))


_STATUS_ERRORS: dict[StatusClass, type[KotaniError]] = {
    StatusClass.BAD_REQUEST: KotaniBadRequest,
    StatusClass.AUTH: KotaniUnauthorized,
    StatusClass.NOT_FOUND: KotaniNotFound,
    StatusClass.REFUSED: KotaniRejected,
    StatusClass.SERVER: KotaniServerError,
    StatusClass.UNEXPECTED: KotaniProtocolError,
}


def _status_error(answer: Answer, method: str, path: str) -> KotaniError:
    status = answer.status
    body = _json(answer)
    message = outbound.message_of(body.get("message")) if isinstance(body, dict) else ""
    message = message or _reason(status)
    text = (
        f"Kotani answered {status} to {method} {path}: {outbound.clip(message, limit=MAX_MESSAGE)}"
    )
    fields: dict[str, Any] = {
        "status_code": status,
        "kotani_message": message,
        "method": method,
        "path": path,
    }
    kind = outbound.status_class(status)
    if kind is StatusClass.RATE_LIMITED:
        return KotaniRateLimited(
            text, retry_after=_retry_after(answer.headers.get("Retry-After")), **fields
        )
    return _STATUS_ERRORS[kind](text, **fields)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


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
