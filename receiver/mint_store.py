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
from datetime import UTC, datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, delete, insert, select
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


_INVOICES: Any = InvoiceRecord.__table__
_LEASES: Any = MintLease.__table__

# Built once with bound parameters: building a statement costs more than running it here.
PENDING = (
    select(
        _INVOICES.c.reference_id,
        _INVOICES.c.amount_msat,
        _INVOICES.c.bolt11,
        _INVOICES.c.payment_hash,
        _INVOICES.c.backend,
        _INVOICES.c.created_at,
        _INVOICES.c.expires_at,
    )
    .where(
        _INVOICES.c.reference_id == bindparam("reference_id"),
        _INVOICES.c.amount_msat == bindparam("amount_msat"),
        _INVOICES.c.status == InvoiceStatusDB.PENDING,
        _INVOICES.c.expires_at >= bindparam("valid_until"),
        _INVOICES.c.created_at >= bindparam("since"),
    )
    .order_by(_INVOICES.c.created_at.desc(), _INVOICES.c.id.desc())
    .limit(1)
)
"""The newest pending invoice for (reference, amount) valid long enough (``pending_params``)."""
_STALE_LEASE = delete(_LEASES).where(
    _LEASES.c.key == bindparam("key"), _LEASES.c.expires_at < bindparam("now")
)
_DROP_LEASE = delete(_LEASES).where(
    _LEASES.c.key == bindparam("key"), _LEASES.c.owner == bindparam("owner")
)
_NEVER = datetime(1970, 1, 1, tzinfo=UTC)


def pending_params(lookup: Lookup, since: datetime | None = None) -> dict[str, Any]:
    """Parameters of ``PENDING``; ``since``: only invoices created from then on."""
    return {
        "reference_id": lookup.reference_id,
        "amount_msat": lookup.amount_msat,
        "valid_until": lookup.valid_until,
        "since": since or _NEVER,
    }


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
        self._take: Any = None

    async def take_lease(
        self, lease: Lease, lookup: Lookup | None
    ) -> tuple[bool, StoredInvoice | None]:
        row = {"key": lease.key, "owner": lease.owner, "expires_at": lease.expires_at}

        def work(conn: Connection) -> tuple[bool, StoredInvoice | None]:
            if self._take is None:
                self._take = insert_ignore(conn, _LEASES, "key")
            # A stale lease (its process died) goes first; then ours, unless one is held.
            conn.execute(_STALE_LEASE, {"key": lease.key, "now": lease.now})
            if rowcount(conn.execute(self._take, row)) != 1:
                return False, None
            if lookup is None:
                return True, None
            found = conn.execute(PENDING, pending_params(lookup)).first()
            return True, None if found is None else stored_invoice(found)

        return await self.db.run(work, durable=False)

    async def store(self, invoice: StoredInvoice, lease: Lease) -> None:
        values = _invoice_values(invoice)
        owned = {"key": lease.key, "owner": lease.owner}

        def work(conn: Connection) -> None:
            conn.execute(insert(_INVOICES), values)
            conn.execute(_DROP_LEASE, owned)

        await self.db.run(work)

    async def drop_lease(self, lease: Lease) -> None:
        owned = {"key": lease.key, "owner": lease.owner}
        await self.db.run(lambda conn: conn.execute(_DROP_LEASE, owned), durable=False)

    async def aclose(self) -> None:
        return None
