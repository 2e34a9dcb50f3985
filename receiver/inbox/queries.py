"""Read models of the inbox for the internal API and the CLI (plain JSON-ready dicts).

``list_events`` pages by id (newest first, ``before``), ``get_event`` adds the stored body and
headers, ``refund_view`` gathers a reference's refund record, history, events, newest status and
the invoices minted for it.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from receiver.db import Database, InvoiceRecord
from receiver.db.types import MAX_ID
from receiver.errors import NotFound
from receiver.inbox.models import (
    EventStatus,
    ForwardMessage,
    Refund,
    RefundHistory,
    TransactionStatus,
    WebhookEvent,
)

MAX_PAGE = 500


def _time(moment: datetime | None) -> str | None:
    return None if moment is None else moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def event_summary(event: WebhookEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "type": event.event_type,
        "status": event.status.value,
        "reference_id": event.reference_id,
        "verification": event.verification.value,
        "verification_detail": event.verification_detail,
        "attempts": event.attempts,
        "duplicates": event.duplicates,
        "next_attempt_at": (
            _time(event.next_attempt_at) if event.status is EventStatus.PENDING else None
        ),
        "outcome": event.outcome,
        "last_error": event.last_error,
        "received_at": _time(event.received_at),
        "processed_at": _time(event.processed_at),
    }


def _body(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:  # not JSON, or digits beyond Python's int limit: show the text
        return raw.decode("utf-8", "replace")


async def list_events(
    db: Database,
    *,
    status: EventStatus | None = None,
    event_type: str | None = None,
    reference_id: str | None = None,
    limit: int = 50,
    before: int | None = None,
) -> list[dict[str, Any]]:
    """Events, newest first, filtered; ``before`` pages backwards by id."""
    query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(min(limit, MAX_PAGE))
    if status is not None:
        query = query.where(WebhookEvent.status == status)
    if event_type:
        query = query.where(WebhookEvent.event_type == event_type)
    if reference_id:
        query = query.where(WebhookEvent.reference_id == reference_id)
    if before is not None:
        query = query.where(WebhookEvent.id < before)
    return await db.orm(
        lambda session: [event_summary(e) for e in session.execute(query).scalars()],
        durable=False,
    )


async def get_event(db: Database, event_id: int) -> dict[str, Any]:
    """One event with its body, headers and forwarding state; ``NotFound`` if unknown."""
    if event_id > MAX_ID:
        raise NotFound(f"no event {event_id}")

    def read(session: Session) -> tuple[WebhookEvent | None, ForwardMessage | None]:
        event = session.get(WebhookEvent, event_id)
        query = select(ForwardMessage).where(ForwardMessage.event_id == event_id)
        return event, session.execute(query).scalar_one_or_none()

    event, forward = await db.orm(read, durable=False)
    if event is None:
        raise NotFound(f"no event {event_id}")
    view = event_summary(event)
    view["dedup_key"] = event.dedup_key
    view["headers"] = json.loads(event.headers or "{}")
    view["body"] = _body(event.body)
    if forward is not None:
        view["forward"] = {
            "message_id": forward.message_id,
            "status": forward.status.value,
            "attempts": forward.attempts,
            "last_status_code": forward.last_status_code,
            "last_error": forward.last_error,
            "delivered_at": _time(forward.delivered_at),
        }
    return view


async def refund_view(db: Database, reference_id: str) -> dict[str, Any]:
    """Everything known about the refund of ``reference_id``; ``NotFound`` if nothing is."""

    def read(session: Session) -> tuple[Any, Any, list[dict[str, Any]], list[dict[str, Any]]]:
        refund = session.get(Refund, reference_id)
        status = session.get(TransactionStatus, reference_id)
        steps = (
            session.execute(
                select(RefundHistory)
                .where(RefundHistory.reference_id == reference_id)
                .order_by(RefundHistory.id)
            )
        ).scalars()
        history = [
            {"at": _time(h.at), "action": h.action, "detail": h.detail, "event_id": h.event_id}
            for h in steps
        ]
        invoices = (
            session.execute(
                select(InvoiceRecord)
                .where(InvoiceRecord.reference_id == reference_id)
                .order_by(InvoiceRecord.id.desc())
            )
        ).scalars()
        minted = [
            {
                "payment_hash": i.payment_hash,
                "amount_msat": i.amount_msat,
                "status": i.status.value,
                "backend": i.backend,
                "created_at": _time(i.created_at),
                "expires_at": _time(i.expires_at),
            }
            for i in invoices
        ]
        return refund, status, history, minted

    refund, status, history, minted = await db.orm(read, durable=False)
    events = await list_events(db, reference_id=reference_id, limit=MAX_PAGE)
    if refund is None and status is None and not events and not minted:
        raise NotFound(f"nothing is known about reference {reference_id}")
    view: dict[str, Any] = {"reference_id": reference_id, "refund": None}
    if refund is not None:
        view["refund"] = {
            "state": refund.state.value,
            "amount_msat": refund.amount_msat,
            "amount_sats": refund.amount_sats,
            "refund_amount": refund.refund_amount,
            "chain": refund.chain,
            "token": refund.token,
            "currency": refund.currency,
            "bolt11": refund.bolt11,
            "payment_hash": refund.payment_hash,
            "payment": None if refund.payment is None else refund.payment.value,
            "submissions": refund.submissions,
            "retry_requests": refund.retry_requests,
            "total_retries": refund.total_retries,
            "error": refund.error,
            "transaction_hash": refund.transaction_hash,
            "created_at": _time(refund.created_at),
            "updated_at": _time(refund.updated_at),
            "completed_at": _time(refund.completed_at),
        }
    view["history"] = history
    view["transaction_status"] = (
        None
        if status is None
        else {
            "status": status.status,
            "event_type": status.event_type,
            "status_at": _time(status.status_at),
            "event_id": status.event_id,
        }
    )
    view["invoices"] = minted
    view["events"] = events
    return view
