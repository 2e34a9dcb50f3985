"""The one error tree of kotani-receiver.

Every failure the service reports is a ``ReceiverError`` with a stable machine ``code`` and the
HTTP ``status`` it is answered with. One Starlette handler (``receiver.app``) renders them as
``{"error": {"code", "message"}}``; nothing else turns exceptions into responses. Messages are
written for the caller and never carry secrets (tokens, keys, macaroons, runes, passwords).

    ReceiverError                        500 internal (answered as 503: never a 500)
    ├── RequestError                     400 request.invalid
    │   ├── InvalidJSON                  400 request.invalid_json
    │   ├── UnsupportedMediaType         415 request.unsupported_media_type
    │   ├── PayloadTooLarge              413 request.too_large
    │   ├── RequestTimeout               408 request.timeout (body not received in time)
    │   └── ValidationFailed             422 request.validation
    ├── Unauthorized                     401 auth.unauthorized
    ├── NotFound                         404 not_found
    ├── Conflict                         409 conflict
    ├── ConfigError                      500 config.invalid (start-up; printed as one line)
    ├── BackendError                     503 backend.error: one backend failed one attempt
    │   ├── BackendUnavailable           503 backend.unavailable (connect refused, 5xx)
    │   ├── BackendTimeout               503 backend.timeout
    │   ├── BackendAuthError             503 backend.auth (401/403 from the node)
    │   ├── BackendRejected              503 backend.rejected (the node's own 4xx, message kept)
    │   ├── AmountNotRepresentable       503 backend.amount_precision (sats-only, odd msat)
    │   ├── BackendProtocolError         503 backend.protocol (answer not of the documented shape)
    │   ├── BackendHostile               503 backend.hostile (answer built to exhaust us: gzip
    │   │                                    bomb, huge head or body; a target refused)
    │   ├── BackendCircuitOpen           503 backend.circuit_open (skipped after failures)
    │   └── InvalidInvoice               503 backend.invalid_invoice.<reason> (failed verification)
    ├── MintUnavailable                  503 mint.unavailable: no backend minted in time
    └── StorageUnavailable               503 storage.unavailable: the database failed
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar


class ReceiverError(Exception):
    """Base of every error the service reports; ``code`` is stable, ``status`` is HTTP."""

    code: ClassVar[str] = "internal"
    status: ClassVar[int] = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def error_code(self) -> str:
        """The code of this instance (subclasses may refine it with a reason)."""
        return self.code

    def headers(self) -> dict[str, str]:
        """Extra response headers (``Retry-After`` on 503s, for instance)."""
        return {}


class RequestError(ReceiverError):
    """The caller's request is malformed."""

    code = "request.invalid"
    status = 400


class InvalidJSON(RequestError):
    """The body is not a JSON document (or not the JSON object expected)."""

    code = "request.invalid_json"
    status = 400


class UnsupportedMediaType(RequestError):
    """The Content-Type says the body is not JSON."""

    code = "request.unsupported_media_type"
    status = 415


class PayloadTooLarge(RequestError):
    """The body is larger than this endpoint accepts."""

    code = "request.too_large"
    status = 413

    def headers(self) -> dict[str, str]:
        # The rest of the body is not read: close the connection instead of draining it.
        return {"Connection": "close"}


class RequestTimeout(RequestError):
    """The request body did not arrive in time (a slow or stalled client)."""

    code = "request.timeout"
    status = 408


class ValidationFailed(RequestError):
    """The JSON is well formed but a field is missing or out of range."""

    code = "request.validation"
    status = 422


class Unauthorized(ReceiverError):
    """Missing or wrong credentials (never says which part was wrong)."""

    code = "auth.unauthorized"
    status = 401


class NotFound(ReceiverError):
    """Unknown resource, including an unknown invoice token (which is never echoed)."""

    code = "not_found"
    status = 404


class Conflict(ReceiverError):
    """The request contradicts state already recorded."""

    code = "conflict"
    status = 409


class ConfigError(ReceiverError):
    """A setting is invalid; raised at start-up and printed as one line naming the variable."""

    code = "config.invalid"
    status = 500


class BackendError(ReceiverError):
    """One Lightning backend failed one attempt; the minting path may try the next one."""

    code = "backend.error"
    status = 503

    def __init__(self, message: str, *, backend: str = "") -> None:
        super().__init__(message)
        self.backend = backend


class BackendUnavailable(BackendError):
    """The backend could not be reached, or answered with a server error."""

    code = "backend.unavailable"


class BackendTimeout(BackendError):
    """The backend did not answer within the time left."""

    code = "backend.timeout"


class BackendAuthError(BackendError):
    """The backend refused our credentials (401/403)."""

    code = "backend.auth"


class BackendRejected(BackendError):
    """The backend understood the request and refused it (its 4xx message is kept)."""

    code = "backend.rejected"


class AmountNotRepresentable(BackendError):
    """The backend cannot mint this exact amount (a sats-only backend and an odd msat amount)."""

    code = "backend.amount_precision"


class BackendProtocolError(BackendError):
    """The backend answered, but not in the shape its documentation describes."""

    code = "backend.protocol"


class BackendHostile(BackendError):
    """The backend's answer was refused unread: stacked or unknown encodings, a body or head
    over the caps of ``receiver.outbound``, or a redirect/target the egress rules refuse."""

    code = "backend.hostile"


class BackendCircuitOpen(BackendError):
    """The backend is skipped for a cool-down after consecutive failures."""

    code = "backend.circuit_open"


class InvalidInvoice(BackendError):
    """An invoice failed verification; it is never handed out. ``reason`` names the check."""

    code = "backend.invalid_invoice"

    def __init__(self, reason: str, message: str, *, backend: str = "") -> None:
        super().__init__(message, backend=backend)
        self.reason = reason

    @property
    def error_code(self) -> str:
        return f"{self.code}.{self.reason}"


@dataclass(frozen=True)
class Attempt:
    """One backend attempt inside a mint, as reported to the caller (no secrets)."""

    backend: str
    code: str
    message: str


class MintUnavailable(ReceiverError):
    """No backend produced a verified invoice within the deadline."""

    code = "mint.unavailable"
    status = 503

    def __init__(self, message: str, attempts: Sequence[Attempt] = (), retry_after: int = 5):
        super().__init__(message)
        self.attempts = tuple(attempts)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class StorageUnavailable(ReceiverError):
    """The database did not accept or return what the request needed."""

    code = "storage.unavailable"
    status = 503

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "5"}
