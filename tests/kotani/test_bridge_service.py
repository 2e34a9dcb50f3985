"""BridgeService and BridgeKeeper against a respx model of Kotani's crypto-bridge endpoints.

The model answers with the OpenAPI's example bodies (seed 003 status, RefundConfigDto), in which
the refund invoice is replaced by a real signed one; it enforces Kotani's documented rules itself
and records any request that breaks one, so a test fails if our side ever sends such a request.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr

from receiver.db.engine import Database
from receiver.kotani.bridge import BridgeKeeper, BridgeService
from receiver.kotani.bridge_rules import (
    AlreadyRegenerated,
    BridgeDepositNotFound,
    BridgeError,
    DepositTerminal,
    InvoiceNotExpired,
    NotLightning,
    RegeneratedTooRecently,
    RegenerationLimitReached,
)
from receiver.kotani.client import RETRY, KotaniClient
from receiver.kotani.errors import KotaniTimeout
from receiver.kotani.models import Chain, DepositStatus, RefundConfig
from receiver.kotani.models_db import BridgeEventKind, DepositOrigin
from receiver.kotani.refund_invoice import verify_refund_config
from receiver.kotani.store import BridgeEvent, BridgeStore

from .conftest import API_KEY, BASE, Spec, envelope, sign_invoice

REF = "KOTANI-REF-789"
T0 = datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
AMOUNT = 150_000_000


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


class FakeKotani:
    """Kotani's crypto-bridge as documented: 15 min invoices, 3 regenerations, 30 s apart."""

    def __init__(self, spec: Spec, clock: Clock, chain: str = "LIGHTNING") -> None:
        self.spec = spec
        self.clock = clock
        self.chain = chain
        self.status = "PAYMENT_SENT"
        self.count = 0
        self.last_request: datetime | None = None
        self.violations: list[str] = []
        self.regenerations: list[httpx.Request] = []
        self.return_config_on_regenerate = True
        self.lag_reads = False  # GET refund-config keeps showing the old invoice
        self._new_config(T0)
        self._old = self.config

    def _new_config(self, at: datetime) -> None:
        bolt11, payment_hash = sign_invoice(AMOUNT, created_at=int(at.timestamp()), expiry=900)
        config = self.spec.example("RefundConfigDto")
        config.update(
            chain=self.chain,
            refund_invoice=bolt11,
            refund_payment_hash=payment_hash,
            refund_amount_msat=AMOUNT,
            expires_at=(at + timedelta(minutes=15)).isoformat().replace("+00:00", "Z"),
        )
        self.config = config

    def expires_at(self) -> datetime:
        return datetime.fromisoformat(self.config["expires_at"].replace("Z", "+00:00"))

    def refund_config_answer(self) -> dict[str, Any]:
        shown = self._old if self.lag_reads else self.config
        return shown | {"regeneration_count": self.count, "regenerations_remaining": 3 - self.count}

    def status_answer(self, request: httpx.Request) -> httpx.Response:
        answer = self.spec.response(
            "/api/v3/deposit/crypto-bridge/status/{kotani_reference_id}", "GET", 200
        )
        answer["data"].update(status=self.status, chain=self.chain)
        answer["data"]["refund_config"] = self.config
        return httpx.Response(200, json=answer)

    def get_config(self, request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=envelope(self.refund_config_answer()))

    def regenerate(self, request: httpx.Request) -> httpx.Response:
        self.regenerations.append(request)
        now = self.clock()
        broken = []
        if self.chain != "LIGHTNING":
            broken.append("not lightning")
        if self.status in ("COMPLETED", "REFUNDED"):
            broken.append("terminal")
        if self.count >= 3:
            broken.append("max")
        if self.last_request is not None and now - self.last_request < timedelta(seconds=30):
            broken.append("too soon")
        if now < self.expires_at():
            broken.append("not expired")
        self.last_request = now
        if broken:
            self.violations.extend(broken)
            # Kotani's documented 400 (seed 000), same message whatever the rule
            return httpx.Response(
                400,
                json=self.spec.response(
                    "/api/v3/deposit/crypto-bridge/{kotani_reference_id}/refund-config", "POST", 400
                ),
            )
        self.count += 1
        self._old = self.config
        self._new_config(now)
        data = self.config if self.return_config_on_regenerate else {}
        return httpx.Response(200, json=envelope(data, "Refund config regenerated"))

    def mount(self, router: respx.MockRouter) -> None:
        router.get(f"/api/v3/deposit/crypto-bridge/status/{REF}").mock(
            side_effect=self.status_answer
        )
        path = f"/api/v3/deposit/crypto-bridge/{REF}/refund-config"
        router.get(path).mock(side_effect=self.get_config)
        router.post(path).mock(side_effect=self.regenerate)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """SQLite, and a fresh database on the tests' real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'receiver.sqlite3'}"
    return str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def db(db_url: str) -> AsyncIterator[Database]:
    database = Database(db_url)
    await database.upgrade()
    yield database
    await database.dispose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[KotaniClient]:
    async def no_sleep(_: float) -> None:
        return None

    async with KotaniClient(
        BASE,
        SecretStr(API_KEY),
        5.0,
        retry=replace(RETRY, max_attempts=2),
        sleep=no_sleep,
    ) as kotani:
        yield kotani


@pytest.fixture
def published() -> list[BridgeEvent]:
    return []


@pytest.fixture
def service(
    client: KotaniClient, db: Database, clock: Clock, published: list[BridgeEvent]
) -> BridgeService:
    async def publish(event: BridgeEvent) -> None:
        published.append(event)

    return BridgeService(client, BridgeStore(db), clock=clock, publish=publish)


async def track(service: BridgeService, kotani: FakeKotani, **record: Any) -> None:
    """Store a deposit as the service would after creating it (no request is made)."""
    store = service.store
    await store.ensure(REF, DepositOrigin.CREATED, now=T0)
    await store.record_status(
        REF,
        chain=Chain(record.pop("chain", kotani.chain)),
        status=DepositStatus(record.pop("status", kotani.status)),
        now=T0,
    )
    config = RefundConfig.model_validate(kotani.refund_config_answer())
    await store.record_refund_config(REF, verify_refund_config(config), now=T0)
    if record:
        async with service.store._db.session() as session, session.begin():
            from receiver.kotani.models_db import BridgeDepositRecord

            row = await session.get(BridgeDepositRecord, REF)
            assert row is not None
            for name, value in record.items():
                setattr(row, name, value)


# --- the rules: a refused regeneration never leaves the machine ----------------------------


@pytest.mark.parametrize(
    ("setup", "advance", "error"),
    [
        ({"chain": "CELO"}, 16, NotLightning),
        ({"status": "COMPLETED"}, 16, DepositTerminal),
        ({"status": "REFUNDED"}, 16, DepositTerminal),
        ({"regeneration_count": 3}, 16, RegenerationLimitReached),
        (
            {"last_regenerated_at": T0 + timedelta(minutes=15, seconds=50)},
            16,
            RegeneratedTooRecently,
        ),
        ({}, 14, InvoiceNotExpired),
    ],
)
async def test_a_call_that_breaks_a_rule_never_leaves(
    service: BridgeService,
    router: respx.MockRouter,
    spec: Spec,
    clock: Clock,
    setup: dict[str, Any],
    advance: int,
    error: type[BridgeError],
) -> None:
    setup = dict(setup)
    kotani = FakeKotani(spec, clock, chain=setup.pop("chain", "LIGHTNING"))
    kotani.status = setup.pop("status", kotani.status)
    kotani.mount(router)
    await track(service, kotani, **setup)
    clock.advance(minutes=advance)
    with pytest.raises(error) as caught:
        await service.regenerate(REF)
    assert type(caught.value) is error
    assert caught.value.origin == "local"
    assert not router.calls, "a refused regeneration sent a request"


async def test_an_allowed_regeneration_is_sent_once(
    service: BridgeService,
    router: respx.MockRouter,
    spec: Spec,
    clock: Clock,
    published: list[BridgeEvent],
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.mount(router)
    await track(service, kotani)
    clock.advance(minutes=15)
    verified = await service.regenerate(REF)
    assert len(kotani.regenerations) == 1
    request = kotani.regenerations[0]
    assert request.method == "POST"
    assert request.url.path == f"/api/v3/deposit/crypto-bridge/{REF}/refund-config"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.content == b""
    assert len(router.calls) == 1
    assert verified is not None and verified.problem is None
    assert verified.bolt11 == kotani.config["refund_invoice"]
    record = await service.store.get(REF)
    assert record is not None
    assert record.regeneration_count == 1
    assert record.expires_at == kotani.expires_at()
    kinds = [event.kind for event in published]
    assert kinds == [BridgeEventKind.REGENERATED, BridgeEventKind.REFUND_CONFIG_CHANGED]
    assert [e.kind for e in await service.store.events(REF)][-2:] == kinds
    # at once again: the new invoice is not expired, and 30 s have not passed
    with pytest.raises(RegeneratedTooRecently):
        await service.regenerate(REF)
    assert len(router.calls) == 1
    assert kotani.violations == []


async def test_kotani_400_maps_to_the_rule_and_gives_the_slot_back(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.mount(router)
    # Our stored expiry says expired, Kotani's invoice (its clock) does not: Kotani answers 400.
    await track(service, kotani, expires_at=T0 + timedelta(minutes=1))
    clock.advance(minutes=2)
    with pytest.raises(InvoiceNotExpired) as caught:
        await service.regenerate(REF)
    assert caught.value.origin == "kotani"
    assert "Invoice not yet expired" in caught.value.message
    record = await service.store.get(REF)
    assert record is not None
    assert record.regeneration_count == 0
    assert record.last_regenerated_at == clock.now
    kinds = [event.kind for event in await service.store.events(REF)]
    assert kinds[-1] is BridgeEventKind.REGENERATION_REFUSED
    # within 30 s of that request, the next call is refused locally
    clock.advance(seconds=10)
    with pytest.raises(RegeneratedTooRecently):
        await service.regenerate(REF)
    assert len(kotani.regenerations) == 1


async def test_kotani_404_is_not_found(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    await track(service, kotani)
    clock.advance(minutes=16)
    path = f"/api/v3/deposit/crypto-bridge/{REF}/refund-config"
    answer = spec.response(
        "/api/v3/deposit/crypto-bridge/{kotani_reference_id}/refund-config", "POST", 404
    )
    route = router.post(path).respond(404, json=answer)
    with pytest.raises(BridgeDepositNotFound):
        await service.regenerate(REF)
    assert route.call_count == 1


async def test_timeout_keeps_the_regeneration_counted(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    await track(service, kotani, regeneration_count=2)
    clock.advance(minutes=16)
    route = router.post(f"/api/v3/deposit/crypto-bridge/{REF}/refund-config").mock(
        side_effect=httpx.ReadTimeout("slow")
    )
    with pytest.raises(KotaniTimeout):
        await service.regenerate(REF)
    assert route.call_count == 1  # a POST that may have arrived is not repeated
    record = await service.store.get(REF)
    assert record is not None and record.regeneration_count == 3
    clock.advance(minutes=20)
    with pytest.raises(RegenerationLimitReached):
        await service.regenerate(REF)
    assert route.call_count == 1


async def test_two_replicas_regenerate_once(
    client: KotaniClient, db: Database, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    slow = kotani.regenerate

    async def slow_regenerate(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.05)
        return slow(request)

    kotani.mount(router)
    router.post(f"/api/v3/deposit/crypto-bridge/{REF}/refund-config").mock(
        side_effect=slow_regenerate
    )
    one = BridgeService(client, BridgeStore(db), clock=clock)
    two = BridgeService(client, BridgeStore(db), clock=clock)
    await track(one, kotani)
    clock.advance(minutes=16)
    results = await asyncio.gather(one.regenerate(REF), two.regenerate(REF), return_exceptions=True)
    assert len(kotani.regenerations) == 1
    # The loser saw the winner's reservation (already regenerated) or lost the conditional
    # update (too soon): refused either way, locally.
    refused = [r for r in results if isinstance(r, AlreadyRegenerated | RegeneratedTooRecently)]
    assert len(refused) == 1, results
    assert refused[0].origin == "local"
    assert kotani.violations == []


async def test_unknown_deposit_is_read_first_then_ruled(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.mount(router)
    with pytest.raises(InvoiceNotExpired):
        await service.regenerate(REF)
    assert [call.request.method for call in router.calls] == ["GET", "GET"]
    assert kotani.regenerations == []


# --- refund invoices are checked before use --------------------------------------------------


async def test_status_withholds_a_refund_invoice_that_does_not_match(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.config["refund_amount_msat"] = AMOUNT + 1000
    kotani.mount(router)
    _, verified = await service.status(REF)
    assert verified is not None
    assert verified.bolt11 is None
    assert verified.problem is not None and verified.problem.error_code == (
        "bridge.refund_invoice.amount"
    )
    assert verified.public()["refund_invoice"] is None


async def test_the_openapi_example_invoice_is_rejected(spec: Spec) -> None:
    # "lnbc1500n1p0xyz..." is not an invoice: shown to nobody.
    verified = verify_refund_config(RefundConfig.model_validate(spec.example("RefundConfigDto")))
    assert verified.problem is not None
    assert verified.problem.error_code == "bridge.refund_invoice.undecodable"


async def test_create_deposit_tracks_it(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    from receiver.kotani.models import BridgeDepositRequest

    kotani = FakeKotani(spec, clock)
    answer = spec.response("/api/v3/deposit/crypto-bridge", "POST", 200)
    answer["data"]["refund_config"] = kotani.config
    route = router.post("/api/v3/deposit/crypto-bridge").respond(200, json=answer)
    request = BridgeDepositRequest.model_validate(
        spec.request_example("/api/v3/deposit/crypto-bridge", "POST")
    )
    deposit, verified = await service.create_deposit(request)
    assert route.call_count == 1
    assert verified.problem is None
    assert await service.store.active() == [deposit.kotani_reference_id]
    record = await service.store.get(REF)
    assert record is not None and record.origin is DepositOrigin.CREATED
    assert record.refund_invoice == kotani.config["refund_invoice"]


# --- the keeper ----------------------------------------------------------------------------


@pytest.mark.parametrize("return_config", [True, False])
async def test_keeper_regenerates_once_per_expiry_and_never_past_the_limit(
    service: BridgeService,
    router: respx.MockRouter,
    spec: Spec,
    clock: Clock,
    return_config: bool,
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.return_config_on_regenerate = return_config
    kotani.mount(router)
    await service.watch(REF)
    keeper = BridgeKeeper(service, interval=30)

    await keeper.tick()
    assert kotani.regenerations == []  # fresh invoice

    for expected in (1, 2, 3):
        clock.advance(minutes=15, seconds=1)  # past this invoice's expiry
        for _ in range(4):  # several ticks within the same expiry (30 s apart)
            await keeper.tick()
            clock.advance(seconds=30)
        assert len(kotani.regenerations) == expected
        assert kotani.count == expected

    for _ in range(3):
        clock.advance(minutes=16)
        await keeper.tick()
    assert len(kotani.regenerations) == 3, "never past the limit"
    assert kotani.violations == []
    record = await service.store.get(REF)
    assert record is not None and record.regeneration_count == 3


async def test_keeper_waits_for_the_new_invoice_when_reads_lag(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.return_config_on_regenerate = False
    kotani.mount(router)
    await service.watch(REF)
    keeper = BridgeKeeper(service, interval=30)
    clock.advance(minutes=16)
    kotani.lag_reads = True  # after regenerating, Kotani still shows the expired invoice
    await keeper.tick()
    assert len(kotani.regenerations) == 1
    for _ in range(10):
        clock.advance(seconds=31)
        await keeper.tick()
    assert len(kotani.regenerations) == 1
    record = await service.store.get(REF)
    assert record is not None
    with pytest.raises(AlreadyRegenerated):
        await service.regenerate(REF)
    kotani.lag_reads = False
    await keeper.tick()
    record = await service.store.get(REF)
    assert record is not None and record.expires_at == kotani.expires_at()


async def test_keeper_stops_polling_terminal_deposits(
    service: BridgeService, router: respx.MockRouter, spec: Spec, clock: Clock
) -> None:
    kotani = FakeKotani(spec, clock)
    kotani.mount(router)
    await service.watch(REF)
    kotani.status = "COMPLETED"
    clock.advance(minutes=16)
    await BridgeKeeper(service, interval=30).tick()
    assert await service.store.active() == []
    assert kotani.regenerations == []
    calls = len(router.calls)
    await BridgeKeeper(service, interval=30).tick()
    assert len(router.calls) == calls


async def test_keeper_run_stops_on_event(service: BridgeService) -> None:
    stop = asyncio.Event()
    keeper = BridgeKeeper(service, interval=0.01)
    task = asyncio.create_task(keeper.run(stop))
    await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, timeout=1)


# --- the keeper inside the service (RECEIVER_BRIDGE_KEEPER) ----------------------------------


class RealClock(Clock):
    def __call__(self) -> datetime:
        return datetime.now(UTC)


@pytest.mark.parametrize("keeper_on", [True, False])
async def test_service_keeper_is_opt_in_and_regenerates_once(
    make_settings: Any, spec: Spec, keeper_on: bool
) -> None:
    from receiver.app import create_app
    from tests.support.server import serve_app

    clock = RealClock()
    kotani = FakeKotani(spec, clock)
    kotani._new_config(clock() - timedelta(minutes=20))  # the current invoice expired 5 min ago
    settings = make_settings(
        kotani_api_key=API_KEY,
        bridge_keeper=keeper_on,
        bridge_poll_interval=0.05,
    )
    app = create_app(settings)
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        kotani.mount(router)
        async with serve_app(app):
            await app.state.kotani.bridge.watch(REF)
            for _ in range(100):
                await asyncio.sleep(0.02)
                if kotani.regenerations:
                    break
            await asyncio.sleep(0.3)  # several more ticks
            keeper = app.state.kotani.keeper
            assert (keeper is not None and keeper.is_leader) is keeper_on
    assert len(kotani.regenerations) == (1 if keeper_on else 0)
    assert kotani.violations == []


async def test_reservation_is_won_once(service: BridgeService, spec: Spec, clock: Clock) -> None:
    from receiver.kotani.store import state_of

    await track(service, FakeKotani(spec, clock))
    record = await service.store.get(REF)
    assert record is not None
    seen = state_of(record)
    assert await service.store.reserve_regeneration(seen, now=clock.now) is True
    assert await service.store.reserve_regeneration(seen, now=clock.now) is False
    record = await service.store.get(REF)
    assert record is not None and record.regeneration_count == 1
