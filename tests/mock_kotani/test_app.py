"""The imitation served by uvicorn, driven by the service's own Kotani client, webhooks received
by a small recorder app and verified with the service's own verifier."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver.amounts import Msat
from receiver.kotani.bridge_rules import (
    DepositTerminal,
    InvoiceNotExpired,
    RegeneratedTooRecently,
    RegenerationLimitReached,
    RegenerationState,
    map_kotani_refusal,
)
from receiver.kotani.client import KotaniClient
from receiver.kotani.errors import KotaniBadRequest, KotaniNotFound, KotaniUnauthorized
from receiver.kotani.models import BridgeRateRequest, Chain
from receiver.lightning.base import BackendContext, Network
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.mock_kotani.app import MockKotani, create_mock_app
from receiver.mock_kotani.runner import MockOptions, build
from receiver.mock_kotani.webhooks import Chaos
from receiver.webhooks.jsjson import to_python
from receiver.webhooks.signature import verify
from tests.support.server import serve_app

SECRET = "whsec_mocktest"
KEY = "kotani-test-key"


@dataclass
class Recorder:
    url: str
    received: list[tuple[str, bytes, dict[str, str]]]
    answers: list[int]


@pytest.fixture
async def recorder() -> AsyncIterator[Recorder]:
    received: list[tuple[str, bytes, dict[str, str]]] = []
    answers: list[int] = []

    async def hook(request: Request) -> JSONResponse:
        body = await request.body()
        event = request.headers.get("x-kotani-event", "")
        received.append((event, body, dict(request.headers)))
        return JSONResponse({}, status_code=answers.pop(0) if answers else 200)

    app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
    async with serve_app(app) as url:
        yield Recorder(f"{url}/hook", received, answers)


@dataclass
class Served:
    mock: MockKotani
    url: str
    client: KotaniClient
    node: FakeBackend


async def serve(tmp_path: Path, recorder: Recorder, chaos: Chaos) -> AsyncIterator[Served]:
    node_dir = tmp_path / "integrator"
    options = MockOptions(
        data_dir=tmp_path / "mock",
        api_key=KEY,
        webhook_url=recorder.url,
        webhook_secret=SECRET,
        network=Network.REGTEST,
        clock_scale=100_000.0,
        chaos=chaos,
        pay_fake_node=node_dir,
    )
    mock = await build(options, tmp_path / "mock")
    node = FakeBackend(FakeConfig(_env_file=None), BackendContext(Network.REGTEST, node_dir))
    async with serve_app(create_mock_app(mock)) as url:
        async with KotaniClient(url, SecretStr(KEY), 10.0) as client:
            yield Served(mock, url, client, node)
    await node.aclose()


@pytest.fixture
async def kotani(tmp_path: Path, recorder: Recorder) -> AsyncIterator[Served]:
    async for served in serve(tmp_path, recorder, Chaos()):
        yield served


async def offramp(served: Served, ref: str, amount: int = 1_500_000, **extra: Any) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{served.url}/api/v3/offramp",
            json={
                "cryptoAmount": amount,
                "currency": "KES",
                "chain": "LIGHTNING",
                "token": "MSAT",
                "referenceId": ref,
                **extra,
            },
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert answer.status_code == 201, answer.text


async def fail(served: Served, ref: str, expired: bool = False) -> None:
    async with httpx.AsyncClient() as http:
        answer = await http.post(
            f"{served.url}/_mock/offramps/{ref}/fail-payout",
            json={"stored_invoice_expired": expired},
        )
    assert answer.status_code == 202, answer.text
    await served.mock.idle()


async def wait_for(recorder: Recorder, event: str, count: int = 1) -> list[bytes]:
    for _ in range(500):
        found = [body for name, body, _ in recorder.received if name == event]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"{event} not received: {[n for n, _, _ in recorder.received]}")


async def test_every_call_needs_the_bearer_key(kotani: Served) -> None:
    async with httpx.AsyncClient() as http:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}):
            answer = await http.get(f"{kotani.url}/api/v3/offramp/refund-status/X", headers=headers)
            assert answer.status_code == 401
            assert answer.json() == {"success": False, "message": "Unauthorized", "data": {}}
    async with KotaniClient(kotani.url, SecretStr("wrong"), 5.0) as wrong:
        with pytest.raises(KotaniUnauthorized):
            await wrong.refund_status("X")


async def test_offramp_create_refuses_bad_bodies(kotani: Served) -> None:
    async with httpx.AsyncClient() as http:
        auth = {"Authorization": f"Bearer {KEY}"}
        missing = await http.post(f"{kotani.url}/api/v3/offramp", json={"chain": "X"}, headers=auth)
        assert missing.status_code == 400
        assert "referenceId" in missing.json()["message"]
        bad_config = await http.post(
            f"{kotani.url}/api/v3/offramp",
            json={
                "cryptoAmount": 1000,
                "currency": "KES",
                "chain": "LIGHTNING",
                "token": "MSAT",
                "referenceId": "R1",
                "refund_config": {"bolt11": "x", "amount_msat": "1000"},
            },
            headers=auth,
        )
        assert bad_config.status_code == 400 and "refund_config" in bad_config.json()["message"]
    await offramp(kotani, "R1")
    with pytest.raises(KotaniNotFound):
        await kotani.client.refund_status("nope")
    async with httpx.AsyncClient() as http:
        again = await http.post(
            f"{kotani.url}/api/v3/offramp",
            json={
                "cryptoAmount": 1,
                "currency": "KES",
                "chain": "LIGHTNING",
                "token": "MSAT",
                "referenceId": "R1",
            },
            headers={"Authorization": f"Bearer {KEY}"},
        )
    assert again.status_code == 400 and again.json()["message"] == "Reference ID already exists"


async def test_option_b_checks_submissions_pays_and_signs_webhooks(
    kotani: Served, recorder: Recorder
) -> None:
    with pytest.raises(KotaniBadRequest):  # no refund yet: nothing to submit for
        await offramp(kotani, "B1")
        minted = await kotani.node.create_invoice(Msat(1_500_000), "r", 3600)
        await kotani.client.submit_refund_invoice("B1", minted.bolt11)
    await fail(kotani, "B1")
    [needed] = await wait_for(recorder, "refund.lightning.invoice_needed")
    verified = to_python(verify(needed, None, [SecretStr(SECRET)]).data)
    assert verified["refundAmount"] == 1_500_000
    assert verified["action"]["submitUrl"].endswith("/submit-refund-invoice/B1")

    wrong = await kotani.node.create_invoice(Msat(1_499_000), "r", 3600)
    with pytest.raises(KotaniBadRequest) as refused:
        await kotani.client.submit_refund_invoice("B1", wrong.bolt11)
    assert "amount" in refused.value.kotani_message
    right = await kotani.node.create_invoice(Msat(1_500_000), "r", 3600)
    await kotani.client.submit_refund_invoice("B1", right.bolt11)
    await kotani.mock.idle()
    [completed] = await wait_for(recorder, "refund.completed")
    _, _, headers = next(r for r in recorder.received if r[0] == "refund.completed")
    data = to_python(verify(completed, headers["x-kotani-signature"], [SecretStr(SECRET)]).data)
    assert data["refundTransactionHash"] == right.payment_hash
    status = await kotani.client.refund_status("B1")
    assert status.refund_status == "SUCCESSFUL" and status.status == "REVERSED"
    assert (await kotani.node.invoice_status(right.payment_hash)).state.value == "paid"
    with pytest.raises(KotaniBadRequest):  # paid and done: no second invoice
        await kotani.client.submit_refund_invoice("B1", right.bolt11)


async def option_a(served: Served, ref: str, answer: dict[str, Any]) -> list[Any]:
    """An offramp with a refund_config whose generate_invoice_url answers ``answer``."""
    asked: list[Any] = []
    stored = await served.node.create_invoice(Msat(2_000_000), "stored", 3600)

    async def generate(request: Request) -> JSONResponse:
        asked.append(await request.json())
        return JSONResponse(answer)

    app = Starlette(routes=[Route("/invoices/t", generate, methods=["POST"])])
    async with serve_app(app) as url:
        config = {
            "bolt11": stored.bolt11,
            "payment_hash": stored.payment_hash,
            "amount_msat": 2_000_000,
            "expires_at": "2099-01-01T00:00:00Z",
            "generate_invoice_url": f"{url}/invoices/t",
        }
        await offramp(served, ref, 2_000_000, refund_config=config)
        await fail(served, ref, expired=True)
    assert (await served.node.invoice_status(stored.payment_hash)).state.value == "pending"
    return asked


async def test_option_a_calls_generate_invoice_url_and_judges_it(
    kotani: Served, recorder: Recorder
) -> None:
    fresh = await kotani.node.create_invoice(Msat(2_000_000), "fresh", 3600)
    answer = {"bolt11": fresh.bolt11, "payment_hash": fresh.payment_hash, "amount_msat": 2_000_000}
    assert await option_a(kotani, "A1", answer) == [
        {"amount_msat": 2_000_000, "reference_id": "A1"}
    ]
    await wait_for(recorder, "refund.completed")
    assert (await kotani.node.invoice_status(fresh.payment_hash)).state.value == "paid"


async def test_option_a_falls_back_to_b_on_a_wrong_answer(
    kotani: Served, recorder: Recorder
) -> None:
    short = await kotani.node.create_invoice(Msat(1_000_000), "short", 3600)
    await option_a(kotani, "A2", {"bolt11": short.bolt11, "amount_msat": 2_000_000})
    await wait_for(recorder, "refund.lightning.invoice_needed")
    assert (await kotani.node.invoice_status(short.payment_hash)).state.value == "pending"


async def test_a_failed_payment_is_refund_failed_and_can_be_retried(
    kotani: Served, recorder: Recorder, tmp_path: Path
) -> None:
    await offramp(kotani, "F1")
    with pytest.raises(KotaniBadRequest) as early:
        await kotani.client.retry_refund("F1")
    assert early.value.kotani_message == "Cannot retry refund"
    await fail(kotani, "F1")
    await wait_for(recorder, "refund.lightning.invoice_needed")
    # A valid invoice of a node the payer cannot pay: accepted, then the payment fails.
    other = FakeBackend(FakeConfig(_env_file=None), BackendContext(Network.REGTEST, tmp_path / "o"))
    foreign = await other.create_invoice(Msat(1_500_000), "r", 3600)
    await other.aclose()
    await kotani.client.submit_refund_invoice("F1", foreign.bolt11)
    await kotani.mock.idle()
    [failed] = await wait_for(recorder, "refund.failed")
    assert b"payment failed" in failed
    assert (await kotani.client.refund_status("F1")).refund_status == "FAILED"
    await kotani.client.retry_refund("F1")
    await kotani.mock.idle()
    assert (await kotani.client.refund_status("F1")).refund_status == "INVOICE_NEEDED"
    right = await kotani.node.create_invoice(Msat(1_500_000), "r", 3600)
    await kotani.client.submit_refund_invoice("F1", right.bolt11)
    await kotani.mock.idle()
    await wait_for(recorder, "refund.completed")
    assert len(await wait_for(recorder, "refund.lightning.invoice_needed")) == 1, "sent once"


async def test_redelivery_until_2xx_and_chaos(tmp_path: Path, recorder: Recorder) -> None:
    recorder.answers.extend([500, 503])
    async for served in serve(tmp_path, recorder, Chaos(duplicates=True, drop_first=True)):
        await offramp(served, "C1")
        await fail(served, "C1")
        for _ in range(500):
            deliveries = await served.mock.store.deliveries()
            if all(d["status"] == "delivered" for d in deliveries):
                break
            await asyncio.sleep(0.02)
    # Two webhooks, each: first attempt lost (--drop-first); then 500 and 503 were answered to
    # one attempt each; each ends delivered, and delivered twice (--duplicates).
    assert [d["status"] for d in deliveries] == ["delivered", "delivered"]
    assert sum(d["attempts"] for d in deliveries) == 2 + 2 + 2
    assert len(recorder.received) == 2 + 2 * 2
    bodies = [b for name, b, _ in recorder.received if name == "refund.lightning.invoice_needed"]
    assert bodies[0] == bodies[1], "a duplicate is the same bytes"


async def test_reorder_sends_a_batch_newest_first(tmp_path: Path, recorder: Recorder) -> None:
    async for served in serve(tmp_path, recorder, Chaos(reorder=True)):
        await offramp(served, "O1")
        await fail(served, "O1")
        await wait_for(recorder, "transaction.offramp.status.updated")
        await wait_for(recorder, "refund.lightning.invoice_needed")
    order = [name for name, _, _ in recorder.received]
    assert order.index("refund.lightning.invoice_needed") < order.index(
        "transaction.offramp.status.updated"
    )


async def test_patch_integrator_webhook(kotani: Served, recorder: Recorder) -> None:
    async with httpx.AsyncClient() as http:
        auth = {"Authorization": f"Bearer {KEY}"}
        bad = await http.patch(
            f"{kotani.url}/api/v3/integrator/webhook",
            json={"webhook_events": ["refund.nonsense"]},
            headers=auth,
        )
        assert bad.status_code == 400
        ok = await http.patch(
            f"{kotani.url}/api/v3/integrator/webhook",
            json={"webhook_secret": "whsec_new", "webhook_events": ["refund.completed"]},
            headers=auth,
        )
        assert ok.status_code == 200 and ok.json()["data"]["has_webhook_secret"] is True
        assert "whsec_new" not in ok.text
    await offramp(kotani, "P1")
    await fail(kotani, "P1")
    await kotani.mock.idle()
    await asyncio.sleep(0.3)
    assert recorder.received == [], "only subscribed events are sent"


async def test_crypto_bridge_rules_through_the_client(kotani: Served) -> None:
    rate = await kotani.client.bridge_rate(
        BridgeRateRequest(source_currency="KES", source_amount=Decimal(150))
    )
    assert rate.crypto_amount == 1_500_000
    from receiver.kotani.models import BridgeDepositRequest

    body = {
        "customer_key": "c",
        "provider_reference_id": "P-1",
        "amount": 150,
        "source_currency": "KES",
        "wallet_id": "w",
        "transaction_type": "bridge",
        "chain": "LIGHTNING",
        "token": "MSAT",
        "rate_id": rate.rate_id,
        "crypto_payment": {"amount_msat": 1_500_000},
        "settlement": {
            "amount": 150,
            "currency": "KES",
            "country": "KE",
            "recipient": {"phone_number": "+254700000000", "payment_method": "MOBILE_MONEY"},
        },
        "callback_url": "https://example.com/cb",
    }
    deposit = await kotani.client.bridge_create_deposit(BridgeDepositRequest.model_validate(body))
    ref = deposit.kotani_reference_id
    with pytest.raises(KotaniBadRequest):  # the rate was single use
        await kotani.client.bridge_create_deposit(BridgeDepositRequest.model_validate(body))

    async def refusal(used: int = 0) -> type[Exception]:
        with pytest.raises(KotaniBadRequest) as caught:
            await kotani.client.bridge_regenerate_refund_config(ref)
        # Kotani's one message for "not expired or limit reached": our count tells them apart.
        known = RegenerationState(ref, Chain.LIGHTNING, None, None, used, None)
        return type(map_kotani_refusal(caught.value, known))

    async def control(**body: object) -> None:
        async with httpx.AsyncClient() as http:
            answer = await http.post(f"{kotani.url}/_mock/deposits/{ref}", json=body)
        assert answer.status_code == 200, answer.text

    assert await refusal() is InvoiceNotExpired
    for n in range(3):
        await control(expire_invoice=True, last_regenerated_ago=31)
        config = await kotani.client.bridge_regenerate_refund_config(ref)
        assert config is not None and config.regeneration_count == n + 1
        if n == 0:
            await control(expire_invoice=True)
            assert await refusal() is RegeneratedTooRecently
    await control(expire_invoice=True, last_regenerated_ago=31)
    assert await refusal(used=3) is RegenerationLimitReached
    await control(status="COMPLETED")
    assert await refusal() is DepositTerminal
    got = await kotani.client.bridge_refund_config(ref)
    assert got.regenerations_remaining == 0 and got.refund_invoice is not None
