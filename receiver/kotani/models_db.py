"""Tables of the crypto-bridge area: the deposits we watch and what happened to them.

``bridge_deposits`` holds, per Kotani reference, the last status and refund config we read and
our own regeneration bookkeeping (count, time of the last request, which expiry it replaced), so
the regeneration rules hold across restarts and across replicas sharing the database.
``bridge_deposit_events`` records each change, in order. Migration: ``0003_bridge``.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from receiver.db.models import Base, str_enum
from receiver.db.types import UTCDateTime, utcnow
from receiver.kotani.models import Chain, DepositStatus


class DepositOrigin(StrEnum):
    """How the service came to know a deposit."""

    CREATED = "created"
    """Created through this service (``bridge create``)."""
    WATCHED = "watched"
    """Registered by reference (``bridge watch``)."""


class BridgeEventKind(StrEnum):
    """What changed; also the ``event`` name when forwarded."""

    STATUS_CHANGED = "bridge.status_changed"
    REFUND_CONFIG_CHANGED = "bridge.refund_config_changed"
    REGENERATED = "bridge.regenerated"
    REGENERATION_REFUSED = "bridge.regeneration_refused"
    INVOICE_INVALID = "bridge.invoice_invalid"


class BridgeDepositRecord(Base):
    """One crypto-bridge deposit the service created or was told about."""

    __tablename__ = "bridge_deposits"
    __table_args__ = (Index("ix_bridge_deposits_active", "active"),)

    kotani_reference_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    provider_reference_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    origin: Mapped[DepositOrigin] = mapped_column(
        str_enum(DepositOrigin, "bridge_origin"), nullable=False
    )
    chain: Mapped[Chain | None] = mapped_column(str_enum(Chain, "bridge_chain"), nullable=True)
    status: Mapped[DepositStatus | None] = mapped_column(
        str_enum(DepositStatus, "bridge_status"), nullable=True
    )
    active: Mapped[bool] = mapped_column(Boolean, nullable=False, default=True)
    """Polled by the keeper until the deposit is COMPLETED or REFUNDED."""

    refund_invoice: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Only ever a checked invoice (amount and payment hash matched the config)."""
    refund_payment_hash: Mapped[str | None] = mapped_column(String(128), nullable=True)
    refund_amount_msat: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    invoice_problem: Mapped[str | None] = mapped_column(String(64), nullable=True)
    """The error code of the last failed invoice check, or None."""

    regeneration_count: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    """Regenerations used: ours, raised to Kotani's ``regeneration_count`` when that is higher."""
    last_regenerated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """When the last regeneration request was sent (Kotani's 30 s count from requests)."""
    regenerated_for: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    """The ``expires_at`` the last regeneration replaced (one regeneration per expiry)."""

    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime(), nullable=False, default=utcnow, onupdate=utcnow
    )


class BridgeEventRecord(Base):
    """One change seen on a deposit (status, refund config, regeneration), in order."""

    __tablename__ = "bridge_deposit_events"
    __table_args__ = (Index("ix_bridge_events_reference", "kotani_reference_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kotani_reference_id: Mapped[str] = mapped_column(String(128), nullable=False)
    kind: Mapped[BridgeEventKind] = mapped_column(
        str_enum(BridgeEventKind, "bridge_event_kind"), nullable=False
    )
    detail: Mapped[str] = mapped_column(Text, nullable=False, default="{}")
    """JSON object: what changed (never a secret)."""
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), nullable=False, default=utcnow)
