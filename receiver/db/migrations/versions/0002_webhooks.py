"""webhook inbox, refunds, transaction status, forwarding outbox (receiver.inbox.models)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

EVENT_STATUSES = ("pending", "processing", "done", "dead")
VERIFICATIONS = ("signature", "token", "unsigned")
REFUND_STATES = (
    "invoice_needed",
    "action_required",
    "invoice_submitted",
    "rejected",
    "completed",
    "failed",
    "retry_requested",
)
PAYMENT_CHECKS = ("paid", "unconfirmed")
OUTBOX_STATUSES = ("pending", "delivered", "dead")


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def _when(name: str, nullable: bool = False) -> sa.Column:  # type: ignore[type-arg]
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "webhook_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("dedup_key", sa.String(80), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        sa.Column("reference_id", sa.String(128), nullable=True),
        sa.Column("verification", _enum(VERIFICATIONS, "webhook_verification"), nullable=False),
        sa.Column("verification_detail", sa.String(64), nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("headers", sa.Text, nullable=False),
        sa.Column("status", _enum(EVENT_STATUSES, "webhook_event_status"), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("next_attempt_at"),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        _when("lease_expires_at", True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("outcome", sa.Text, nullable=True),
        sa.Column("duplicates", sa.Integer, nullable=False),
        _when("received_at"),
        _when("processed_at", True),
        _when("updated_at"),
        sa.UniqueConstraint("dedup_key", name="uq_webhook_events_dedup_key"),
    )
    op.create_index("ix_webhook_events_claim", "webhook_events", ["status", "next_attempt_at"])
    op.create_index("ix_webhook_events_reference", "webhook_events", ["reference_id"])

    op.create_table(
        "refunds",
        sa.Column("reference_id", sa.String(128), primary_key=True),
        sa.Column("state", _enum(REFUND_STATES, "refund_state"), nullable=False),
        sa.Column("amount_msat", sa.BigInteger, nullable=True),
        sa.Column("amount_sats", sa.BigInteger, nullable=True),
        sa.Column("refund_amount", sa.String(64), nullable=True),
        sa.Column("chain", sa.String(32), nullable=True),
        sa.Column("token", sa.String(32), nullable=True),
        sa.Column("currency", sa.String(16), nullable=True),
        sa.Column("bolt11", sa.Text, nullable=True),
        sa.Column("payment_hash", sa.String(64), nullable=True),
        sa.Column("payment", _enum(PAYMENT_CHECKS, "refund_payment_check"), nullable=True),
        sa.Column("submissions", sa.Integer, nullable=False),
        sa.Column("retry_requests", sa.Integer, nullable=False),
        sa.Column("total_retries", sa.Integer, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("transaction_hash", sa.String(200), nullable=True),
        _when("created_at"),
        _when("updated_at"),
        _when("completed_at", True),
    )
    op.create_table(
        "refund_history",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "reference_id",
            sa.String(128),
            sa.ForeignKey("refunds.reference_id", name="fk_refund_history_refund"),
            nullable=False,
        ),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("webhook_events.id", name="fk_refund_history_event"),
            nullable=True,
        ),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        _when("at"),
    )
    op.create_index("ix_refund_history_reference", "refund_history", ["reference_id", "id"])

    op.create_table(
        "transaction_status",
        sa.Column("reference_id", sa.String(128), primary_key=True),
        sa.Column("status", sa.String(64), nullable=False),
        sa.Column("event_type", sa.String(200), nullable=False),
        _when("status_at", True),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("webhook_events.id", name="fk_transaction_status_event"),
            nullable=False,
        ),
        _when("updated_at"),
    )

    op.create_table(
        "forward_outbox",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column(
            "event_id",
            sa.Integer,
            sa.ForeignKey("webhook_events.id", name="fk_forward_outbox_event"),
            nullable=False,
        ),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("status", _enum(OUTBOX_STATUSES, "forward_status"), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        _when("next_attempt_at"),
        sa.Column("lease_owner", sa.String(64), nullable=True),
        _when("lease_expires_at", True),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("last_status_code", sa.Integer, nullable=True),
        _when("created_at"),
        _when("delivered_at", True),
        sa.UniqueConstraint("event_id", name="uq_forward_outbox_event"),
        sa.UniqueConstraint("message_id", name="uq_forward_outbox_message"),
    )
    op.create_index("ix_forward_outbox_claim", "forward_outbox", ["status", "next_attempt_at"])


def downgrade() -> None:
    op.drop_index("ix_forward_outbox_claim", table_name="forward_outbox")
    op.drop_table("forward_outbox")
    op.drop_table("transaction_status")
    op.drop_index("ix_refund_history_reference", table_name="refund_history")
    op.drop_table("refund_history")
    op.drop_table("refunds")
    op.drop_index("ix_webhook_events_reference", table_name="webhook_events")
    op.drop_index("ix_webhook_events_claim", table_name="webhook_events")
    op.drop_table("webhook_events")
