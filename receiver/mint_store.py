"""The two writes of every mint: take the lease (with the reuse lookup), store the invoice.

They are the hot path's only database work, so each is one unit of work (``Database.run``: one
thread hop on SQLite, one pooled connection on PostgreSQL), written once in SQLAlchemy Core. The
lease transactions skip their flush to disk (``durable=False``: a lease is worthless after a
power loss); the store's flush, next, puts every earlier WAL frame on disk with it.

Lease semantics: a row in ``mint_leases`` per (reference, amount) while one process mints it; a
lease past its expiry was left by a crashed process and is taken over.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import delete, insert, select
from sqlalchemy.engine import Connection

from receiver.db.engine import Database
from receiver.db.models import InvoiceRecord, InvoiceStatusDB, MintLease
from receiver.db.sql import insert_ignore, rowcount


@dataclass(frozen=True)
class StoredInvoice:
    """An invoice row as the mint path needs it."""

    reference_id: str
    amount_msat: int
    bolt11: str
    payment_hash: str
    backend: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True)
class Lookup:
    """The newest pending invoice for (reference, amount) valid until at least ``valid_until``."""

    reference_id: str
    amount_msat: int
    valid_until: datetime


@dataclass(frozen=True)
class Lease:
    key: str
    owner: str
    expires_at: datetime
    now: datetime


class MintStore(Protocol):
    async def take_lease(
        self, lease: Lease, lookup: Lookup | None
    ) -> tuple[bool, StoredInvoice | None]:
        """Take the lease (or a stale one over); with ``lookup``, fetch a reusable invoice too."""
        ...

    async def store(self, invoice: StoredInvoice, lease: Lease) -> None:
        """Insert the invoice and release the lease, in one transaction."""
        ...

    async def drop_lease(self, lease: Lease) -> None: ...

    async def aclose(self) -> None: ...


def pending_query(lookup: Lookup) -> Any:
    return (
        select(
            InvoiceRecord.reference_id,
            InvoiceRecord.amount_msat,
            InvoiceRecord.bolt11,
            InvoiceRecord.payment_hash,
            InvoiceRecord.backend,
            InvoiceRecord.created_at,
            InvoiceRecord.expires_at,
        )
        .where(
            InvoiceRecord.reference_id == lookup.reference_id,
            InvoiceRecord.amount_msat == lookup.amount_msat,
            InvoiceRecord.status == InvoiceStatusDB.PENDING,
            InvoiceRecord.expires_at >= lookup.valid_until,
        )
        .order_by(InvoiceRecord.created_at.desc(), InvoiceRecord.id.desc())
        .limit(1)
    )


def stored_invoice(row: Sequence[Any]) -> StoredInvoice:
    """A row of ``pending_query``'s columns, in order."""
    reference_id, amount_msat, bolt11, payment_hash, backend, created_at, expires_at = row
    return StoredInvoice(
        reference_id=reference_id,
        amount_msat=int(amount_msat),
        bolt11=bolt11,
        payment_hash=payment_hash,
        backend=backend,
        created_at=created_at,
        expires_at=expires_at,
    )


def _invoice_values(invoice: StoredInvoice) -> dict[str, Any]:
    return {
        "reference_id": invoice.reference_id,
        "amount_msat": invoice.amount_msat,
        "bolt11": invoice.bolt11,
        "payment_hash": invoice.payment_hash,
        "backend": invoice.backend,
        "status": InvoiceStatusDB.PENDING,
        "created_at": invoice.created_at,
        "expires_at": invoice.expires_at,
        "updated_at": invoice.created_at,
    }


class SqlMintStore:
    """The mint store on either database (Core statements in units of work)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def take_lease(
        self, lease: Lease, lookup: Lookup | None
    ) -> tuple[bool, StoredInvoice | None]:
        def work(conn: Connection) -> tuple[bool, StoredInvoice | None]:
            # A stale lease (its process died) goes first; then ours, unless one is held.
            conn.execute(
                delete(MintLease).where(
                    MintLease.key == lease.key, MintLease.expires_at < lease.now
                )
            )
            taken = conn.execute(
                insert_ignore(conn, MintLease.__table__, "key").values(
                    key=lease.key, owner=lease.owner, expires_at=lease.expires_at
                )
            )
            if rowcount(taken) != 1:
                return False, None
            if lookup is None:
                return True, None
            found = conn.execute(pending_query(lookup)).first()
            return True, None if found is None else stored_invoice(found)

        return await self.db.run(work, durable=False)

    async def store(self, invoice: StoredInvoice, lease: Lease) -> None:
        values = _invoice_values(invoice)

        def work(conn: Connection) -> None:
            conn.execute(insert(InvoiceRecord).values(**values))
            conn.execute(_lease_delete(lease))

        await self.db.run(work)

    async def drop_lease(self, lease: Lease) -> None:
        await self.db.run(lambda conn: conn.execute(_lease_delete(lease)), durable=False)

    async def aclose(self) -> None:
        return None


def _lease_delete(lease: Lease) -> Any:
    return delete(MintLease).where(MintLease.key == lease.key, MintLease.owner == lease.owner)
