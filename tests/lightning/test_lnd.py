"""LND REST backend against respx with the documented shapes (LND cannot run here)."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from pathlib import Path

import coincurve
import httpx
import pytest
import respx

from receiver.amounts import Msat
from receiver.errors import (
    BackendAuthError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from receiver.lightning.base import BackendContext, InvoiceState, Network
from receiver.lightning.lnd import LndBackend, LndConfig
from receiver.lightning.registry import load_backend
from tests.lightning.conftest import sent, signed_invoice

URL = "https://lnd.test:8080"
MACAROON = "0201036c6e6402f801030a10" + "ab" * 40


@pytest.fixture
def backend(context: BackendContext) -> LndBackend:
    return LndBackend(LndConfig(url=URL, macaroon=MACAROON), context)


async def test_add_invoice_request_and_answer(
    router: respx.MockRouter, backend: LndBackend, node_key: coincurve.PrivateKey
) -> None:
    invoice, payment_hash = signed_invoice(node_key, 1_500_001)
    route = router.post(f"{URL}/v1/invoices").respond(
        200,
        json={
            "r_hash": base64.b64encode(bytes.fromhex(payment_hash)).decode(),
            "payment_request": invoice,
            "add_index": "7",
            "payment_addr": base64.b64encode(b"\x01" * 32).decode(),
        },
    )
    minted = await backend.create_invoice(Msat(1_500_001), "Kotani Pay refund TXN-1", 3600)
    request = sent(route)
    assert request.method == "POST" and request.url.path == "/v1/invoices"
    assert request.headers["Grpc-Metadata-macaroon"] == MACAROON
    assert json.loads(request.content) == {
        "value_msat": 1_500_001,
        "expiry": 3600,
        "memo": "Kotani Pay refund TXN-1",
    }
    assert minted.bolt11 == invoice and minted.payment_hash == payment_hash


async def test_description_hash_is_base64_and_replaces_memo(
    router: respx.MockRouter, backend: LndBackend
) -> None:
    digest = hashlib.sha256(b"metadata").digest()
    route = router.post(f"{URL}/v1/invoices").respond(
        200, json={"r_hash": base64.b64encode(b"\x02" * 32).decode(), "payment_request": "lnbcrt1"}
    )
    minted = await backend.create_invoice(Msat(1000), "memo", 600, digest)
    body = json.loads(sent(route).content)
    assert body == {
        "value_msat": 1000,
        "expiry": 600,
        "description_hash": base64.b64encode(digest).decode(),
    }
    assert minted.payment_hash == "02" * 32


@pytest.mark.parametrize(
    ("answer", "state", "paid"),
    [
        ({"state": "SETTLED", "amt_paid_msat": "1500001"}, InvoiceState.PAID, 1_500_001),
        (
            {"state": "OPEN", "creation_date": str(int(time.time())), "expiry": "3600"},
            InvoiceState.PENDING,
            None,
        ),
        (
            {"state": "OPEN", "creation_date": str(int(time.time()) - 7200), "expiry": "3600"},
            InvoiceState.EXPIRED,
            None,
        ),
        ({"state": "CANCELED"}, InvoiceState.EXPIRED, None),
        # An HTLC in flight: neither paid nor "unpaid" (never handed out again).
        ({"state": "ACCEPTED"}, InvoiceState.ACCEPTED, None),
    ],
)
async def test_lookup_invoice_states(
    router: respx.MockRouter,
    backend: LndBackend,
    answer: dict[str, str],
    state: InvoiceState,
    paid: int | None,
) -> None:
    payment_hash = "ab" * 32
    route = router.get(f"{URL}/v1/invoice/{payment_hash}").respond(200, json=answer)
    status = await backend.invoice_status(payment_hash.upper())
    request = sent(route)
    assert request.method == "GET" and request.headers["Grpc-Metadata-macaroon"] == MACAROON
    assert status.state is state and status.paid_msat == paid


async def test_unknown_invoice_is_unknown(router: respx.MockRouter, backend: LndBackend) -> None:
    router.get(f"{URL}/v1/invoice/{'cd' * 32}").respond(
        404, json={"code": 5, "message": "there are no existing invoices", "details": []}
    )
    assert (await backend.invoice_status("cd" * 32)).state is InvoiceState.UNKNOWN
    # Not a payment hash at all: no request (respx would refuse an unmocked one).
    assert (await backend.invoice_status("../getinfo")).state is InvoiceState.UNKNOWN


async def test_getinfo_gives_node_and_network_then_invoices_name_the_node(
    router: respx.MockRouter,
    backend: LndBackend,
) -> None:
    node_id = "02" + "11" * 32
    route = router.get(f"{URL}/v1/getinfo").respond(
        200,
        json={
            "identity_pubkey": node_id,
            "alias": "my-lnd",
            "chains": [{"chain": "bitcoin", "network": "regtest"}],
            "synced_to_chain": True,
        },
    )
    info = await backend.info()
    assert sent(route).headers["Grpc-Metadata-macaroon"] == MACAROON
    assert (info.node_id, info.network, info.alias) == (node_id, Network.REGTEST, "my-lnd")
    router.post(f"{URL}/v1/invoices").respond(
        200, json={"r_hash": base64.b64encode(b"\x03" * 32).decode(), "payment_request": "x"}
    )
    minted = await backend.create_invoice(Msat(1000), "m", 60)
    assert minted.node_id == node_id  # so verification also checks the signer


@pytest.mark.parametrize(
    ("status", "body", "error", "fragment"),
    [
        (
            500,
            {"code": 2, "message": "invoice with payment hash already exists", "details": []},
            BackendUnavailable,
            "invoice with payment hash already exists",
        ),
        (
            400,
            {"code": 3, "message": "memo too large: 700 bytes (maxsize=639)", "details": []},
            BackendRejected,
            "memo too large",
        ),
        (401, {"code": 16, "message": "permission denied", "details": []}, BackendAuthError, "401"),
        (
            403,
            {"code": 7, "message": "verification failed", "details": []},
            BackendAuthError,
            "403",
        ),
    ],
)
async def test_error_answers_are_mapped_with_the_node_message(
    router: respx.MockRouter,
    backend: LndBackend,
    status: int,
    body: object,
    error: type[Exception],
    fragment: str,
) -> None:
    router.post(f"{URL}/v1/invoices").respond(status, json=body)
    with pytest.raises(error) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert fragment in str(caught.value)
    assert caught.value.__cause__ is None or isinstance(caught.value.__cause__, Exception)


async def test_ill_shaped_and_non_json_answers_are_protocol_errors(
    router: respx.MockRouter, backend: LndBackend
) -> None:
    router.post(f"{URL}/v1/invoices").mock(
        side_effect=[
            httpx.Response(200, text="<html>proxy</html>"),
            httpx.Response(200, json={"payment_request": "lnbcrt1"}),
            httpx.Response(200, json={"r_hash": "!!not base64!!", "payment_request": "x"}),
        ]
    )
    for _ in range(3):
        with pytest.raises(BackendProtocolError) as caught:
            await backend.create_invoice(Msat(1000), "m", 60)
        assert caught.value.code == "backend.protocol"


async def test_transport_errors(router: respx.MockRouter, backend: LndBackend) -> None:
    router.get(f"{URL}/v1/getinfo").mock(
        side_effect=[
            httpx.ConnectError("connection refused"),
            httpx.ConnectTimeout("connect timed out"),
            httpx.ReadTimeout("read timed out"),
            httpx.PoolTimeout("pool"),
        ]
    )
    with pytest.raises(BackendUnavailable) as refused:
        await backend.info()
    assert isinstance(refused.value.__cause__, httpx.ConnectError)
    for _ in range(3):
        with pytest.raises(BackendTimeout) as timed_out:
            await backend.info()
        assert isinstance(timed_out.value.__cause__, httpx.TimeoutException)


async def test_macaroon_never_in_errors_or_repr(
    router: respx.MockRouter, backend: LndBackend
) -> None:
    # A misbehaving proxy echoing our headers back must not leak the macaroon.
    router.post(f"{URL}/v1/invoices").respond(
        400, json={"message": f"bad header Grpc-Metadata-macaroon: {MACAROON}"}
    )
    with pytest.raises(BackendRejected) as caught:
        await backend.create_invoice(Msat(1000), "m", 60)
    assert MACAROON not in str(caught.value)
    assert "***" in str(caught.value)
    assert MACAROON not in repr(backend)
    assert MACAROON not in repr(LndConfig(url=URL, macaroon=MACAROON))


def test_macaroon_from_file_and_bad_values(
    context: BackendContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "invoice.macaroon"
    path.write_bytes(bytes.fromhex(MACAROON))
    config = LndConfig(url=URL, macaroon=str(path))
    assert config.macaroon.get_secret_value() == MACAROON

    monkeypatch.setenv("RECEIVER_LND_URL", URL)
    monkeypatch.setenv("RECEIVER_LND_MACAROON", "not-hex-and-no-file-s3cret")
    with pytest.raises(ConfigError) as caught:
        load_backend("lnd", context)
    assert "RECEIVER_LND_MACAROON" in str(caught.value)
    assert "s3cret" not in str(caught.value)

    monkeypatch.setenv("RECEIVER_LND_MACAROON", MACAROON)
    monkeypatch.setenv("RECEIVER_LND_CERT", str(tmp_path / "missing.cert"))
    with pytest.raises(ConfigError, match="RECEIVER_LND_CERT"):
        load_backend("lnd", context)
    # An empty value (as copied from .env.example) means "not set".
    monkeypatch.setenv("RECEIVER_LND_CERT", "")
    assert isinstance(load_backend("lnd", context), LndBackend)
    monkeypatch.setenv("RECEIVER_LND_URL", "")
    with pytest.raises(ConfigError, match="RECEIVER_LND_URL"):
        load_backend("lnd", context)
