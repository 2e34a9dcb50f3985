"""Fault injection through real HTTP: a node that hangs, is slow, 500s or mints a wrong amount.

The service (uvicorn) is backed by LND backends talking to ``LndDouble`` servers on loopback,
then by the fake node. The answer must come from the next backend within the deadline, and a
wrong invoice must never leave the service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
import pytest

from receiver.app import create_app
from receiver.lightning.base import BackendContext, LightningBackend
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.lightning.lnd import LndBackend, LndConfig
from receiver.services import backend_context
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.lightning.lnd_double import MACAROON, LndDouble
from tests.support import bolt11_ref
from tests.support.server import free_port, serve_app

URL = f"/invoices/{TOKEN}"
DEADLINE = 3.0


def lnd(url: str, context: BackendContext, name: str) -> LndBackend:
    backend = LndBackend(LndConfig(url=url, macaroon=MACAROON), context)
    backend.name = name
    return backend


async def post(
    settings: Settings, backends: list[LightningBackend], amount: int = 1_500_001
) -> tuple[httpx.Response, float]:
    async with serve_app(create_app(settings, backends=backends)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            started = time.monotonic()
            response = await client.post(
                URL, json={"amount_msat": amount, "reference_id": f"TXN-{time.time_ns()}"}
            )
            return response, time.monotonic() - started


@pytest.fixture
def fast_settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(deadline=DEADLINE)


@pytest.mark.parametrize(
    ("fault", "code"),
    [
        ("hang", "backend.timeout"),
        ("slow", "backend.timeout"),
        ("error500", "backend.unavailable"),
        ("wrong_amount", "backend.invalid_invoice.amount"),
    ],
)
async def test_next_backend_answers_within_deadline(
    fast_settings: Settings, fault: str, code: str
) -> None:
    context = backend_context(fast_settings)
    async with (
        LndDouble(fault, delay=DEADLINE / 2 + 0.5).running() as primary,
        LndDouble().running() as secondary,
    ):
        backends: list[LightningBackend] = [
            lnd(primary.url, context, "primary"),
            lnd(secondary.url, context, "secondary"),
        ]
        response, elapsed = await post(fast_settings, backends)
        for backend in backends:
            await backend.aclose()
    assert response.status_code == 200, response.text
    answer = response.json()
    assert elapsed < DEADLINE
    assert primary.calls == 1
    assert answer["bolt11"] in secondary.minted
    assert answer["bolt11"] not in primary.minted
    decoded = bolt11_ref.decode(answer["bolt11"])
    assert decoded.amount_msat == 1_500_001 and decoded.payee == secondary.node_id


async def test_slow_but_in_time_backend_is_used(fast_settings: Settings) -> None:
    context = backend_context(fast_settings)
    async with (
        LndDouble("slow", delay=0.3).running() as primary,
        LndDouble().running() as secondary,
    ):
        backends: list[LightningBackend] = [
            lnd(primary.url, context, "primary"),
            lnd(secondary.url, context, "secondary"),
        ]
        response, _ = await post(fast_settings, backends)
        for backend in backends:
            await backend.aclose()
    assert response.status_code == 200
    assert response.json()["bolt11"] in primary.minted and secondary.calls == 0


async def test_every_backend_down_is_503_within_deadline_with_one_code_each(
    fast_settings: Settings,
) -> None:
    context = backend_context(fast_settings)
    async with LndDouble("hang").running() as hung, LndDouble("wrong_amount").running() as wrong:
        backends: list[LightningBackend] = [
            lnd(hung.url, context, "hung"),
            lnd(wrong.url, context, "wrong"),
            lnd(f"http://127.0.0.1:{free_port()}", context, "refused"),
        ]
        response, elapsed = await post(fast_settings, backends)
        for backend in backends:
            await backend.aclose()
    assert response.status_code == 503, response.text
    assert elapsed < DEADLINE + 0.5
    body = response.text
    assert MACAROON not in body
    assert not any(invoice in body for invoice in wrong.minted)
    error = response.json()["error"]
    assert error["code"] == "mint.unavailable"


async def test_odd_msat_on_sats_only_first_chain_comes_exact_from_msat_backend(
    fast_settings: Settings,
) -> None:
    from receiver.lightning.lnbits import LnbitsBackend, LnbitsConfig

    context = backend_context(fast_settings)
    # The sats-only backend points at a closed port: it must be skipped without being called.
    sats_only = LnbitsBackend(
        LnbitsConfig(url=f"http://127.0.0.1:{free_port()}", key="k" * 32), context
    )
    fake = FakeBackend(FakeConfig(), context)
    response, _ = await post(fast_settings, [sats_only, fake], amount=1_001)
    await sats_only.aclose()
    await fake.aclose()
    assert response.status_code == 200, response.text
    decoded = bolt11_ref.decode(response.json()["bolt11"])
    assert decoded.amount_msat == 1_001 and decoded.payee == fake.node_id


async def _burst(
    client: httpx.AsyncClient, count: int, concurrency: int
) -> list[tuple[httpx.Response, float]]:
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> tuple[httpx.Response, float]:
        async with gate:
            started = time.monotonic()
            response = await client.post(
                URL, json={"amount_msat": 1_500_000 + i, "reference_id": f"BURST-{i}"}
            )
            return response, time.monotonic() - started

    return await asyncio.gather(*(one(i) for i in range(count)))


async def test_bar_hung_primary_200_requests_under_9s_from_secondary(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(deadline=8.0)
    context = backend_context(settings)
    async with LndDouble("hang").running() as hung, LndDouble().running() as secondary:
        backends: list[LightningBackend] = [
            lnd(hung.url, context, "hung"),
            lnd(secondary.url, context, "secondary"),
        ]
        async with serve_app(create_app(settings, backends=backends)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                results = await _burst(client, 200, concurrency=20)
        for backend in backends:
            await backend.aclose()
    assert all(r.status_code == 200 for r, _ in results)
    assert max(elapsed for _, elapsed in results) < 9.0
    assert all(r.json()["bolt11"] in secondary.minted for r, _ in results)
    # The breaker opened: the hung node was not asked 200 times.
    assert hung.calls <= 20 + 1


async def test_bar_every_backend_down_503_under_9s_never_500(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(deadline=8.0)
    context = backend_context(settings)
    async with LndDouble("hang").running() as hung, LndDouble("error500").running() as failing:
        backends: list[LightningBackend] = [
            lnd(hung.url, context, "hung"),
            lnd(failing.url, context, "failing"),
        ]
        async with serve_app(create_app(settings, backends=backends)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=30) as client:
                results = await _burst(client, 40, concurrency=20)
        for backend in backends:
            await backend.aclose()
    assert {r.status_code for r, _ in results} == {503}
    assert max(elapsed for _, elapsed in results) < 9.0
    attempts = [r.json()["error"]["attempts"] for r, _ in results]
    assert all([a["backend"] for a in each] == ["hung", "failing"] for each in attempts)
    codes = {a["code"] for each in attempts for a in each}
    assert codes <= {"backend.timeout", "backend.unavailable", "backend.circuit_open"}
    assert "backend.circuit_open" in codes  # the breakers opened under the burst
