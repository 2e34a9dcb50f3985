"""Invoices that fail verification never leave; the next backend answers within the deadline."""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx
import pytest

from receiver.app import create_app
from receiver.lightning.base import LightningBackend
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.services import backend_context
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support import bolt11_ref
from tests.support.faulty import FAULTS, FaultyBackend
from tests.support.server import serve_app

URL = f"/invoices/{TOKEN}"
BODY = {"amount_msat": 1_500_000, "reference_id": "TXN-F"}
REASONS = {
    "wrong_amount": "backend.invalid_invoice.amount",
    "wrong_network": "backend.invalid_invoice.network",
    "expired": "backend.invalid_invoice.expiry",
    "short_expiry": "backend.invalid_invoice.expiry",
    "bad_hash": "backend.invalid_invoice.payment_hash",
    "wrong_node": "backend.invalid_invoice.node_id",
}


async def post(
    settings: Settings, backends: list[LightningBackend], body: object = BODY
) -> httpx.Response:
    async with serve_app(create_app(settings, backends=backends)) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await client.post(URL, json=body)


@pytest.mark.parametrize("fault", FAULTS)
async def test_faulty_invoice_never_returned_next_backend_answers(
    settings: Settings, fault: str
) -> None:
    faulty = FaultyBackend(fault)
    fake = FakeBackend(FakeConfig(), backend_context(settings))
    response = await post(settings, [faulty, fake])
    assert response.status_code == 200, response.text
    answer = response.json()
    assert faulty.calls == 1 and faulty.minted, "the faulty backend was tried first"
    assert answer["bolt11"] not in faulty.minted
    assert bolt11_ref.decode(answer["bolt11"]).payee == fake.node_id
    await fake.aclose()


@pytest.mark.parametrize("fault", FAULTS)
async def test_only_faulty_backend_is_503_with_reason(settings: Settings, fault: str) -> None:
    faulty = FaultyBackend(fault)
    response = await post(settings, [faulty])
    assert response.status_code == 503, response.text
    assert response.headers["retry-after"].isdigit()
    error = response.json()["error"]
    assert error["code"] == "mint.unavailable"
    assert error["attempts"] == [{"backend": "faulty", "code": REASONS[fault]}]
    assert not any(minted in response.text for minted in faulty.minted)


async def test_the_fake_writes_multiples_of_10_14_msat_exactly(
    make_settings: Callable[..., Settings],
) -> None:
    # bolt11 2.2.0's encoder writes multiples of 10^14 msat 1000x too small (its hrp amount loop
    # divides once too often); the fake's own writer must not, and the invoice leaves verified.
    settings = make_settings(max_amount_msat=10**15)
    fake = FakeBackend(FakeConfig(), backend_context(settings))
    response = await post(settings, [fake], {"amount_msat": 10**14, "reference_id": "BIG"})
    assert response.status_code == 200, response.text
    assert bolt11_ref.decode(response.json()["bolt11"]).amount_msat == 10**14
    await fake.aclose()


async def test_hung_primary_secondary_answers_inside_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(deadline=2.0)
    fake = FakeBackend(FakeConfig(), backend_context(settings))
    async with serve_app(create_app(settings, backends=[FaultyBackend("hang"), fake])) as url:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            started = time.monotonic()
            response = await client.post(URL, json=BODY)
            elapsed = time.monotonic() - started
    assert response.status_code == 200
    assert elapsed < 2.0 + 0.5
    assert bolt11_ref.decode(response.json()["bolt11"]).payee == fake.node_id
    await fake.aclose()


async def test_everything_down_is_503_by_the_deadline(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(deadline=1.5)
    backends: list[LightningBackend] = [
        FaultyBackend("hang", name="a"),
        FaultyBackend("unavailable", name="b"),
        FaultyBackend("crash", name="c"),
    ]
    started = time.monotonic()
    response = await post(settings, backends)
    assert time.monotonic() - started < 1.5 + 2.0  # server start/stop included
    assert response.status_code == 503
    codes = [a["code"] for a in response.json()["error"]["attempts"]]
    assert codes == ["backend.timeout", "backend.unavailable", "backend.internal"]
