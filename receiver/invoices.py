"""The mint path: one verified, stored, idempotent invoice per (reference, amount).

``InvoiceService.get_or_mint`` is what ``POST /invoices/{token}``, the ``invoice_needed`` webhook
handler and Option A refund configs all call:

1. a repeated request for the same (reference_id, amount_msat) gets the invoice already handed out
   while the backend confirms it is unpaid and it has at least ``MIN_VALIDITY`` left;
2. otherwise one new invoice is minted through ``BackendChain`` (every backend in order, each
   invoice verified) and stored; concurrent identical requests share that one mint: in-process
   through a shared future, across processes through a short lease row in ``mint_leases``. The
   backend call starts while the lease is taken (``_mint_ahead``), so the lease adds no latency
   to a first request; when the lease or a reusable invoice wins, that early invoice is dropped;
3. the whole path (status check, lease, backends, verification, storage) ends by the deadline.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from receiver.amounts import Msat
from receiver.db import Database, InvoiceRecord, InvoiceStatusDB
from receiver.db.types import utcnow
from receiver.errors import BackendError, MintUnavailable, StorageUnavailable
from receiver.lightning.base import InvoiceState, InvoiceStatus
from receiver.lightning.failover import BackendChain, Minted
from receiver.logs import get_logger
from receiver.mint_store import (
    PENDING,
    Lease,
    Lookup,
    MintStore,
    SqlMintStore,
    StoredInvoice,
    pending_params,
    stored_invoice,
)

log = get_logger("invoices")

LEASE_POLL = 0.05
RECENT_KEYS = 10_000
"""How many recently handed-out (reference, amount) keys are remembered (see ``_mint_ahead``)."""
STATUS_CHECK_BUDGET = 2.0
"""At most this long (and at most half the time left) to confirm a reusable invoice is unpaid."""


def rfc3339(moment: datetime) -> str:
    """UTC timestamp as ``2024-11-22T14:30:00Z``."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class IssuedInvoice:
    """An invoice the service stands behind: verified, stored, unpaid when handed out."""

    reference_id: str
    amount_msat: Msat
    bolt11: str
    payment_hash: str
    expires_at: datetime
    backend: str
    created_at: datetime
    reused: bool = False

    def contract_json(self) -> dict[str, object]:
        """The generate_invoice_url answer: bolt11, payment_hash, amount_msat, expires_at."""
        return {
            "bolt11": self.bolt11,
            "payment_hash": self.payment_hash,
            "amount_msat": int(self.amount_msat),
            "expires_at": rfc3339(self.expires_at),
        }

    @classmethod
    def from_record(
        cls, record: InvoiceRecord | StoredInvoice, *, reused: bool = False
    ) -> IssuedInvoice:
        return cls(
            reference_id=record.reference_id,
            amount_msat=Msat(record.amount_msat),
            bolt11=record.bolt11,
            payment_hash=record.payment_hash,
            expires_at=record.expires_at,
            backend=record.backend,
            created_at=record.created_at,
            reused=reused,
        )


