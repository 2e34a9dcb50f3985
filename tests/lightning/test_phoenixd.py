"""phoenixd backend against respx with the documented shapes (form fields, basic auth)."""

from __future__ import annotations

import base64
import hashlib
import time

import coincurve
import pytest
import respx

from receiver.amounts import Msat
from receiver.errors import AmountNotRepresentable, BackendAuthError, BackendRejected
from receiver.lightning.base import BackendContext, InvoiceState, Network
from receiver.lightning.phoenixd import PhoenixdBackend, PhoenixdConfig
from tests.lightning.conftest import form, sent, signed_invoice
from tests.support.faulty import sign

URL = "http://127.0.0.1:9740"
PASSWORD = "b2c4e1f0a9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1d0c9b8a7f6e5d4c3b2"
AUTH = "Basic " + base64.b64encode(f":{PASSWORD}".encode()).decode()


@pytest.fixture
def backend(context: BackendContext) -> PhoenixdBackend:
    return PhoenixdBackend(PhoenixdConfig(url=URL, password=PASSWORD), context)


async def test_createinvoice_request_and_answer(
    router: respx.MockRouter, backend: PhoenixdBackend, node_key: coincurve.PrivateKey
) -> None:
    invoice, payment_hash = signed_invoice(node_key, 1_500_000)
    route = router.post(f"{URL}/createinvoice").respond(
        200, json={"amountSat": 1500, "paymentHash": payment_hash, "serialized": invoice}
    )
    minted = await backend.create_invoice(Msat(1_500_000), "Kotani Pay refund TXN-1", 3600)
    request = sent(route)
    assert request.method == "POST" and request.headers["Authorization"] == AUTH
    assert form(request) == {
        "amountSat": "1500",
        "description": "Kotani Pay refund TXN-1",
        "expirySeconds": "3600",
    }
    assert (minted.bolt11, minted.payment_hash) == (invoice, payment_hash)


async def test_description_hash_field(router: respx.MockRouter, backend: PhoenixdBackend) -> None:
    digest = hashlib.sha256(b"metadata").digest()
    route = router.post(f"{URL}/createinvoice").respond(
        200, json={"amountSat": 2, "paymentHash": "33" * 32, "serialized": "lnbcrt1"}
    )
    await backend.create_invoice(Msat(2000), "memo", 600, digest)
    assert form(sent(route)) == {
        "amountSat": "2",
        "descriptionHash": digest.hex(),
        "expirySeconds": "600",
    }


async def test_sats_only_refuses_odd_msat_without_a_request(backend: PhoenixdBackend) -> None:
    assert backend.capabilities.msat_precision is False
    with pytest.raises(AmountNotRepresentable) as caught:
        await backend.create_invoice(Msat(1_001), "m", 60)
    assert caught.value.code == "backend.amount_precision"


async def test_long_description_refused_locally(backend: PhoenixdBackend) -> None:
    with pytest.raises(BackendRejected, match="128"):
        await backend.create_invoice(Msat(1000), "x" * 129, 60)


async def test_incoming_payment_paid(router: respx.MockRouter, backend: PhoenixdBackend) -> None:
    payment_hash = "ab" * 32
    route = router.get(f"{URL}/payments/incoming/{payment_hash}").respond(
        200,
        json={
            "paymentHash": payment_hash,
            "preimage": "cd" * 32,
            "externalId": None,
            "description": "d",
            "invoice": "lnbcrt1",
            "isPaid": True,
            "receivedSat": 1500,
            "fees": 0,
            "completedAt": 1_700_000_000_000,
            "createdAt": 1_699_999_000_000,
        },
    )
    status = await backend.invoice_status(payment_hash)
    assert sent(route).headers["Authorization"] == AUTH
    assert status.state is InvoiceState.PAID and status.paid_msat == 1_500_000


@pytest.mark.parametrize(
    ("age", "state"), [(0, InvoiceState.PENDING), (7200, InvoiceState.EXPIRED)]
)
async def test_incoming_payment_unpaid_uses_the_invoice_expiry(
    router: respx.MockRouter,
    backend: PhoenixdBackend,
    node_key: coincurve.PrivateKey,
    age: int,
    state: InvoiceState,
) -> None:
    payment_hash = "ef" * 32
    invoice = sign(
        node_key,
        currency="bcrt",
        amount_msat=1000,
        payment_hash=payment_hash,
        expiry=3600,
        date=int(time.time()) - age,
    )
    router.get(f"{URL}/payments/incoming/{payment_hash}").respond(
        200,
        json={"paymentHash": payment_hash, "isPaid": False, "receivedSat": 0, "invoice": invoice},
    )
    assert (await backend.invoice_status(payment_hash)).state is state


async def test_unknown_incoming_payment(router: respx.MockRouter, backend: PhoenixdBackend) -> None:
    router.get(f"{URL}/payments/incoming/{'12' * 32}").respond(404, text="")
    assert (await backend.invoice_status("12" * 32)).state is InvoiceState.UNKNOWN


async def test_getinfo(router: respx.MockRouter, backend: PhoenixdBackend) -> None:
    node_id = "02" + "55" * 32
    route = router.get(f"{URL}/getinfo").respond(
        200,
        json={
            "nodeId": node_id,
            "channels": [],
            "chain": "mainnet",
            "blockHeight": 850000,
            "version": "0.5.1",
        },
    )
    info = await backend.info()
    assert sent(route).headers["Authorization"] == AUTH
    assert (info.node_id, info.network) == (node_id, Network.BITCOIN)


async def test_wrong_password(router: respx.MockRouter, backend: PhoenixdBackend) -> None:
    router.post(f"{URL}/createinvoice").respond(
        401,
        text="Invalid authentication (use basic auth with the http password set in phoenix.conf)",
    )
    with pytest.raises(BackendAuthError) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert PASSWORD not in str(caught.value)


async def test_bad_request_keeps_message_without_secrets(
    router: respx.MockRouter, backend: PhoenixdBackend
) -> None:
    router.post(f"{URL}/createinvoice").respond(
        400, text=f"Missing parameter; Authorization: {AUTH}; password={PASSWORD}"
    )
    with pytest.raises(BackendRejected) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    message = str(caught.value)
    assert "Missing parameter" in message
    assert PASSWORD not in message and AUTH.removeprefix("Basic ") not in message
    assert PASSWORD not in repr(backend)
    assert PASSWORD not in repr(PhoenixdConfig(url=URL, password=PASSWORD))
