"""What can go wrong when the receiver calls Kotani Pay's API, mapped once at the boundary.

``receiver.kotani.client`` turns every httpx exception and every non-2xx answer into exactly one
of these (always ``raise ... from exc``); nothing else escapes the client. ``status_code`` is
Kotani's HTTP status, or ``None`` when no HTTP answer arrived (timeout, connect error).
``kotani_message`` is Kotani's own ``message`` field (truncated; never our API key, which is only
ever sent in a header).

    ReceiverError
    └── KotaniError                 502 kotani.error
        ├── KotaniBadRequest        502 kotani.bad_request   (400, and 422: request refused)
        ├── KotaniUnauthorized      502 kotani.unauthorized  (401/403: our API key)
        ├── KotaniNotFound          502 kotani.not_found     (404: unknown reference)
        ├── KotaniRateLimited       503 kotani.rate_limited  (429, ``retry_after`` seconds)
        ├── KotaniRejected          502 kotani.rejected      (any other 4xx, or success=false)
        ├── KotaniServerError       503 kotani.server_error  (5xx)
        ├── KotaniProtocolError     502 kotani.protocol      (a 2xx not in the documented shape)
        └── KotaniUnavailable       503 kotani.unavailable   (no answer: connect error)
            └── KotaniTimeout       503 kotani.timeout       (no answer in time; a POST may
                                                              still have reached Kotani)
"""

from __future__ import annotations

import math
from typing import ClassVar

from receiver.errors import ReceiverError
from receiver.outbound import clip

MAX_MESSAGE = 300
"""Kotani's message is kept, but a huge or hostile body is not copied into our errors."""


class KotaniError(ReceiverError):
    """A call to Kotani's API failed; ``status_code`` is None when Kotani never answered."""

    code: ClassVar[str] = "kotani.error"
    status: ClassVar[int] = 502

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        kotani_message: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.kotani_message = clip(kotani_message, limit=MAX_MESSAGE)
        self.method = method
        self.path = path

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status_code={self.status_code!r}, "
            f"kotani_message={self.kotani_message!r}, method={self.method!r}, path={self.path!r})"
        )


class KotaniBadRequest(KotaniError):
    """Kotani refused the request as invalid (400, or 422 on deposit creation)."""

    code = "kotani.bad_request"


class KotaniUnauthorized(KotaniError):
    """Kotani refused our credentials (401/403): check ``RECEIVER_KOTANI_API_KEY``."""

    code = "kotani.unauthorized"


class KotaniNotFound(KotaniError):
    """Kotani does not know the reference (404)."""

    code = "kotani.not_found"


class KotaniRateLimited(KotaniError):
    """Kotani asked us to slow down (429); ``retry_after`` is its ``Retry-After`` in seconds."""

    code = "kotani.rate_limited"
    status = 503

    def __init__(
        self,
        message: str,
        *,
        retry_after: float | None = None,
        status_code: int | None = 429,
        kotani_message: str = "",
        method: str = "",
        path: str = "",
    ) -> None:
        super().__init__(
            message,
            status_code=status_code,
            kotani_message=kotani_message,
            method=method,
            path=path,
        )
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        if self.retry_after is None:
            return {}
        return {"Retry-After": str(math.ceil(self.retry_after))}


class KotaniRejected(KotaniError):
    """Any other refusal: a 4xx without its own class, or a 2xx envelope with success=false."""

    code = "kotani.rejected"


class KotaniServerError(KotaniError):
    """Kotani failed (5xx)."""

    code = "kotani.server_error"
    status = 503


class KotaniProtocolError(KotaniError):
    """Kotani answered 2xx, but not with the ``{success, message, data}`` shape its docs show."""

    code = "kotani.protocol"


class KotaniUnavailable(KotaniError):
    """No HTTP answer: Kotani could not be reached (the request never left, or got no reply)."""

    code = "kotani.unavailable"
    status = 503


class KotaniTimeout(KotaniUnavailable):
    """No answer within the deadline. A POST may have reached Kotani: it is not retried."""

    code = "kotani.timeout"
