"""Kotani webhook event handlers, one module per event; ``handler_for`` picks one by type.

An event type without a handler (``payment.confirmed``, ``kyc.status.changed``, ``settlement.*``,
``system.event``, anything new) is stored, forwarded, and closed as done with nothing to do:
Kotani must not retry it forever.
"""

from __future__ import annotations

from receiver.handlers.events import (
    invoice_needed,
    refund_completed,
    refund_failed,
    status_updated,
)
from receiver.handlers.events.base import Handler

HANDLERS: dict[str, Handler] = {
    invoice_needed.EVENT_TYPE: invoice_needed.handle,
    "refund.completed": refund_completed.handle,
    "refund.failed": refund_failed.handle,
    **{event_type: status_updated.handle for event_type in status_updated.EVENT_TYPES},
}


def handler_for(event_type: str) -> Handler | None:
    """The handler of ``event_type``, or None when the service has nothing to do for it."""
    return HANDLERS.get(event_type)
