"""Decoding and checking invoices (receiver.verify)."""

from __future__ import annotations

import hashlib
import os
import time

import coincurve
import pytest
from hypothesis import given
from hypothesis import strategies as st

from receiver.errors import InvalidInvoice
from receiver.lightning.base import Network
from receiver.verify import Expectation, decode_invoice, hrp_amount_msat, verify_invoice
from tests.support.faulty import sign

KEY = coincurve.PrivateKey(os.urandom(32))
NODE = KEY.public_key.format(compressed=True).hex()


def invoice(amount: int = 1_500_000, expiry: int = 3600, currency: str = "bcrt") -> tuple[str, str]:
    payment_hash = hashlib.sha256(os.urandom(8)).hexdigest()
    encoded = sign(
        KEY, currency=currency, amount_msat=amount, payment_hash=payment_hash, expiry=expiry
    )
    return encoded, payment_hash


@pytest.mark.parametrize(
    ("hrp", "msat"),
    [
        ("lnbc1", 10**11),
        ("lnbc25m", 25 * 10**8),
        ("lnbc2500u", 2500 * 10**5),
        ("lnbc1500n", 150_000),
        ("lnbc10p", 1),
        ("lnbc9990p", 999),
        ("lnbcrt15u", 1_500_000),
        ("lntbs3m", 3 * 10**8),
    ],
)
def test_hrp_amounts(hrp: str, msat: int) -> None:
    assert hrp_amount_msat(hrp + "1qqqq") == msat


def test_hrp_sub_msat_and_leading_zero_are_refused() -> None:
    with pytest.raises(InvalidInvoice):
        hrp_amount_msat("lnbc15p1qqqq")
    with pytest.raises(InvalidInvoice):
        hrp_amount_msat("lnbc015u1qqqq")


def test_amountless_invoice_has_no_amount() -> None:
    assert hrp_amount_msat("lnbc1qqqq") is None


def test_good_invoice_passes_all_checks() -> None:
    encoded, payment_hash = invoice()
    decoded = verify_invoice(
        encoded,
        Expectation(Network.REGTEST, 1_500_000, payment_hash, NODE, min_validity=600),  # type: ignore[arg-type]
        time.time(),
    )
    assert decoded.amount_msat == 1_500_000 and decoded.payee == NODE


@pytest.mark.parametrize(
    ("expect_kwargs", "reason"),
    [
        ({"network": Network.BITCOIN}, "network"),
        ({"amount_msat": 1_500_001}, "amount"),
        ({"payment_hash": "00" * 32}, "payment_hash"),
        ({"node_id": "02" + "11" * 32}, "node_id"),
        ({"min_validity": 4000}, "expiry"),
        ({"description_hash": "00" * 32}, "description_hash"),
    ],
)
def test_each_check_fails_alone(expect_kwargs: dict[str, object], reason: str) -> None:
    encoded, payment_hash = invoice()
    values: dict[str, object] = {
        "network": Network.REGTEST,
        "amount_msat": 1_500_000,
        "payment_hash": payment_hash,
        "node_id": NODE,
        "min_validity": 600,
    }
    values.update(expect_kwargs)
    with pytest.raises(InvalidInvoice) as caught:
        verify_invoice(encoded, Expectation(**values), time.time())  # type: ignore[arg-type]
    assert caught.value.reason == reason
    assert caught.value.error_code == f"backend.invalid_invoice.{reason}"


def test_future_dated_invoice_is_refused() -> None:
    payment_hash = hashlib.sha256(b"x").hexdigest()
    encoded = sign(
        KEY,
        currency="bcrt",
        amount_msat=1000,
        payment_hash=payment_hash,
        expiry=3600,
        date=int(time.time()) + 3 * 3600,
    )
    with pytest.raises(InvalidInvoice) as caught:
        verify_invoice(encoded, Expectation(Network.REGTEST), time.time())
    assert caught.value.reason == "timestamp"


def test_tampered_invoice_does_not_verify_as_the_same_node() -> None:
    encoded, _ = invoice()
    # Flip one data character (keeping a valid checksum is not possible: decoding must fail).
    position = len(encoded) // 2
    flipped = (
        encoded[:position] + ("q" if encoded[position] != "q" else "p") + encoded[position + 1 :]
    )
    with pytest.raises(InvalidInvoice):
        decode_invoice(flipped)


@given(st.text(max_size=300))
def test_decode_never_raises_anything_else(text: str) -> None:
    try:
        decode_invoice(text)
    except InvalidInvoice:
        pass
