"""``refund.completed``: record it, and confirm with our own node that the refund was paid.

Data (CONTRACT.md §3): ``referenceId, status: "REVERSED", refundStatus: "SUCCESSFUL",
refundTransactionHash, refundAmount, chain, token, currency, timestamp``. ``refundAmount``'s unit
is ambiguous for Lightning, so it is kept as written. Where this service minted the refund
invoice, the backend that minted it is asked whether it is paid (re-asked a few times when not
yet: Kotani may report completion a moment before the payment settles here) and the refund is
recorded ``paid`` or ``unconfirmed``.
"""

from __future__ import annotations

import asyncio

from sqlalchemy.orm import Session

from receiver.db.types import utcnow
from receiver.handlers.events.base import (
    EventContext,
    Handled,
    InboxEvent,
    PermanentFailure,
    number_text,
    text_field,
)
from receiver.inbox.models import PaymentCheck, RefundState
from receiver.lightning.base import InvoiceState
from receiver.refunds.store import record

MAX_CHECKED_INVOICES = 5


async def _payment_hashes(ctx: EventContext, reference_id: str) -> list[str]:
    """The invoices to check: the one submitted to Kotani, else every one minted for it."""
    refund = await ctx.refunds.get(reference_id)
    if refund is not None and refund.payment_hash:
        return [refund.payment_hash]
    minted = await ctx.invoices.for_reference(reference_id)
    return [record.payment_hash for record in minted[:MAX_CHECKED_INVOICES]]


async def confirm_payment(ctx: EventContext, hashes: list[str]) -> str | None:
    """The payment hash our backend reports paid, re-asking after each recheck wait."""
    for wait in (0.0, *ctx.payment_rechecks):
        if wait:
            await asyncio.sleep(wait)
        for payment_hash in hashes:
            status = await ctx.invoices.refresh_status(payment_hash)
            if status is not None and status.state is InvoiceState.PAID:
                return payment_hash
    return None


async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
    if event.reference_id is None:
        raise PermanentFailure("refund.completed without a referenceId")
    reference_id = event.reference_id
    data = event.data
    hashes = await _payment_hashes(ctx, reference_id)
    paid_hash = await confirm_payment(ctx, hashes) if hashes else None
    payment = None if not hashes else PaymentCheck.PAID if paid_hash else PaymentCheck.UNCONFIRMED
    tx_hash = text_field(data, "refundTransactionHash", "transactionHash", limit=200)
    fields = {
        "refund_amount": number_text(data.get("refundAmount")),
        "chain": text_field(data, "chain", limit=32),
        "token": text_field(data, "token", limit=32),
        "currency": text_field(data, "currency", limit=16),
        "transaction_hash": tx_hash,
        "payment": payment,
    }

    def apply(session: Session) -> str:
        detail = f"refundStatus={text_field(data, 'refundStatus', limit=32)}"
        if tx_hash:
            detail += f" tx={tx_hash}"
        record(
            session,
            reference_id,
            event_id=event.id,
            action="refund.completed",
            detail=detail,
            state=RefundState.COMPLETED,
            completed_at=utcnow(),
            **{k: v for k, v in fields.items() if v is not None},
        )
        if payment is not None:
            record(
                session,
                reference_id,
                event_id=event.id,
                action=f"payment.{payment.value}",
                detail=(
                    f"invoice {paid_hash} paid"
                    if paid_hash
                    else f"our backend does not show {', '.join(hashes)} as paid"
                ),
            )
        return "refund completed" + (f"; payment {payment.value}" if payment else "")

    return Handled("refund completed", apply)
