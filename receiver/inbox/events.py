"""What an event handler receives and returns, and how it reports failure.

A handler is ``async (ctx, event) -> Handled``, injected into the worker (``handlers``: event
type -> handler); the inbox never imports the handlers. It may do slow things (mint an invoice,
call Kotani), but the effects that must happen exactly once go in ``Handled.apply``: the worker
runs them in the transaction that marks the event done (``Handled.apply``, or ``apply_many``
for effects that one statement can write for the many events of a close).

    ReceiverError
    └── EventFailed                   event.failed       retried with backoff (then dead)
        └── PermanentFailure          event.permanent    dead at once; ``apply`` still runs
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.db.queue import Apply, ApplyMany
from receiver.errors import ReceiverError
from receiver.webhooks.jsjson import JSValue


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
    """A handler's result: a one-line outcome and the effects to commit with it.

    ``apply_many`` (function, item): effects written for many events at once (one statement for
    a whole close, not one per event); the function's note for the item replaces the outcome.
    """

    outcome: str
    apply: Apply | None = field(default=None)
    apply_many: tuple[ApplyMany, Any] | None = field(default=None)


Handler = Callable[[Any, InboxEvent], Awaitable[Handled]]
"""``async (context, event) -> Handled``; the context is whatever the composition root made."""
