"""The refund record per reference: current state, amounts, invoice, and a step-by-step history.

Handlers change a refund only through ``record`` inside a transaction (usually the one that
closes their event: ``Handled.apply``), so a record and its history line are written together,
once. ``RefundStore`` reads them, each read or write one unit of work (``Database.run``).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from receiver.db.engine import Database
from receiver.db.types import utcnow
from receiver.inbox.models import Refund, RefundHistory, RefundState


def record(
    session: Session,
    reference_id: str,
    *,
    event_id: int | None,
    action: str | None,
    detail: str = "",
    state: RefundState | None = None,
    **fields: Any,
) -> Refund:
    """Create or update the refund of ``reference_id`` and append one history line (``action``)."""
    now = utcnow()
    refund = session.get(Refund, reference_id, with_for_update=True)
    if refund is None:
        refund = Refund(
            reference_id=reference_id,
            state=state or RefundState.INVOICE_NEEDED,
            submissions=0,
            retry_requests=0,
            created_at=now,
            updated_at=now,
        )
        session.add(refund)
    elif state is not None:
        refund.state = state
    for name, value in fields.items():
        if not hasattr(Refund, name):
            raise AttributeError(f"refunds has no column {name}")
        setattr(refund, name, value)
    refund.updated_at = now
    if action is not None:
        session.add(
            RefundHistory(
                reference_id=reference_id,
                event_id=event_id,
                action=action,
                detail=detail[:2000],
                at=now,
            )
        )
    session.flush()
    return refund


class RefundStore:
    """Refund reads and the retry budget, on either database."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, reference_id: str) -> Refund | None:
        """The refund of ``reference_id`` (a detached copy), or None."""

        return await self.db.orm(lambda s: s.get(Refund, reference_id), durable=False)

    async def history(self, reference_id: str) -> list[RefundHistory]:
        """The refund's history, oldest first."""
        query = (
            select(RefundHistory)
            .where(RefundHistory.reference_id == reference_id)
            .order_by(RefundHistory.id)
        )

        return await self.db.orm(lambda s: list(s.execute(query).scalars()), durable=False)

    async def reserve_retry(self, reference_id: str, change: int, limit: int) -> bool:
        """Take (``change=1``) or give back (``-1``) one retry request; False when none is left."""

        def work(session: Session) -> bool:
            refund = record(session, reference_id, event_id=None, action=None)
            if change > 0 and refund.retry_requests >= limit:
                return False
            refund.retry_requests = max(0, refund.retry_requests + change)
            return True

        return await self.db.orm(work)
