"""invoices and mint leases

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

INVOICE_STATUSES = ("pending", "paid", "expired")


def upgrade() -> None:
    op.create_table(
        "invoices",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("reference_id", sa.String(128), nullable=False),
        sa.Column("amount_msat", sa.BigInteger, nullable=False),
        sa.Column("bolt11", sa.Text, nullable=False),
        sa.Column("payment_hash", sa.String(64), nullable=False),
        sa.Column("backend", sa.String(64), nullable=False),
        sa.Column(
            "status",
            sa.Enum(
                *INVOICE_STATUSES,
                name="invoice_status",
                native_enum=False,
                create_constraint=True,
                length=32,
            ),
            nullable=False,
        ),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("paid_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("paid_msat", sa.BigInteger, nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("payment_hash", name="uq_invoices_payment_hash"),
    )
    op.create_index("ix_invoices_reference_amount", "invoices", ["reference_id", "amount_msat"])
    op.create_table(
        "mint_leases",
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("mint_leases")
    op.drop_index("ix_invoices_reference_amount", table_name="invoices")
    op.drop_table("invoices")
