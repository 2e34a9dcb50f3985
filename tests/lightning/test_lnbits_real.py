"""The ``lnbits`` and ``lnaddress`` backends against a real LNbits (FakeWallet) on loopback."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import bolt11
import pytest

from receiver.amounts import Msat
from receiver.errors import (
    AmountNotRepresentable,
    BackendAuthError,
    ConfigError,
    InvalidInvoice,
)
from receiver.lightning.base import BackendContext, InvoiceState, Network
from receiver.lightning.lnaddress import LnAddressBackend, LnAddressConfig
from receiver.lightning.lnbits import LnbitsBackend, LnbitsConfig
from receiver.lightning.registry import load_backend
from receiver.verify import Expectation, verify_invoice
from tests.lightning.lnbits_server import LnbitsServer

AMOUNT = Msat(1_500_000)


@pytest.fixture
def mainnet(tmp_path: Path) -> BackendContext:
    # LNbits' FakeWallet signs ``lnbc`` invoices, i.e. network bitcoin.
    return BackendContext(network=Network.BITCOIN, data_dir=tmp_path / "data")


def lnbits_backend(lnbits: LnbitsServer, context: BackendContext, key: str = "") -> LnbitsBackend:
    assert lnbits.account is not None
    config = LnbitsConfig(url=lnbits.url, key=key or lnbits.account.inkey)
    return LnbitsBackend(config, context)


async def test_lnbits_mints_exact_amount_and_reports_status(
    lnbits: LnbitsServer, mainnet: BackendContext
) -> None:
    backend = lnbits_backend(lnbits, mainnet)
    try:
        minted = await backend.create_invoice(AMOUNT, "Kotani Pay refund TXN-1", 3600)
        decoded = bolt11.decode(minted.bolt11)  # independent of the service's own decoder
        assert decoded.amount_msat == 1_500_000
        assert decoded.currency == "bc"
        assert decoded.payment_hash == minted.payment_hash
        assert decoded.description == "Kotani Pay refund TXN-1"
        checked = verify_invoice(
            minted.bolt11,
            Expectation(
                network=Network.BITCOIN, amount_msat=AMOUNT, payment_hash=minted.payment_hash
            ),
            decoded.date,
        )
        assert checked.amount_msat == AMOUNT

        status = await backend.invoice_status(minted.payment_hash)
        assert status.state is InvoiceState.PENDING
        unknown = await backend.invoice_status("00" * 32)
        assert unknown.state is InvoiceState.UNKNOWN
        info = await backend.info()
        assert info.alias == "kotani-receiver-tests"
    finally:
        await backend.aclose()


async def test_lnbits_commits_to_description_hash(
    lnbits: LnbitsServer, mainnet: BackendContext
) -> None:
    backend = lnbits_backend(lnbits, mainnet)
    digest = hashlib.sha256(b"a long description").digest()
    try:
        minted = await backend.create_invoice(Msat(21_000), "ignored", 600, digest)
    finally:
        await backend.aclose()
    decoded = bolt11.decode(minted.bolt11)
    assert decoded.description_hash == digest.hex()
    assert decoded.amount_msat == 21_000


async def test_lnbits_refuses_odd_msat_before_any_request(mainnet: BackendContext) -> None:
    # Port 9 on loopback is closed: a request would fail as unavailable, not as precision.
    backend = LnbitsBackend(LnbitsConfig(url="http://127.0.0.1:9", key="k" * 32), mainnet)
    try:
        with pytest.raises(AmountNotRepresentable) as caught:
            await backend.create_invoice(Msat(1_500_001), "x", 3600)
    finally:
        await backend.aclose()
    assert caught.value.code == "backend.amount_precision"


async def test_lnbits_unknown_key_is_auth_error_without_the_key(
    lnbits: LnbitsServer, mainnet: BackendContext
) -> None:
    wrong = "f" * 32
    backend = lnbits_backend(lnbits, mainnet, key=wrong)
    try:
        with pytest.raises(BackendAuthError) as caught:
            await backend.create_invoice(AMOUNT, "x", 3600)
    finally:
        await backend.aclose()
    assert wrong not in str(caught.value)
    assert wrong not in repr(backend)


async def test_lnaddress_mints_exact_amount_committed_to_metadata(
    lnbits: LnbitsServer, mainnet: BackendContext
) -> None:
    backend = LnAddressBackend(
        LnAddressConfig(lnaddress=lnbits.lnurlp_url, lnaddress_allow_private=True), mainnet
    )
    try:
        minted = await backend.create_invoice(AMOUNT, "ignored by LNURL", 3600)
        info = await backend.info()
        # LNbits' own addresses offer no LUD-21 verify URL: the status is unknown, not guessed.
        status = await backend.invoice_status(minted.payment_hash)
    finally:
        await backend.aclose()
    decoded = bolt11.decode(minted.bolt11)
    assert decoded.amount_msat == 1_500_000
    assert decoded.payment_hash == minted.payment_hash
    assert lnbits.account is not None
    identifier = f"{lnbits.account.lightning_address}@127.0.0.1:{lnbits.port}"
    metadata = json.dumps(
        [["text/plain", f"Payment to {identifier}"], ["text/identifier", identifier]]
    )
    assert decoded.description_hash == hashlib.sha256(metadata.encode()).hexdigest()
    assert info.alias == "127.0.0.1"
    assert status.state is InvoiceState.UNKNOWN


async def test_lnaddress_catches_a_service_that_rounds_to_sats(
    lnbits: LnbitsServer, mainnet: BackendContext
) -> None:
    # LNbits answers a 1,500 msat request with a 1 sat invoice: it must never be handed out.
    backend = LnAddressBackend(
        LnAddressConfig(lnaddress=lnbits.lnurlp_url, lnaddress_allow_private=True), mainnet
    )
    try:
        with pytest.raises(InvalidInvoice) as caught:
            await backend.create_invoice(Msat(1_500), "x", 3600)
    finally:
        await backend.aclose()
    assert caught.value.error_code == "backend.invalid_invoice.amount"
    assert "1000 msat instead of 1500" in caught.value.message


def test_lnaddress_on_loopback_needs_the_url_form(
    lnbits: LnbitsServer, mainnet: BackendContext, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert lnbits.account is not None
    monkeypatch.setenv("RECEIVER_LNADDRESS", f"{lnbits.account.lightning_address}@127.0.0.1")
    with pytest.raises(ConfigError) as caught:
        load_backend("lnaddress", mainnet)
    assert "RECEIVER_LNADDRESS" in str(caught.value)
    monkeypatch.setenv("RECEIVER_LNADDRESS", lnbits.lnurlp_url)
    backend = load_backend("lnaddress", mainnet)
    assert isinstance(backend, LnAddressBackend) and backend.url == lnbits.lnurlp_url
