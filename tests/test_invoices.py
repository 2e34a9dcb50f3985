"""The mint path on both databases: idempotency, concurrency, the cross-process lease."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import Connection

from receiver.amounts import Msat
from receiver.db import Database, InvoiceRecord
from receiver.errors import MintUnavailable
from receiver.invoices import InvoiceService
from receiver.lightning.base import MintedInvoice
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.services import Services, backend_context, open_services
from receiver.settings import Settings
from tests.support import bolt11_ref
from tests.support.faulty import FaultyBackend


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("fresh_postgres_url"))
    return ""


@pytest.fixture
async def services(
    database_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[Services]:
    settings = make_settings(database_url=database_url)
    async with open_services(settings) as opened:
        yield opened


def second_worker(services: Services) -> InvoiceService:
    """Another InvoiceService on the same database: what a second worker process is (its own
    in-process futures and memory, the same lease rows)."""
    return InvoiceService(
        services.db,
        services.chain,
        deadline=5.0,
        expiry=3600,
        min_validity=600,
        description="x {reference_id}",
    )


async def count(services: Services, reference: str) -> int:
    async with services.db.session() as session:
        total = await session.scalar(
            select(func.count()).where(InvoiceRecord.reference_id == reference)
        )
    return int(total or 0)


async def test_reuse_then_fresh(services: Services) -> None:
    first = await services.invoices.get_or_mint("REF-1", Msat(1_500_000))
    again = await services.invoices.get_or_mint("REF-1", Msat(1_500_000))
    assert again.bolt11 == first.bolt11 and again.reused and not first.reused
    forced = await services.invoices.get_or_mint("REF-1", Msat(1_500_000), fresh=True)
    assert forced.payment_hash != first.payment_hash
    assert bolt11_ref.decode(forced.bolt11).amount_msat == 1_500_000
    assert await count(services, "REF-1") == 2


async def test_concurrent_identical_requests_mint_once(services: Services) -> None:
    results = await asyncio.gather(
        *(services.invoices.get_or_mint("REF-C", Msat(42_000)) for _ in range(25))
    )
    assert len({r.payment_hash for r in results}) == 1
    assert await count(services, "REF-C") == 1


async def test_two_processes_share_one_mint_through_the_lease(services: Services) -> None:
    # A second InvoiceService on the same database is what a second worker process is: it has
    # its own in-process futures, so only the lease row keeps it from minting again.
    other = second_worker(services)
    results = await asyncio.gather(
        *(
            (services.invoices if i % 2 else other).get_or_mint("REF-L", Msat(9_000))
            for i in range(20)
        )
    )
    await other.aclose()
    assert len({r.payment_hash for r in results}) == 1
    assert await count(services, "REF-L") == 1


async def test_paid_invoice_is_never_reused(services: Services) -> None:
    first = await services.invoices.get_or_mint("REF-P", Msat(5_000))
    node = FakeBackend(FakeConfig(), backend_context(services.settings))
    try:
        await node.pay(first.payment_hash, Msat(5_000))
    finally:
        await node.aclose()
    second = await services.invoices.get_or_mint("REF-P", Msat(5_000))
    assert second.payment_hash != first.payment_hash
    record = await services.invoices.get(first.payment_hash)
    assert record is not None and record.status == "paid" and record.paid_msat == 5_000


async def test_failed_mint_leaves_no_lease_behind(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(deadline=0.5)
    async with open_services(settings, backends=[FaultyBackend("unavailable")]) as broken:
        with pytest.raises(MintUnavailable):
            await broken.invoices.get_or_mint("REF-X", Msat(1000))
    async with open_services(settings) as working:
        issued = await working.invoices.get_or_mint("REF-X", Msat(1000), deadline=2.0)
        assert issued.amount_msat == 1000


async def test_lease_of_a_crashed_process_is_taken_over(services: Services) -> None:
    from datetime import timedelta

    from sqlalchemy import insert

    from receiver.db.models import MintLease
    from receiver.db.types import utcnow

    key = f"{len('REF-S')}:REF-S:3000"
    async with services.db.engine.begin() as conn:
        await conn.execute(
            insert(MintLease).values(key=key, owner="dead", expires_at=utcnow() - timedelta(1))
        )
    issued = await services.invoices.get_or_mint("REF-S", Msat(3000))
    assert issued.amount_msat == 3000


async def test_live_lease_makes_others_wait_for_its_invoice(services: Services) -> None:
    from datetime import timedelta

    from sqlalchemy import insert

    from receiver.db.models import MintLease
    from receiver.db.types import utcnow

    key = f"{len('REF-W')}:REF-W:3000"
    async with services.db.engine.begin() as conn:
        await conn.execute(
            insert(MintLease).values(key=key, owner="other", expires_at=utcnow() + timedelta(1))
        )
    with pytest.raises(MintUnavailable):
        await services.invoices.get_or_mint("REF-W", Msat(3000), deadline=0.5)
    assert await count(services, "REF-W") == 0


def count_backend_calls(services: Services, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Record the amount of every create_invoice call the (fake) backend gets."""
    backend = services.chain.backends[0]
    original = backend.create_invoice
    amounts: list[int] = []

    async def counting(
        amount_msat: Msat, memo: str, expiry: int, description_hash: bytes | None = None
    ) -> MintedInvoice:
        amounts.append(int(amount_msat))
        return await original(amount_msat, memo, expiry, description_hash)

    monkeypatch.setattr(backend, "create_invoice", counting)
    return amounts


async def test_a_repeat_in_this_process_asks_the_backend_once(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The backend call starts ahead of the lease only for a (reference, amount) this process
    # has not just handed out: a repeat reuses, and must not make a node invoice for nothing.
    calls = count_backend_calls(services, monkeypatch)
    first = await services.invoices.get_or_mint("REF-R", Msat(7_000))
    again = await services.invoices.get_or_mint("REF-R", Msat(7_000))
    assert again.reused and again.payment_hash == first.payment_hash
    assert calls == [7_000]
    fresh = await services.invoices.get_or_mint("REF-R", Msat(7_000), fresh=True)
    assert fresh.payment_hash != first.payment_hash and calls == [7_000, 7_000]


async def test_an_early_invoice_that_loses_to_a_reusable_one_is_never_kept(
    services: Services,
) -> None:
    # Another worker (no memory of REF-E) starts its backend call ahead of the lease, then finds
    # the reusable invoice: it hands that one out, and the early one is neither stored nor sent.
    first = await services.invoices.get_or_mint("REF-E", Msat(8_000))
    other = second_worker(services)
    try:
        again = await other.get_or_mint("REF-E", Msat(8_000))
    finally:
        await other.aclose()
    assert again.reused and again.payment_hash == first.payment_hash
    assert await count(services, "REF-E") == 1


async def test_only_lease_transactions_skip_syncs_and_checkpoints(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'leases.sqlite3'}")

    def pragmas(conn: Connection) -> tuple[int, int]:
        synchronous = conn.exec_driver_sql("PRAGMA synchronous").scalar_one()
        checkpoint = conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
        return int(synchronous), int(checkpoint)

    try:
        during_lease = await db.run(pragmas, durable=False)
        durable = await db.run(pragmas)
    finally:
        await db.dispose()
    assert during_lease == (0, 0)  # OFF, and no checkpoint while syncs are off
    assert durable == (2, 1000)  # FULL and the default checkpoint, restored
