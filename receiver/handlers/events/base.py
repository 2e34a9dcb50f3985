"""What every event handler receives and returns, and how it reports failure.

A handler is ``async (ctx, event) -> Handled``. It may do slow things (mint an invoice, call
Kotani) and short database writes of its own, but the effects that must happen exactly once go in
``Handled.apply``: the worker runs them in the transaction that marks the event done.

    ReceiverError
    └── EventFailed                   event.failed       retried with backoff (then dead)
        └── PermanentFailure          event.permanent    dead at once; ``apply`` still runs
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from receiver.errors import ReceiverError
from receiver.inbox.store import Apply
from receiver.settings import Settings
from receiver.webhooks.jsjson import JSNumber, JSValue

if TYPE_CHECKING:
    from receiver.invoices import InvoiceService
    from receiver.kotani.client import KotaniClient


class EventFailed(ReceiverError):
    """The handler could not finish now; the event is retried with backoff."""

    code = "event.failed"
    status = 503


class PermanentFailure(EventFailed):
    """Retrying cannot help (bad payload, refused credentials): the event goes ``dead``."""

    code = "event.permanent"

    def __init__(self, message: str, apply: Apply | None = None) -> None:
        super().__init__(message)
        self.apply = apply


@dataclass(frozen=True)
class EventContext:
    """The services a handler may use."""

    settings: Settings
    invoices: InvoiceService
    kotani: KotaniClient | None
    """None when ``RECEIVER_KOTANI_API_KEY`` is not set: nothing is sent to Kotani."""
    payment_rechecks: tuple[float, ...] = (2.0, 5.0)
    """Waits before re-asking the backend whether a refund invoice was paid."""


@dataclass(frozen=True)
class InboxEvent:
    """A claimed event, parsed (numbers keep their source text)."""

    id: int
    event_type: str
    reference_id: str | None
    data: dict[str, JSValue]
    attempts: int
    received_at: datetime


@dataclass(frozen=True)
class Handled:
    """A handler's result: a one-line outcome and the effects to commit with it."""

    outcome: str
    apply: Apply | None = field(default=None)


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
