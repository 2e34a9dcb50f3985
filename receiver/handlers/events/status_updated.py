"""Transaction status updates: keep the newest status per reference, by the payload's own time.

Handles ``transaction.{deposit,withdrawal,onramp,offramp}.status.updated``, the deprecated
``transaction.status.updated`` and direct-mode deliveries (the bare transaction object). Kotani
does not guarantee order and a later status may correct an earlier one (CANCELLED to SUCCESSFUL,
CONTRACT.md §3), so a delivery replaces the recorded status only when its own time
(``updated_at``, ``updatedAt``, ``timestamp``...) is later; one without a time replaces only a
record that has none either.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from receiver.db.types import utcnow
from receiver.handlers.events.base import EventContext, Handled, InboxEvent, event_time, text_field
from receiver.inbox.models import TransactionStatus

TIME_FIELDS = (
    "updated_at",
    "updatedAt",
    "timestamp",
    "status_updated_at",
    "statusUpdatedAt",
    "created_at",
    "createdAt",
)
EVENT_TYPES = (
    "transaction.deposit.status.updated",
    "transaction.withdrawal.status.updated",
    "transaction.onramp.status.updated",
    "transaction.offramp.status.updated",
    "transaction.status.updated",
    "direct.transaction",
)


def is_newer(candidate: datetime | None, recorded: datetime | None) -> bool:
    """Whether a status stamped ``candidate`` replaces one stamped ``recorded``."""
    if candidate is None:
        return recorded is None
    return recorded is None or candidate > recorded


async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
    status = text_field(event.data, "status", "transaction_status", "transactionStatus", limit=64)
    if event.reference_id is None or status is None:
        return Handled("no reference or status in the payload: stored only")
    reference_id = event.reference_id
    stamped = event_time(event.data, *TIME_FIELDS)

    def apply(session: Session) -> str:
        current = session.get(TransactionStatus, reference_id, with_for_update=True)
        if current is None:
            session.add(
                TransactionStatus(
                    reference_id=reference_id,
                    status=status,
                    event_type=event.event_type,
                    status_at=stamped,
                    event_id=event.id,
                    updated_at=utcnow(),
                )
            )
        elif is_newer(stamped, current.status_at):
            current.status = status
            current.event_type = event.event_type
            current.status_at = stamped
            current.event_id = event.id
            current.updated_at = utcnow()
        else:
            return (
                f"older than the recorded status: kept {current.status} (event {current.event_id})"
            )
        return f"status {status} recorded"

    return Handled(f"status {status}", apply)
