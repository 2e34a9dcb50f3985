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

from sqlalchemy import and_, or_, select
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
    row = {
        "reference_id": event.reference_id,
        "status": status,
        "event_type": event.event_type,
        "status_at": event_time(event.data, *TIME_FIELDS),
        "event_id": event.id,
    }
    return Handled(f"status {status}", apply_many=(record, row))


def record(session: Session, rows: list[dict[str, Any]]) -> list[str | None]:
    """The statuses of a close's events in one statement: insert, or replace each recorded
    status that is older. A close holds one event per reference (a reference is handled by one
    worker at a time, its events one after the other); should one hold two, PostgreSQL refuses
    the statement and the queue closes the events one per transaction."""
    now = utcnow()
    rows = [{**row, "updated_at": now} for row in rows]
    statement = upsert(dialect_of(session), STATUSES, KEYS, tuple(rows[0]), _newer)
    written = set(session.execute(statement, rows).scalars())
    kept = [row["reference_id"] for row in rows if row["reference_id"] not in written]
    current = {}
    if kept:
        query = select(STATUSES).where(STATUSES.c.reference_id.in_(kept))
        current = {found.reference_id: found for found in session.execute(query)}
    notes: list[str | None] = []
    for row in rows:
        if row["reference_id"] in written:
            notes.append(f"status {row['status']} recorded")
        else:
            found = current[row["reference_id"]]
            notes.append(
                f"older than the recorded status: kept {found.status} (event {found.event_id})"
            )
    return notes
