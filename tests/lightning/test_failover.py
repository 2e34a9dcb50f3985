"""BackendChain: capability skips, deadline shares, and the circuit breaker in the mint path."""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import pytest

from receiver.amounts import Msat
from receiver.errors import BackendUnavailable, MintUnavailable
from receiver.lightning.base import (
    BackendContext,
    Capabilities,
    LightningBackend,
    Network,
    NodeInfo,
)
from receiver.lightning.breaker import BreakerState
from receiver.lightning.failover import BackendChain
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.retry import RetryPolicy
from tests.support.faulty import FaultyBackend


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SatsOnly(FaultyBackend):
    capabilities = Capabilities(msat_precision=False, description_hash=True)


@pytest.fixture
def fake(tmp_path: Path) -> FakeBackend:
    context = BackendContext(network=Network.REGTEST, data_dir=tmp_path)
    return FakeBackend(FakeConfig(seed="failover-tests"), context)


def chain(
    backends: list[LightningBackend], clock: Clock | None = None, **kw: float
) -> BackendChain:
    return BackendChain(
        backends,
        network=Network.REGTEST,
        min_validity=600,
        breaker_threshold=int(kw.get("threshold", 2)),
        breaker_cooldown=kw.get("cooldown", 30.0),
        clock=clock or Clock(),
    )


async def mint(chain: BackendChain, amount: int = 1_500_001, seconds: float = 1.0, **kw: bytes):
    loop = asyncio.get_running_loop()
    return await chain.mint(Msat(amount), "memo", 3600, deadline_at=loop.time() + seconds, **kw)


async def test_hung_primary_gets_half_and_the_secondary_answers(fake: FakeBackend) -> None:
    hung = FaultyBackend("hang", name="hung")
    started = asyncio.get_running_loop().time()
    minted = await mint(chain([hung, fake]), seconds=1.0)
    elapsed = asyncio.get_running_loop().time() - started
    assert minted.backend == "fake" and minted.invoice.amount_msat == 1_500_001
    assert 0.45 < elapsed < 0.8


async def test_sats_only_backend_skipped_for_odd_msat_without_a_call(fake: FakeBackend) -> None:
    sats = SatsOnly("wrong_amount", name="sats")
    minted = await mint(chain([sats, fake]), amount=1_001)
    assert minted.backend == "fake" and minted.invoice.amount_msat == 1_001
    assert sats.calls == 0
    # A whole number of sats goes to the sats-only backend (which here mints a wrong amount:
    # verification rejects it and the fake answers).
    minted = await mint(chain([sats, fake]), amount=2_000)
    assert sats.calls == 1 and minted.backend == "fake"


async def test_skipped_backends_leave_their_share_to_the_one_that_can(fake: FakeBackend) -> None:
    # The primary hangs; the only other backend is sats-only and cannot take 1,001 msat, so the
    # primary's share is the whole deadline (it does not wait for a backend that will be skipped).
    hung = FaultyBackend("hang", name="hung")
    with pytest.raises(MintUnavailable) as caught:
        await mint(chain([hung, SatsOnly("ok", name="sats")]), amount=1_001, seconds=0.6)
    codes = {a.backend: a.code for a in caught.value.attempts}
    assert codes == {"hung": "backend.timeout", "sats": "backend.amount_precision"}
    assert "within 0.60 s" in caught.value.attempts[0].message


async def test_description_hash_needs_the_capability(fake: FakeBackend) -> None:
    no_hash = FaultyBackend("ok", name="nohash")  # description_hash=False
    digest = hashlib.sha256(b"x").digest()
    minted = await mint(chain([no_hash, fake]), description_hash=digest)
    assert no_hash.calls == 0 and minted.backend == "fake"
    assert minted.invoice.description_hash == digest.hex()