class InvoiceService:
    """Mint, reuse and track invoices for references."""

    def __init__(
        self,
        db: Database,
        chain: BackendChain,
        *,
        deadline: float,
        expiry: int,
        min_validity: int,
        description: str,
    ) -> None:
        self.db = db
        self.chain = chain
        self.deadline = deadline
        self.expiry = expiry
        self.min_validity = min_validity
        self.description = description
        self._owner = secrets.token_hex(8)
        self.store: MintStore = SqlMintStore(db)
        self._inflight: dict[tuple[str, int], asyncio.Future[IssuedInvoice]] = {}
        self._recent: OrderedDict[tuple[str, int], float] = OrderedDict()

    async def get_or_mint(
        self,
        reference_id: str,
        amount_msat: Msat,
        *,
        fresh: bool = False,
        deadline: float | None = None,
    ) -> IssuedInvoice:
        """The invoice for (reference, amount): reused while valid and unpaid, else minted.

        ``fresh=True`` never reuses (Kotani refused the previous one as expired or paid).
        Raises ``MintUnavailable`` (or ``StorageUnavailable``) when the deadline passes first.
        """
        loop = asyncio.get_running_loop()
        deadline_at = loop.time() + (self.deadline if deadline is None else deadline)
        key = (reference_id, int(amount_msat))
        shared = self._inflight.get(key)
        if shared is not None and not fresh:
            try:
                async with asyncio.timeout_at(deadline_at):
                    return replace(await asyncio.shield(shared), reused=True)
            except TimeoutError:
                raise MintUnavailable("no invoice could be minted before the deadline") from None
        future: asyncio.Future[IssuedInvoice] = loop.create_future()
        future.add_done_callback(_consume_exception)
        self._inflight[key] = future
        try:
            async with asyncio.timeout_at(deadline_at):
                result = await self._resolve(reference_id, amount_msat, fresh, deadline_at)
        except TimeoutError:
            error = MintUnavailable("no invoice could be minted before the deadline")
            future.set_exception(error)
            raise error from None
        except BaseException as exc:
            future.set_exception(exc)
            raise
        else:
            future.set_result(result)
            return result
        finally:
            if self._inflight.get(key) is future:
                del self._inflight[key]

    async def _resolve(
        self, reference_id: str, amount_msat: Msat, fresh: bool, deadline_at: float
    ) -> IssuedInvoice:
        started = utcnow()
        lookup = None
        if not fresh:
            valid_until = started + timedelta(seconds=self.min_validity)
            lookup = Lookup(reference_id, int(amount_msat), valid_until)
        ahead = self._mint_ahead(reference_id, amount_msat, fresh, deadline_at)
        if ahead is not None:
            # Let the backend request go out before the lease thread competes for the GIL.
            await asyncio.sleep(0)
        try:
            while True:
                # One round trip takes the lease and looks for an invoice to reuse.
                lease = self._lease(reference_id, amount_msat, deadline_at)
                taken, pending = await self.store.take_lease(lease, lookup)
                if taken:
                    break
                _discard(ahead)
                ahead = None
                # Another process is minting this one: take its invoice when it lands.
                await asyncio.sleep(LEASE_POLL)
                record = await self._latest_pending(reference_id, amount_msat, since=started)
                if record is not None:
                    return self._issued(IssuedInvoice.from_record(record, reused=True))
            try:
                if pending is not None and await self._still_unpaid(pending, deadline_at):
                    _discard(ahead)
                    ahead = None
                    await self.store.drop_lease(lease)
                    return self._issued(IssuedInvoice.from_record(pending, reused=True))
                minting = ahead or self._mint(reference_id, amount_msat, deadline_at)
                minted = await minting
                ahead = None
                return self._issued(await self._keep(reference_id, amount_msat, minted, lease))
            except BaseException:
                await self.store.drop_lease(lease)
                raise
        except SQLAlchemyError as exc:
            log.error("invoices.storage_failed", error=type(exc).__name__)
            raise StorageUnavailable("the invoice database is unavailable") from exc
        finally:
            _discard(ahead)

    def _mint_ahead(
        self, reference_id: str, amount_msat: Msat, fresh: bool, deadline_at: float
    ) -> asyncio.Task[Minted] | None:
        """Start the backend call now, while the lease is being taken, when a new mint is likely.

        The lease round trip then costs nothing on the usual path (a reference asked for the
        first time). Not when this process handed out an invoice for the same (reference,
        amount) lately: that repeat will most likely reuse it. When the lease or a reusable
        invoice wins after all, the early call is cancelled; an invoice it already made is never
        stored nor handed out and simply expires unpaid at the node (logged as
        ``invoices.unused_invoice``).
        """
        key = (reference_id, int(amount_msat))
        handed_out = self._recent.get(key)
        now = asyncio.get_running_loop().time()
        if not fresh and handed_out is not None and now - handed_out < self.expiry:
            return None
        return asyncio.ensure_future(self._mint(reference_id, amount_msat, deadline_at))

    def _issued(self, issued: IssuedInvoice) -> IssuedInvoice:
        """Remember that (reference, amount) was just handed out (see ``_mint_ahead``)."""
        key = (issued.reference_id, int(issued.amount_msat))
        self._recent.pop(key, None)
        self._recent[key] = asyncio.get_running_loop().time()
        while len(self._recent) > RECENT_KEYS:
            self._recent.popitem(last=False)
        return issued

    def _lease(self, reference_id: str, amount_msat: Msat, deadline_at: float) -> Lease:
        now = utcnow()
        left = max(deadline_at - asyncio.get_running_loop().time(), 0)
        return Lease(
            key=f"{len(reference_id)}:{reference_id}:{int(amount_msat)}",
            owner=self._owner,
            expires_at=now + timedelta(seconds=left + 1),
            now=now,
        )

    async def _mint(self, reference_id: str, amount_msat: Msat, deadline_at: float) -> Minted:
        memo = self.description.format(reference_id=reference_id)
        return await self.chain.mint(amount_msat, memo, self.expiry, deadline_at=deadline_at)

    async def _keep(
        self, reference_id: str, amount_msat: Msat, minted: Minted, lease: Lease
    ) -> IssuedInvoice:
        stored = StoredInvoice(
            reference_id=reference_id,
            amount_msat=int(amount_msat),
            bolt11=minted.invoice.bolt11,
            payment_hash=minted.invoice.payment_hash,
            backend=minted.backend,
            created_at=utcnow(),
            expires_at=minted.invoice.expires_at,
        )
        await self.store.store(stored, lease)
        log.info(
            "invoices.minted",
            reference_id=reference_id,
            amount_msat=int(amount_msat),
            payment_hash=stored.payment_hash,
            backend=stored.backend,
        )
        return IssuedInvoice.from_record(stored)

    async def _still_unpaid(self, record: StoredInvoice, deadline_at: float) -> bool:
        """True when the minting backend confirms the invoice is unpaid (and records otherwise)."""
        loop = asyncio.get_running_loop()
        budget = min(STATUS_CHECK_BUDGET, (deadline_at - loop.time()) / 2)
        status = await self._backend_status(record, budget)
        if status is not None and status.state is InvoiceState.PENDING:
            return True
        if status is not None:
            await self._record_status(record.payment_hash, status)
        # Paid, expired, or not confirmable as unpaid: a fresh invoice is never wrong.
        return False

    async def _latest_pending(
        self, reference_id: str, amount_msat: Msat, *, since: datetime | None = None
    ) -> StoredInvoice | None:
        lookup = Lookup(
            reference_id, int(amount_msat), utcnow() + timedelta(seconds=self.min_validity)
        )
        params = pending_params(lookup, since)
        found = await self.db.run(lambda conn: conn.execute(PENDING, params).first(), durable=False)
        return None if found is None else stored_invoice(found)

    async def _backend_status(
        self, record: InvoiceRecord | StoredInvoice, budget: float
    ) -> InvoiceStatus | None:
        backend = self.chain.by_name(record.backend)
        if backend is None or budget <= 0:
            return None
        try:
            async with asyncio.timeout(budget):
                return await backend.invoice_status(record.payment_hash)
        except (BackendError, TimeoutError) as exc:
            log.warning(
                "invoices.status_unconfirmed",
                payment_hash=record.payment_hash,
                backend=record.backend,
                error=getattr(exc, "code", "backend.timeout"),
            )
            return None

    async def refresh_status(self, payment_hash: str) -> InvoiceStatus | None:
        """Ask the minting backend for an invoice's state and record it; None if unknown here."""
        record = await self.get(payment_hash)
        if record is None:
            return None
        status = await self._backend_status(record, STATUS_CHECK_BUDGET)
        if status is not None:
            await self._record_status(payment_hash, status)
        return status

    async def _record_status(self, payment_hash: str, status: InvoiceStatus) -> None:
        values: dict[str, object]
        if status.state is InvoiceState.PAID:
            values = {
                "status": InvoiceStatusDB.PAID,
                "paid_at": utcnow(),
                "paid_msat": None if status.paid_msat is None else int(status.paid_msat),
            }
        elif status.state is InvoiceState.EXPIRED:
            values = {"status": InvoiceStatusDB.EXPIRED}
        else:
            return
        statement = (
            update(InvoiceRecord)
            .where(
                InvoiceRecord.payment_hash == payment_hash,
                InvoiceRecord.status == InvoiceStatusDB.PENDING,
            )
            .values(updated_at=utcnow(), **values)
        )
        await self.db.run(lambda conn: conn.execute(statement))

    async def get(self, payment_hash: str) -> InvoiceRecord | None:
        """The stored invoice with this payment hash."""
        query = select(InvoiceRecord).where(InvoiceRecord.payment_hash == payment_hash.lower())
        found = await self.db.orm(lambda s: list(s.execute(query).scalars()), durable=False)
        return found[0] if found else None

    async def for_reference(self, reference_id: str) -> list[InvoiceRecord]:
        """Every invoice minted for a reference, newest first."""
        query = (
            select(InvoiceRecord)
            .where(InvoiceRecord.reference_id == reference_id)
            .order_by(InvoiceRecord.created_at.desc(), InvoiceRecord.id.desc())
        )
        return await self.db.orm(lambda s: list(s.execute(query).scalars()), durable=False)

    async def aclose(self) -> None:
        await self.store.aclose()


def _discard(ahead: asyncio.Task[Minted] | None) -> None:
    """Cancel an early backend call whose invoice is not wanted (see ``_mint_ahead``)."""
    if ahead is not None:
        ahead.cancel()  # no-op once it is done
        ahead.add_done_callback(_log_unused)


def _log_unused(ahead: asyncio.Task[Minted]) -> None:
    if ahead.cancelled() or ahead.exception() is not None:
        return
    minted = ahead.result()
    log.info(
        "invoices.unused_invoice",
        payment_hash=minted.invoice.payment_hash,
        backend=minted.backend,
        why="another worker's lease or a reusable invoice came first; it expires unpaid",
    )


def _consume_exception(future: asyncio.Future[IssuedInvoice]) -> None:
    # The failure is raised to the caller that owns the mint; waiters may be gone.
    if not future.cancelled():
        future.exception()
