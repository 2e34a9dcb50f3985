"""Transaction status updates: keep the newest status per reference, by the payload's own time.

Handles ``transaction.{deposit,withdrawal,onramp,offramp}.status.updated``, the deprecated
``transaction.status.updated`` and direct-mode deliveries (the bare transaction object). Kotani
does not guarantee order and a later status may correct an earlier one (CANCELLED to SUCCESSFUL,
CONTRACT.md §3), so a delivery replaces the recorded status only when its own time
(``updated_at``, ``updatedAt``, ``timestamp``...) is later; one without a time replaces only a
record that has none either.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_, or_
from sqlalchemy.orm import Session

from receiver.db.sql import dialect_of, upsert
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


STATUSES: Any = TransactionStatus.__table__
KEYS = ("reference_id",)


def _newer(recorded: Any, candidate: Any) -> Any:
    """Whether ``candidate``'s status replaces ``recorded``'s (the upsert's WHERE): a stamped
    status replaces an unstamped or older one; an unstamped one only an unstamped one."""
    return or_(
        and_(candidate.status_at.is_(None), recorded.c.status_at.is_(None)),
        and_(
            candidate.status_at.is_not(None),
            or_(recorded.c.status_at.is_(None), candidate.status_at > recorded.c.status_at),
        ),
    )


async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
    status = text_field(event.data, "status", "transaction_status", "transactionStatus", limit=64)
    if event.reference_id is None or status is None:
        return Handled("no reference or status in the payload: stored only")
    reference_id = event.reference_id
    stamped = event_time(event.data, *TIME_FIELDS)

    def apply(session: Session) -> str:
        row = {
            "reference_id": reference_id,
            "status": status,
            "event_type": event.event_type,
            "status_at": stamped,
            "event_id": event.id,
            "updated_at": utcnow(),
        }
        # One statement: insert, or replace the recorded status when this one is newer.
        statement = upsert(dialect_of(session), STATUSES, KEYS, tuple(row), _newer)
        if session.execute(statement, row).first():
            return f"status {status} recorded"
        current = session.get(TransactionStatus, reference_id)
        assert current is not None
        return f"older than the recorded status: kept {current.status} (event {current.event_id})"

    return Handled(f"status {status}", apply)
