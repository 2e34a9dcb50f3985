"""Kotani's refund invoices are decoded and matched to their config before anyone sees them."""

from __future__ import annotations

from typing import Any

import pytest

from receiver.kotani.models import RefundConfig
from receiver.kotani.refund_invoice import (
    RefundInvoiceInvalid,
    check_refund_invoice,
    verify_refund_config,
)
from receiver.lightning.base import Network

from .conftest import Spec, sign_invoice

AMOUNT = 150_000_000


def config(spec: Spec, **changes: Any) -> RefundConfig:
    """The OpenAPI's RefundConfigDto example, with a real invoice unless overridden."""
    bolt11, payment_hash = sign_invoice(AMOUNT)
    data = spec.example("RefundConfigDto") | {
        "refund_invoice": bolt11,
        "refund_payment_hash": payment_hash,
        "refund_amount_msat": AMOUNT,
    }
    return RefundConfig.model_validate(data | changes)


def test_matching_invoice_passes(spec: Spec) -> None:
    good = config(spec)
    checked = check_refund_invoice(good, network=Network.BITCOIN)
    assert checked.amount_msat == AMOUNT
    assert checked.payment_hash == good.refund_payment_hash
    verified = verify_refund_config(good)
    assert verified.bolt11 == good.refund_invoice
    assert verified.public()["refund_invoice_check"] == "ok"


def test_payment_hash_compare_ignores_case(spec: Spec) -> None:
    good = config(spec)
    upper = good.model_copy(update={"refund_payment_hash": good.refund_payment_hash.upper()})  # type: ignore[union-attr]
    check_refund_invoice(upper)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"refund_amount_msat": AMOUNT + 1}, "amount"),
        ({"refund_amount_msat": None}, "amount"),
        ({"refund_payment_hash": "00" * 32}, "payment_hash"),
        ({"refund_payment_hash": None}, "payment_hash"),
        ({"refund_invoice": "lnbc1500n1p0xyz..."}, "undecodable"),
        ({"refund_invoice": ""}, "missing"),
    ],
)
def test_each_mismatch_is_named(spec: Spec, changes: dict[str, Any], reason: str) -> None:
    bad = config(spec, **changes)
    with pytest.raises(RefundInvoiceInvalid) as caught:
        check_refund_invoice(bad)
    assert caught.value.reason == reason
    assert caught.value.error_code == f"bridge.refund_invoice.{reason}"
    verified = verify_refund_config(bad)
    assert verified.bolt11 is None
    if bad.refund_invoice is not None:
        assert verified.public()["refund_invoice"] is None


def test_wrong_network_is_refused(spec: Spec) -> None:
    bolt11, payment_hash = sign_invoice(AMOUNT, currency="tb")
    testnet = config(spec, refund_invoice=bolt11, refund_payment_hash=payment_hash)
    with pytest.raises(RefundInvoiceInvalid) as caught:
        check_refund_invoice(testnet, network=Network.BITCOIN)
    assert caught.value.reason == "network"
    check_refund_invoice(testnet)  # network unknown (sandbox): not checked


def test_onchain_config_has_nothing_to_check(spec: Spec) -> None:
    data = spec.example("RefundConfigDto") | {"chain": "CELO", "primary_method": "CRYPTO_ADDRESS"}
    data.pop("refund_invoice")
    verified = verify_refund_config(RefundConfig.model_validate(data))
    assert verified.problem is None and verified.bolt11 is None
    assert "refund_invoice" not in verified.public()
