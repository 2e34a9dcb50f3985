"""Eclair backend against respx with the documented shapes (form fields, basic auth)."""

from __future__ import annotations

import base64
import hashlib

import coincurve
import pytest
import respx

from receiver.amounts import Msat
from receiver.errors import BackendAuthError, BackendRejected, BackendUnavailable
from receiver.lightning.base import BackendContext, InvoiceState, Network
from receiver.lightning.eclair import EclairBackend, EclairConfig
from tests.lightning.conftest import form, sent, signed_invoice

URL = "http://127.0.0.1:8080"
PASSWORD = "21satoshi-but-longer-and-secret"
AUTH = "Basic " + base64.b64encode(f":{PASSWORD}".encode()).decode()


@pytest.fixture
def backend(context: BackendContext) -> EclairBackend:
    return EclairBackend(EclairConfig(url=URL, password=PASSWORD), context)


async def test_createinvoice_request_and_answer(
    router: respx.MockRouter, backend: EclairBackend, node_key: coincurve.PrivateKey
) -> None:
    invoice, payment_hash = signed_invoice(node_key, 1_500_001)
    node_id = node_key.public_key.format(compressed=True).hex()
    route = router.post(f"{URL}/createinvoice").respond(
        200,
        json={
            "prefix": "lnbcrt",
            "timestamp": 1_700_000_000,
            "nodeId": node_id,
            "serialized": invoice,
            "description": "Kotani Pay refund TXN-1",
            "paymentHash": payment_hash,
            "expiry": 3600,
            "amount": 1_500_001,
        },
    )
    minted = await backend.create_invoice(Msat(1_500_001), "Kotani Pay refund TXN-1", 3600)
    request = sent(route)
    assert request.method == "POST" and request.headers["Authorization"] == AUTH
    assert form(request) == {
        "amountMsat": "1500001",
        "description": "Kotani Pay refund TXN-1",
        "expireIn": "3600",
    }
    assert (minted.bolt11, minted.payment_hash, minted.node_id) == (invoice, payment_hash, node_id)


async def test_description_hash_field(router: respx.MockRouter, backend: EclairBackend) -> None:
    digest = hashlib.sha256(b"metadata").digest()
    route = router.post(f"{URL}/createinvoice").respond(
        200, json={"serialized": "lnbcrt1", "paymentHash": "33" * 32}
    )
    await backend.create_invoice(Msat(1001), "memo", 600, digest)
    assert form(sent(route)) == {
        "amountMsat": "1001",
        "descriptionHash": digest.hex(),
        "expireIn": "600",
    }


@pytest.mark.parametrize(
    ("status", "state", "paid"),
    [
        ({"type": "received", "amount": 1_500_001, "receivedAt": {}}, InvoiceState.PAID, 1_500_001),
        ({"type": "pending"}, InvoiceState.PENDING, None),
        ({"type": "expired"}, InvoiceState.EXPIRED, None),
    ],
)
async def test_getreceivedinfo_states(
    router: respx.MockRouter,
    backend: EclairBackend,
    status: dict[str, object],
    state: InvoiceState,
    paid: int | None,
) -> None:
    payment_hash = "ab" * 32
    route = router.post(f"{URL}/getreceivedinfo").respond(
        200,
        json={"paymentRequest": {}, "paymentPreimage": "cd" * 32, "status": status},
    )
    result = await backend.invoice_status(payment_hash)
    request = sent(route)
    assert request.headers["Authorization"] == AUTH
    assert form(request) == {"paymentHash": payment_hash}
    assert result.state is state and result.paid_msat == paid


async def test_unknown_payment(router: respx.MockRouter, backend: EclairBackend) -> None:
    router.post(f"{URL}/getreceivedinfo").respond(404, json={"error": "Not found"})
    assert (await backend.invoice_status("12" * 32)).state is InvoiceState.UNKNOWN


async def test_getinfo(router: respx.MockRouter, backend: EclairBackend) -> None:
    node_id = "03" + "66" * 32
    route = router.post(f"{URL}/getinfo").respond(
        200,
        json={
            "version": "0.10.0",
            "nodeId": node_id,
            "alias": "ACINQ",
            "color": "#49daaa",
            "features": {},
            "chainHash": "06226e46111a0b59caaf126043eb5bbf28c34f3a5e332a1fc7b2b73cf188910f",
            "network": "regtest",
            "blockHeight": 123,
            "publicAddresses": [],
            "instanceId": "x",
        },
    )
    info = await backend.info()
    assert sent(route).method == "POST"
    assert (info.node_id, info.network, info.alias) == (node_id, Network.REGTEST, "ACINQ")


@pytest.mark.parametrize(
    ("status", "body", "error", "fragment"),
    [
        (400, {"error": "amountMsat must be positive"}, BackendRejected, "must be positive"),
        (401, {"error": "invalid password"}, BackendAuthError, "401"),
        (503, {"error": "node is not ready"}, BackendUnavailable, "not ready"),
    ],
)
async def test_error_answers(
    router: respx.MockRouter,
    backend: EclairBackend,
    status: int,
    body: object,
    error: type[Exception],
    fragment: str,
) -> None:
    router.post(f"{URL}/createinvoice").respond(status, json=body)
    with pytest.raises(error) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert fragment in str(caught.value)
    assert PASSWORD not in str(caught.value) and PASSWORD not in repr(backend)
