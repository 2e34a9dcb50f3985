"""Tables of the webhook inbox: deliveries, refund records, newest statuses, forwarding outbox.

Migration: ``receiver/db/migrations/versions/0002_webhooks.py`` (keep the two in step). Every
status is a ``StrEnum`` stored as its value (VARCHAR + CHECK), as the invoices table does.

    webhook_events      one row per distinct delivery (unique ``dedup_key``), raw body kept
    refunds             one row per Kotani reference that saw a refund event
    refund_history      what happened to a refund, one line per step, with the event behind it
    transaction_status  the newest status per reference, by the payload's own time
    forward_outbox      events to deliver to the integrator's own app (Standard Webhooks)
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from receiver.db.models import Base, str_enum
from receiver.db.types import UTCDateTime, utcnow


class EventStatus(StrEnum):
    """Where a delivery is in the inbox."""

    PENDING = "pending"
    """Stored, waiting for the worker (also: waiting for its next retry)."""
    PROCESSING = "processing"
    """Claimed by a worker whose lease has not run out."""
    DONE = "done"
    """Handled (or nothing to do for its type); ``outcome`` says what happened."""
    DEAD = "dead"
    """Gave up: permanent failure or too many attempts; ``last_error`` says why."""


class Verification(StrEnum):
    """How a delivery was authenticated before it was stored."""

    SIGNATURE = "signature"
    TOKEN = "token"  # noqa: S105 (a label)
    UNSIGNED = "unsigned"


class RefundState(StrEnum):
    """A refund as far as the receiver knows it."""

    INVOICE_NEEDED = "invoice_needed"
    ACTION_REQUIRED = "action_required"
    """An invoice is ready but could not be submitted (no API key): submit it by hand."""
    INVOICE_SUBMITTED = "invoice_submitted"
    REJECTED = "rejected"
    """invoice_needed could not be served (amounts disagree, Kotani refused): see history."""
    COMPLETED = "completed"
    FAILED = "failed"
    RETRY_REQUESTED = "retry_requested"


class PaymentCheck(StrEnum):
    """Whether the backend confirms that Kotani paid the refund invoice the service minted."""

    PAID = "paid"
    UNCONFIRMED = "unconfirmed"


class OutboxStatus(StrEnum):
    """Delivery of one event to the integrator's app."""

    PENDING = "pending"
    DELIVERED = "delivered"
    DEAD = "dead"


class WebhookEvent(Base):
    """One distinct delivery from Kotani, stored before it was acknowledged."""

    __tablename__ = "webhook_events"
    __table_args__ = (
        Index("ix_webhook_events_claim", "status", "next_attempt_at"),
        Index("ix_webhook_events_reference", "reference_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedup_key: Mapped[str] = mapped_column(String(80), nullable=False, unique=True)
    event_type: Mapped[str] = mapped_column(String(200), nullable=False)
    reference_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    verification: Mapped[Verification] = mapped_column(
        str_enum(Verification, "webhook_verification"), nullable=False
    )
    verification_detail: Mapped[str] = mapped_column(String(64), nullable=False, default="")
    body: Mapped[bytes] = mapped_column(LargeBinary, nullable=False)
    headers: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    status: Mapped[EventStatus] = mapped_column(
        str_enum(EventStatus, "webhook_event_status"), nullable=False, default=EventStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    outcome: Mapped[str | None] = mapped_column(Text, nullable=True)
    duplicates: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class Refund(Base):
    """The refund of one Kotani reference."""

    __tablename__ = "refunds"

    reference_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    state: Mapped[RefundState] = mapped_column(
        str_enum(RefundState, "refund_state"), nullable=False
    )
    amount_msat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    amount_sats: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    refund_amount: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """``refundAmount`` as Kotani wrote it (its unit depends on the event and chain)."""
    chain: Mapped[str | None] = mapped_column(String(32), nullable=True)
    token: Mapped[str | None] = mapped_column(String(32), nullable=True)
    currency: Mapped[str | None] = mapped_column(String(16), nullable=True)
    bolt11: Mapped[str | None] = mapped_column(Text, nullable=True)
    payment_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)
    payment: Mapped[PaymentCheck | None] = mapped_column(
        str_enum(PaymentCheck, "refund_payment_check"), nullable=True
    )
    submissions: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    retry_requests: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    total_retries: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    transaction_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RefundHistory(Base):
    """One step in a refund's life (``action`` is a stable name, e.g. ``invoice.submitted``)."""

    __tablename__ = "refund_history"
    __table_args__ = (Index("ix_refund_history_reference", "reference_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference_id: Mapped[str] = mapped_column(
        String(128), ForeignKey("refunds.reference_id"), nullable=False
    )
    event_id: Mapped[int | None] = mapped_column(
        Integer, ForeignKey("webhook_events.id"), nullable=True
    )
    action: Mapped[str] = mapped_column(String(64), nullable=False)
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class TransactionStatus(Base):
    """The newest status Kotani reported for a reference (by the payload's own time)."""

    __tablename__ = "transaction_status"

    reference_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    status: Mapped[str] = mapped_column(String(64), nullable=False)
    event_type: Mapped[str] = mapped_column(String(200), nullable=False)
    status_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    event_id: Mapped[int] = mapped_column(Integer, ForeignKey("webhook_events.id"), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)


class ForwardMessage(Base):
    """An event waiting to be (or already) delivered to ``RECEIVER_FORWARD_URL``."""

    __tablename__ = "forward_outbox"
    __table_args__ = (Index("ix_forward_outbox_claim", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("webhook_events.id"), nullable=False, unique=True
    )
    message_id: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus, "forward_status"), nullable=False, default=OutboxStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    lease_owner: Mapped[str | None] = mapped_column(String(64), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_status_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
