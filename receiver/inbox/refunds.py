"""The refund record per reference: current state, amounts, invoice, and a step-by-step history.

Handlers change a refund only through ``update_refund`` inside a transaction (usually the one that
closes their event), so a record and its history line are written together, once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db.types import utcnow
from receiver.inbox.models import Refund, RefundHistory, RefundState


async def update_refund(
    session: AsyncSession,
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
    refund = await session.get(Refund, reference_id, with_for_update=True)
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
    await session.flush()
    return refund


async def get_refund(session: AsyncSession, reference_id: str) -> Refund | None:
    """The refund of ``reference_id`` (no lock)."""
    return await session.get(Refund, reference_id)


async def history(session: AsyncSession, reference_id: str) -> list[RefundHistory]:
    """The refund's history, oldest first."""
    query = (
        select(RefundHistory)
        .where(RefundHistory.reference_id == reference_id)
        .order_by(RefundHistory.id)
    )
    return list((await session.execute(query)).scalars())
