"""ORM base and the ``invoices`` table (other areas keep their tables in their own modules)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Enum, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from receiver.db.types import UTCDateTime, utcnow


class Base(DeclarativeBase):
    """Declarative base of every table."""


class InvoiceStatusDB(StrEnum):
    """Lifecycle of an invoice the service handed out."""

    PENDING = "pending"
    PAID = "paid"
    EXPIRED = "expired"


def str_enum(enum: type[StrEnum], name: str) -> Enum:
    """A StrEnum column stored as its value (VARCHAR + CHECK, portable across databases)."""
    return Enum(
        enum,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class InvoiceRecord(Base):
    """One invoice minted for a reference, verified before it was stored."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_reference_amount", "reference_id", "amount_msat"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    reference_id: Mapped[str] = mapped_column(String(128), nullable=False)
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    bolt11: Mapped[str] = mapped_column(Text, nullable=False)
    payment_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    backend: Mapped[str] = mapped_column(String(64), nullable=False)
    status: Mapped[InvoiceStatusDB] = mapped_column(
        str_enum(InvoiceStatusDB, "invoice_status"), nullable=False, default=InvoiceStatusDB.PENDING
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    paid_msat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class MintLease(Base):
    """A short lease on (reference, amount) so that only one process mints for it at a time."""

    __tablename__ = "mint_leases"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    owner: Mapped[str] = mapped_column(String(64), nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)


class VerifyUrlRecord(Base):
    """A LUD-21 verify URL of an invoice minted through a lightning address (``lnaddress``)."""

    __tablename__ = "lnaddress_verify_urls"
    __table_args__ = (Index("ix_lnaddress_verify_urls_expires", "expires_at"),)

    payment_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    verify_url: Mapped[str] = mapped_column(Text, nullable=False)
    amount_msat: Mapped[int] = mapped_column(BigInteger, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False)
