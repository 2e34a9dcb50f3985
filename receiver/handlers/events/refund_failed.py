"""``refund.failed``: record the error and, if allowed, ask Kotani to retry the refund.

Data (CONTRACT.md §3): ``referenceId, refundStatus: "FAILED", refundAmount, chain, token,
currency, error, totalRetries, timestamp``; Kotani fires it once its own retries are exhausted.
With ``RECEIVER_AUTO_RETRY_REFUND=true`` the handler calls
``POST /api/v3/offramp/retry-refund/{referenceId}``, at most ``RECEIVER_MAX_REFUND_RETRIES``
times per reference over the refund's life. The request is counted (committed) *before* it is
sent, so a timeout that still reached Kotani can never lead to one request too many.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from receiver.db.queue import Apply
from receiver.handlers.events.base import (
    EventContext,
    EventFailed,
    Handled,
    InboxEvent,
    PermanentFailure,
    int_field,
    number_text,
    text_field,
)
from receiver.inbox.models import RefundState
from receiver.kotani.errors import (
    KotaniBadRequest,
    KotaniError,
    KotaniNotFound,
    KotaniRateLimited,
    KotaniRejected,
    KotaniTimeout,
    KotaniUnauthorized,
    KotaniUnavailable,
)
from receiver.refunds.store import record


async def _reserve_retry(ctx: EventContext, reference_id: str, change: int) -> bool:
    """Take (``change=1``) or give back (``-1``) one retry request; False when none is left."""
    return await ctx.refunds.reserve_retry(reference_id, change, ctx.settings.max_refund_retries)


async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
    if event.reference_id is None:
        raise PermanentFailure("refund.failed without a referenceId")
    reference_id = event.reference_id
    data = event.data
    error = text_field(data, "error", "message", limit=1000) or ""
    fields: dict[str, object] = {
        "error": error or None,
        "total_retries": int_field(data.get("totalRetries", None)),
        "refund_amount": number_text(data.get("refundAmount")),
        "chain": text_field(data, "chain", limit=32),
        "token": text_field(data, "token", limit=32),
        "currency": text_field(data, "currency", limit=16),
    }
    retry_note = "automatic retry off (RECEIVER_AUTO_RETRY_REFUND)"
    retried = False
    if ctx.settings.auto_retry_refund:
        if ctx.kotani is None:
            retry_note = "no RECEIVER_KOTANI_API_KEY: retry-refund not called"
        elif not await _reserve_retry(ctx, reference_id, 1):
            retry_note = f"retry budget spent ({ctx.settings.max_refund_retries})"
        else:
            try:
                await ctx.kotani.retry_refund(reference_id)
            except KotaniUnauthorized as exc:
                raise PermanentFailure(
                    "Kotani refused our API key (401): check RECEIVER_KOTANI_API_KEY",
                    apply=_record(event, reference_id, fields, f"retry refused: {exc.code}"),
                ) from exc
            except (KotaniBadRequest, KotaniNotFound, KotaniRejected) as exc:
                retry_note = f"Kotani refused the retry: {exc.kotani_message or exc.code}"
            except (KotaniRateLimited, KotaniUnavailable) as exc:
                if not isinstance(exc, KotaniTimeout):
                    # Never reached Kotani (429, connect error): the request is not spent.
                    await _reserve_retry(ctx, reference_id, -1)
                raise EventFailed(f"retry-refund failed: {exc.code}") from exc
            except KotaniError as exc:
                # A timeout or 5xx may have been applied: it stays counted, so the next attempt
                # of this event records "budget spent" rather than risk one request too many.
                raise EventFailed(f"retry-refund failed: {exc.code}") from exc
            else:
                retried = True
                retry_note = "retry-refund requested"
    return Handled(
        f"refund failed; {retry_note}",
        _record(event, reference_id, fields, retry_note, retried=retried),
    )


def _record(
    event: InboxEvent,
    reference_id: str,
    fields: dict[str, object],
    note: str,
    *,
    retried: bool = False,
) -> Apply:
    def apply(session: Session) -> None:
        record(
            session,
            reference_id,
            event_id=event.id,
            action="refund.failed",
            detail=f"{fields.get('error') or 'no error given'}; {note}",
            state=RefundState.RETRY_REQUESTED if retried else RefundState.FAILED,
            **{k: v for k, v in fields.items() if v is not None},
        )

    return apply