async def test_breaker_opens_skips_then_probes_after_cooldown(fake: FakeBackend) -> None:
    clock = Clock()
    down = FaultyBackend("unavailable", name="down")
    backends = chain([down, fake], clock, threshold=2, cooldown=30)
    for _ in range(2):
        assert (await mint(backends)).backend == "fake"
    assert down.calls == 2
    assert backends.breaker_states()["down"] is BreakerState.OPEN

    assert (await mint(backends)).backend == "fake"
    assert down.calls == 2  # skipped: no call while open
    clock.now += 29
    assert (await mint(backends)).backend == "fake" and down.calls == 2

    clock.now += 1
    down.fault = "ok"  # the node is back
    minted = await mint(backends)
    assert down.calls == 3 and minted.backend == "down"  # the probe went through and succeeded
    assert backends.breaker_states()["down"] is BreakerState.CLOSED


async def test_open_breaker_is_reported_per_attempt(fake: FakeBackend) -> None:
    down = FaultyBackend("unavailable", name="down")
    backends = chain([down], threshold=1)
    with pytest.raises(MintUnavailable):
        await mint(backends)
    with pytest.raises(MintUnavailable) as caught:
        await mint(backends)
    attempt = caught.value.attempts[0]
    assert attempt.code == "backend.circuit_open" and "next probe in 30 s" in attempt.message


async def test_invalid_invoices_count_against_the_breaker(fake: FakeBackend) -> None:
    wrong = FaultyBackend("wrong_amount", name="wrong")
    backends = chain([wrong, fake], threshold=2)
    for _ in range(3):
        minted = await mint(backends)
        assert minted.invoice.bolt11 not in wrong.minted
    assert wrong.calls == 2


async def test_cancelled_probe_does_not_wedge_the_breaker(fake: FakeBackend) -> None:
    clock = Clock()
    flaky = FaultyBackend("unavailable", name="flaky")
    backends = chain([flaky, fake], clock, threshold=1, cooldown=5)
    await mint(backends)
    clock.now += 5
    flaky.fault = "hang"
    task = asyncio.create_task(mint(backends, seconds=10))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    flaky.fault = "ok"
    assert (await mint(backends)).backend == "flaky"


def test_names_must_be_unique(fake: FakeBackend) -> None:
    with pytest.raises(ValueError, match="unique"):
        chain([fake, fake])


class Shy(FakeBackend):
    """A fake node whose ``info`` fails ``failures`` times first (down at start)."""

    def __init__(self, fake: FakeBackend, failures: int) -> None:
        self.__dict__.update(fake.__dict__)
        self.failures = failures
        self.asked = 0
        self.known = asyncio.Event()

    async def info(self) -> NodeInfo:
        self.asked += 1
        if self.asked <= self.failures:
            raise BackendUnavailable("down at start", backend=self.name)
        info = await super().info()
        self.known.set()
        return info


async def test_node_identity_is_learnt_at_start_and_retried_in_the_background(
    fake: FakeBackend,
) -> None:
    shy = Shy(fake, failures=2)
    hung = FaultyBackend("hang", name="hung")
    backends: list[LightningBackend] = [hung, shy]
    chain = BackendChain(
        backends,
        network=Network.REGTEST,
        min_validity=600,
        identity_retry=RetryPolicy(max_attempts=None, base=0.01, cap=0.01),
    )
    await chain.start_identity(wait=0.05)  # returns although "hung" never answers
    try:
        await asyncio.wait_for(shy.known.wait(), 5)
        assert shy.asked == 3  # twice down, then known: asked again, never given up
    finally:
        await chain.stop_identity()
    assert all(task.done() for task in chain._identity) and not chain._identity


async def test_an_identity_that_never_comes_is_not_fatal(fake: FakeBackend) -> None:
    shy = Shy(fake, failures=10)
    chain = BackendChain(
        [shy],
        network=Network.REGTEST,
        min_validity=600,
        identity_retry=RetryPolicy(max_attempts=3, base=0.01, cap=0.01),
    )
    await chain.start_identity(wait=1.0)
    assert shy.asked == 3 and not shy.known.is_set()
    minted = await mint(chain)  # minting works without the key (the payee check is then off)
    assert minted.backend == shy.name
    await chain.stop_identity()
