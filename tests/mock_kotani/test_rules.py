"""The imitation's rules, each broken one refused with Kotani's status and wording."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from receiver.amounts import Msat
from receiver.kotani.bridge_rules import (
    DepositTerminal,
    InvoiceNotExpired,
    NotLightning,
    RegeneratedTooRecently,
    RegenerationLimitReached,
    RegenerationState,
    map_kotani_refusal,
)
from receiver.kotani.errors import KotaniBadRequest
from receiver.kotani.models import Chain, DepositStatus
from receiver.lightning.base import BackendContext, Network
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.mock_kotani.rules import (
    Refusal,
    check_refund_invoice,
    check_regeneration,
    judge_invoice_answer,
)


@pytest.fixture
async def invoice(tmp_path: Path) -> tuple[str, str]:
    node = FakeBackend(FakeConfig(_env_file=None), BackendContext(Network.REGTEST, tmp_path))
    try:
        minted = await node.create_invoice(Msat(1_500_000), "refund", 3600)
    finally:
        await node.aclose()
    return minted.bolt11, minted.payment_hash


def test_a_valid_refund_invoice_is_accepted(invoice: tuple[str, str]) -> None:
    decoded = check_refund_invoice(invoice[0], 1_500_000, set(), time.time())
    assert decoded.payment_hash == invoice[1]


@pytest.mark.parametrize(
    ("amount", "paid", "later", "needle"),
    [
        (1_500_001, False, 0, "amount 1500000 msat, the refund is 1500001"),
        (1_500_000, False, 3601, "expired"),
        (1_500_000, True, 0, "already paid"),
    ],
)
def test_each_broken_invoice_rule_is_a_400(
    invoice: tuple[str, str], amount: int, paid: bool, later: int, needle: str
) -> None:
    hashes = {invoice[1]} if paid else set()
    with pytest.raises(Refusal) as caught:
        check_refund_invoice(invoice[0], amount, hashes, time.time() + later)
    assert caught.value.status == 400
    assert caught.value.message.startswith("Invalid invoice or not eligible for Lightning refund")
    assert needle in caught.value.message


@pytest.mark.parametrize("bad", ["", "lnbc1notaninvoice", 42, None])
def test_undecodable_invoices_are_a_400(bad: object) -> None:
    with pytest.raises(Refusal) as caught:
        check_refund_invoice(bad, 1000, set(), time.time())
    assert caught.value.status == 400


def test_judge_accepts_the_contract_answer(invoice: tuple[str, str]) -> None:
    body = {"bolt11": invoice[0], "payment_hash": invoice[1], "amount_msat": 1_500_000}
    verdict = judge_invoice_answer(200, body, 1_500_000, 0.2, time.time())
    assert verdict.ok and verdict.problems == []


def test_judge_lists_every_problem(invoice: tuple[str, str]) -> None:
    body = {"bolt11": invoice[0], "payment_hash": "00" * 32, "amount_msat": 1_500_000.0}
    verdict = judge_invoice_answer(200, body, 2_000_000, 10.5, time.time() + 4000)
    assert not verdict.ok
    text = " | ".join(verdict.problems)
    for needle in (
        "10.50 s",
        "not a JSON integer",
        "1500000 msat, not 2000000",
        "expired",
        "payment_hash",
    ):
        assert needle in text
    assert judge_invoice_answer(503, {"error": {}}, 1, 0.1, time.time()).problems == [
        "HTTP 503, not 200"
    ]


NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def state(**changes: object) -> RegenerationState:
    values: dict[str, object] = {
        "reference": "KOTANI-BR-1",
        "chain": Chain.LIGHTNING,
        "status": DepositStatus.PAYMENT_SENT,
        "expires_at": NOW - timedelta(seconds=1),
        "regeneration_count": 0,
        "last_regenerated_at": None,
    }
    values.update(changes)
    return RegenerationState(**values)  # type: ignore[arg-type]


def test_regeneration_allowed_when_every_rule_holds() -> None:
    check_regeneration(state(), NOW)
    check_regeneration(state(last_regenerated_at=NOW - timedelta(seconds=31)), NOW)


@pytest.mark.parametrize(
    ("changes", "client_error"),
    [
        ({"chain": Chain.CELO}, NotLightning),
        ({"status": DepositStatus.COMPLETED}, DepositTerminal),
        ({"status": DepositStatus.REFUNDED}, DepositTerminal),
        ({"regeneration_count": 3}, RegenerationLimitReached),
        ({"last_regenerated_at": NOW - timedelta(seconds=29)}, RegeneratedTooRecently),
        ({"expires_at": NOW + timedelta(minutes=5)}, InvoiceNotExpired),
    ],
)
def test_each_broken_regeneration_rule_is_a_400_the_client_reads_back(
    changes: dict[str, object], client_error: type[Exception]
) -> None:
    broken = state(**changes)
    with pytest.raises(Refusal) as caught:
        check_regeneration(broken, NOW)
    assert caught.value.status == 400
    # The service's own client maps Kotani's wording back onto the rule that was broken.
    answer = KotaniBadRequest("400", status_code=400, kotani_message=caught.value.message)
    assert type(map_kotani_refusal(answer, broken)) is client_error
