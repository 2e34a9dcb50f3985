"""What ``/metrics`` reads from the database at scrape time (``receiver.metrics.Snapshot``).

Queue depth by status and the age of the oldest waiting row, for the inbox and the outbox;
refunds by state; the age of the oldest ``refund.lightning.invoice_needed`` not yet handled
(Kotani sends it once and waits: the alert "invoice_needed pending > 10 min" reads this).
Four grouped counts in one read-only transaction; every replica reports the same figures.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from receiver.db import Database
from receiver.db.types import utcnow
from receiver.inbox.models import EventStatus, ForwardMessage, OutboxStatus, Refund, WebhookEvent
from receiver.metrics import Snapshot

INVOICE_NEEDED = "refund.lightning.invoice_needed"
_EVENTS: Any = WebhookEvent.__table__
_OUTBOX: Any = ForwardMessage.__table__
_REFUNDS: Any = Refund.__table__
_WAITING = (EventStatus.PENDING.value, EventStatus.PROCESSING.value)


def _age(now: datetime, oldest: datetime | None) -> float:
    return 0.0 if oldest is None else max(0.0, (now - oldest).total_seconds())


def _read(conn: Connection) -> Snapshot:
    now = utcnow()
    depth: dict[tuple[str, str], int] = {}
    for queue, table in (("inbox", _EVENTS), ("outbox", _OUTBOX)):
        for status, count in conn.execute(
            select(table.c.status, func.count()).group_by(table.c.status)
        ):
            depth[(queue, str(getattr(status, "value", status)))] = int(count)
        for status in ("pending", "dead"):
            depth.setdefault((queue, status), 0)
    inbox_oldest = conn.execute(
        select(func.min(_EVENTS.c.received_at)).where(_EVENTS.c.status.in_(_WAITING))
    ).scalar()
    outbox_oldest = conn.execute(
        select(func.min(_OUTBOX.c.created_at)).where(
            _OUTBOX.c.status == OutboxStatus.PENDING.value
        )
    ).scalar()
    needed_oldest = conn.execute(
        select(func.min(_EVENTS.c.received_at)).where(
            _EVENTS.c.status.in_(_WAITING), _EVENTS.c.event_type == INVOICE_NEEDED
        )
    ).scalar()
    refunds = {
        str(getattr(state, "value", state)): int(count)
        for state, count in conn.execute(
            select(_REFUNDS.c.state, func.count()).group_by(_REFUNDS.c.state)
        )
    }
    return Snapshot(
        queue_depth=depth,
        oldest_pending_seconds={
            "inbox": _age(now, inbox_oldest),
            "outbox": _age(now, outbox_oldest),
        },
        refunds=refunds,
        invoice_needed_oldest_seconds=_age(now, needed_oldest),
    )


async def snapshot(db: Database) -> Snapshot:
    """The figures for one scrape (read only: never flushed)."""
    return await db.run(_read, durable=False)


def _arrived(conn: Connection) -> bool:
    from receiver.db import InvoiceRecord

    invoices: Any = InvoiceRecord.__table__
    for table in (_EVENTS, invoices):
        if conn.execute(select(table.c.id).limit(1)).first() is not None:
            return True
    return False


async def anything_arrived(database_url: str) -> bool:
    """Whether any webhook or generate_invoice_url call has ever reached this database (True
    when it cannot be read: better no hint than a wrong one)."""
    db = Database(database_url)
    try:
        return await db.run(_arrived, durable=False)
    except Exception:  # no database yet, or unreachable
        return True
    finally:
        await db.dispose()
