"""crypto-bridge deposits and their events (receiver.kotani.models_db)

Revision ID: 0003
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0001"
branch_labels = None
depends_on = None

ORIGINS = ("created", "watched")
CHAINS = (
    "CELO", "ETHEREUM", "ARBITRUM", "AVALANCHE", "BINANCE", "POLYGON", "OPTIMISM", "FUSE",
    "TRON", "PROVENANCE", "SOLANA", "HEDERA", "STELLAR", "BASE", "LISK", "VICTION", "SCROLL",
    "LIGHTNING", "CARDANO",
)  # fmt: skip
STATUSES = (
    "DEPOSIT_INITIATED", "DEPOSIT_CONFIRMED", "PAYMENT_SENT", "PAYMENT_CONFIRMED", "SETTLING",
    "COMPLETED", "FAILED", "SETTLEMENT_UNCONFIRMED", "REFUNDED",
)  # fmt: skip
EVENT_KINDS = (
    "bridge.status_changed",
    "bridge.refund_config_changed",
    "bridge.regenerated",
    "bridge.regeneration_refused",
    "bridge.invoice_invalid",
)


def _enum(values: tuple[str, ...], name: str) -> sa.Enum:
    return sa.Enum(*values, name=name, native_enum=False, create_constraint=True, length=32)


def upgrade() -> None:
    op.create_table(
        "bridge_deposits",
        sa.Column("kotani_reference_id", sa.String(128), primary_key=True),
        sa.Column("provider_reference_id", sa.String(128), nullable=True),
        sa.Column("origin", _enum(ORIGINS, "bridge_origin"), nullable=False),
        sa.Column("chain", _enum(CHAINS, "bridge_chain"), nullable=True),
        sa.Column("status", _enum(STATUSES, "bridge_status"), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("refund_invoice", sa.Text, nullable=True),
        sa.Column("refund_payment_hash", sa.String(128), nullable=True),
        sa.Column("refund_amount_msat", sa.BigInteger, nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("invoice_problem", sa.String(64), nullable=True),
        sa.Column("regeneration_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_regenerated_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("regenerated_for", sa.DateTime(timezone=True), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_bridge_deposits_active", "bridge_deposits", ["active"])
    op.create_table(
        "bridge_deposit_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kotani_reference_id", sa.String(128), nullable=False),
        sa.Column("kind", _enum(EVENT_KINDS, "bridge_event_kind"), nullable=False),
        sa.Column("detail", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index(
        "ix_bridge_events_reference", "bridge_deposit_events", ["kotani_reference_id", "id"]
    )


def downgrade() -> None:
    op.drop_index("ix_bridge_events_reference", table_name="bridge_deposit_events")
    op.drop_table("bridge_deposit_events")
    op.drop_index("ix_bridge_deposits_active", table_name="bridge_deposits")
    op.drop_table("bridge_deposits")
