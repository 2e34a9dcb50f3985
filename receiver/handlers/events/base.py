"""What every event handler receives (``EventContext``) and the payload readers they share.

The result and failure types live below, in ``receiver.inbox.events`` (re-exported here).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from receiver.inbox.events import EventFailed, Handled, InboxEvent, PermanentFailure
from receiver.settings import Settings
from receiver.webhooks.jsjson import JSNumber, JSValue

__all__ = [
    "EventContext",
    "EventFailed",
    "Handled",
    "Handler",
    "InboxEvent",
    "PermanentFailure",
    "event_time",
    "int_field",
    "number_text",
    "text_field",
]

if TYPE_CHECKING:
    from receiver.invoices import InvoiceService
    from receiver.kotani.client import KotaniClient
    from receiver.refunds.store import RefundStore


@dataclass(frozen=True)
class EventContext:
    """The services a handler may use."""

    settings: Settings
    invoices: InvoiceService
    kotani: KotaniClient | None
    """None when ``RECEIVER_KOTANI_API_KEY`` is not set: nothing is sent to Kotani."""
    refunds: RefundStore
    payment_rechecks: tuple[float, ...] = (2.0, 5.0)
    """Waits before re-asking the backend whether a refund invoice was paid."""


Handler = Callable[[EventContext, InboxEvent], Awaitable[Handled]]


def text_field(data: dict[str, JSValue], *names: str, limit: int = 500) -> str | None:
    """The first of ``names`` holding a string (cut at ``limit``), or None."""
    for name in names:
        value = data.get(name)
        if isinstance(value, str):
            return value[:limit]
    return None


def number_text(value: JSValue) -> str | None:
    """A JSON number or numeric string as written (for amounts whose unit is uncertain)."""
    if isinstance(value, JSNumber):
        return value.text[:64]
    if isinstance(value, str) and value.strip():
        try:
            Decimal(value.strip())
        except InvalidOperation:
            return None
        return value.strip()[:64]
    return None


def int_field(value: JSValue) -> int | None:
    """A JSON integer (``10``, ``1e1``) read exactly; anything else None."""
    if isinstance(value, JSNumber):
        try:
            number = value.decimal()
        except InvalidOperation:
            return None
        if number.is_finite() and number.adjusted() <= 30 and number == number.to_integral_value():
            return int(number)
    return None


def event_time(data: dict[str, JSValue], *names: str) -> datetime | None:
    """The first parsable ISO-8601 time (or epoch milliseconds) among ``names``, in UTC."""
    for name in names:
        value = data.get(name)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
        millis = int_field(value) if isinstance(value, JSNumber) else None
        if millis is not None and 0 < millis < 10**14:
            return datetime.fromtimestamp(millis / 1000, UTC)
    return None
