"""Core Lightning (clnrest) backend against respx with the documented shapes."""

from __future__ import annotations

import hashlib
import json

import coincurve
import pytest
import respx

from receiver.amounts import Msat
from receiver.errors import (
    BackendAuthError,
    BackendProtocolError,
    BackendRejected,
    BackendUnavailable,
)
from receiver.lightning.base import BackendContext, InvoiceState, Network
from receiver.lightning.cln import ClnBackend, ClnConfig
from tests.lightning.conftest import sent, signed_invoice

URL = "https://cln.test:3010"
RUNE = "tU-RLjMiDpY2U0o3W1oFowar36RFGpWloPbW9-RuZdo9MyZpZD0wMjRiOWExZmE4ZTAwNmYxZTM5M"


@pytest.fixture
def backend(context: BackendContext) -> ClnBackend:
    return ClnBackend(ClnConfig(url=URL, rune=RUNE), context)


async def test_invoice_request_and_answer(
    router: respx.MockRouter, backend: ClnBackend, node_key: coincurve.PrivateKey
) -> None:
    invoice, payment_hash = signed_invoice(node_key, 1_500_001)
    route = router.post(f"{URL}/v1/invoice").respond(
        201,
        json={
            "payment_hash": payment_hash,
            "expires_at": 1_700_003_600,
            "bolt11": invoice,
            "payment_secret": "11" * 32,
            "created_index": 4,
        },
    )
    minted = await backend.create_invoice(Msat(1_500_001), "Kotani Pay refund TXN-1", 3600)
    request = sent(route)
    assert request.method == "POST" and request.url.path == "/v1/invoice"
    assert request.headers["Rune"] == RUNE
    body = json.loads(request.content)
    label = body.pop("label")
    assert label.startswith("kotani-receiver-") and len(label) > 20
    assert body == {
        "amount_msat": 1_500_001,
        "description": "Kotani Pay refund TXN-1",
        "expiry": 3600,
    }
    assert (minted.bolt11, minted.payment_hash) == (invoice, payment_hash)


async def test_labels_are_unique(router: respx.MockRouter, backend: ClnBackend) -> None:
    route = router.post(f"{URL}/v1/invoice").respond(
        201, json={"payment_hash": "22" * 32, "bolt11": "lnbcrt1"}
    )
    for _ in range(3):
        await backend.create_invoice(Msat(1000), "m", 60)
    labels = {json.loads(call.request.content)["label"] for call in route.calls}
    assert len(labels) == 3


async def test_bare_description_hash_is_refused_without_a_request(backend: ClnBackend) -> None:
    assert backend.capabilities.description_hash is False
    with pytest.raises(BackendRejected):
        await backend.create_invoice(Msat(1000), "m", 60, hashlib.sha256(b"d").digest())


@pytest.mark.parametrize(
    ("listed", "state", "paid"),
    [
        ({"status": "paid", "amount_received_msat": 1_500_001}, InvoiceState.PAID, 1_500_001),
        # Core Lightning before 23.x: msat amounts as "<n>msat" strings.
        ({"status": "paid", "amount_received_msat": "1500001msat"}, InvoiceState.PAID, 1_500_001),
        ({"status": "unpaid"}, InvoiceState.PENDING, None),
        ({"status": "expired"}, InvoiceState.EXPIRED, None),
    ],
)
async def test_listinvoices_states(
    router: respx.MockRouter,
    backend: ClnBackend,
    listed: dict[str, object],
    state: InvoiceState,
    paid: int | None,
) -> None:
    payment_hash = "ab" * 32
    route = router.post(f"{URL}/v1/listinvoices").respond(
        201,
        json={
            "invoices": [
                {"label": "l", "payment_hash": payment_hash, "bolt11": "x", "expires_at": 1}
                | listed
            ]
        },
    )
    status = await backend.invoice_status(payment_hash)
    request = sent(route)
    assert request.headers["Rune"] == RUNE
    assert json.loads(request.content) == {"payment_hash": payment_hash}
    assert status.state is state and status.paid_msat == paid


async def test_unlisted_invoice_is_unknown(router: respx.MockRouter, backend: ClnBackend) -> None:
    router.post(f"{URL}/v1/listinvoices").respond(201, json={"invoices": []})
    assert (await backend.invoice_status("cd" * 32)).state is InvoiceState.UNKNOWN


async def test_getinfo(router: respx.MockRouter, backend: ClnBackend) -> None:
    node_id = "03" + "44" * 32
    route = router.post(f"{URL}/v1/getinfo").respond(
        201,
        json={"id": node_id, "alias": "cln-node", "network": "signet", "blockheight": 100},
    )
    info = await backend.info()
    request = sent(route)
    assert request.method == "POST" and request.headers["Rune"] == RUNE
    assert (info.node_id, info.network, info.alias) == (node_id, Network.SIGNET, "cln-node")


async def test_rpc_error_500_is_a_rejection_with_its_message(
    router: respx.MockRouter, backend: ClnBackend
) -> None:
    # clnrest forwards RPC errors as HTTP 500 with the RPC error object.
    router.post(f"{URL}/v1/invoice").respond(
        500, json={"code": 900, "message": "Duplicate label 'kotani-receiver-x'"}
    )
    with pytest.raises(BackendRejected) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert "RPC error 900: Duplicate label" in str(caught.value)


async def test_other_500_is_unavailable(router: respx.MockRouter, backend: ClnBackend) -> None:
    router.post(f"{URL}/v1/invoice").respond(500, text="Internal Server Error")
    with pytest.raises(BackendUnavailable):
        await backend.create_invoice(Msat(1000), "m", 60)


@pytest.mark.parametrize("status", [401, 403])
async def test_rune_refused(router: respx.MockRouter, backend: ClnBackend, status: int) -> None:
    router.post(f"{URL}/v1/invoice").respond(
        status, json={"code": 1502, "message": f"Not authorized: rune {RUNE} not authorized"}
    )
    with pytest.raises(BackendAuthError) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert RUNE not in str(caught.value)


async def test_rune_scrubbed_from_rpc_messages(
    router: respx.MockRouter, backend: ClnBackend
) -> None:
    router.post(f"{URL}/v1/invoice").respond(
        500, json={"code": -32602, "message": f"unexpected parameter near {RUNE}"}
    )
    with pytest.raises(BackendRejected) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert RUNE not in str(caught.value) and "***" in str(caught.value)
    assert RUNE not in repr(backend)
    assert RUNE not in repr(ClnConfig(url=URL, rune=RUNE))


async def test_ill_shaped_answer(router: respx.MockRouter, backend: ClnBackend) -> None:
    router.post(f"{URL}/v1/invoice").respond(201, json={"bolt11": "lnbcrt1"})
    with pytest.raises(BackendProtocolError):
        await backend.create_invoice(Msat(1000), "m", 60)


@pytest.mark.parametrize("amount", ["1500001", "1.5btc", 1500001.5, "msat"])
async def test_a_paid_amount_in_no_known_form_is_a_protocol_error(
    router: respx.MockRouter, backend: ClnBackend, amount: object
) -> None:
    payment_hash = "cd" * 32
    router.post(f"{URL}/v1/listinvoices").respond(
        201, json={"invoices": [{"status": "paid", "amount_received_msat": amount}]}
    )
    with pytest.raises(BackendProtocolError):
        await backend.invoice_status(payment_hash)
