"""LUD-21 verify URLs of lightning-address invoices (receiver.db.models.VerifyUrlRecord)

Revision ID: 0004
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "lnaddress_verify_urls",
        sa.Column("payment_hash", sa.String(64), primary_key=True),
        sa.Column("verify_url", sa.Text(), nullable=False),
        sa.Column("amount_msat", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_lnaddress_verify_urls_expires", "lnaddress_verify_urls", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_lnaddress_verify_urls_expires", table_name="lnaddress_verify_urls")
    op.drop_table("lnaddress_verify_urls")
