"""The regeneration rules as pure functions, and Kotani's refusals mapped onto them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from receiver.kotani.bridge_rules import (
    AlreadyRegenerated,
    BridgeDepositNotFound,
    DepositTerminal,
    InvoiceNotExpired,
    NotLightning,
    RegeneratedTooRecently,
    RegenerationLimitReached,
    RegenerationRefused,
    RegenerationState,
    check_regeneration,
    map_kotani_refusal,
    regeneration_refusal,
)
from receiver.kotani.errors import KotaniBadRequest, KotaniNotFound, KotaniServerError
from receiver.kotani.models import Chain, DepositStatus

NOW = datetime(2024, 11, 22, 13, 0, 5, tzinfo=UTC)
ALLOWED = RegenerationState(
    reference="KOTANI-BR-1",
    chain=Chain.LIGHTNING,
    status=DepositStatus.PAYMENT_SENT,
    expires_at=NOW - timedelta(seconds=5),
    regeneration_count=0,
    last_regenerated_at=None,
)


def with_(**changes: object) -> RegenerationState:
    return RegenerationState(**{**ALLOWED.__dict__, **changes})  # type: ignore[arg-type]


def test_allowed_state_passes() -> None:
    assert regeneration_refusal(ALLOWED, NOW) is None
    check_regeneration(ALLOWED, NOW)
    # two regenerations used, the last 30 s ago exactly: still allowed
    state = with_(regeneration_count=2, last_regenerated_at=NOW - timedelta(seconds=30))
    check_regeneration(state, NOW)


@pytest.mark.parametrize(
    ("state", "error", "code"),
    [
        (with_(chain=Chain.CELO), NotLightning, "bridge.not_lightning"),
        (with_(chain=None), NotLightning, "bridge.not_lightning"),
        (with_(status=DepositStatus.COMPLETED), DepositTerminal, "bridge.terminal"),
        (with_(status=DepositStatus.REFUNDED), DepositTerminal, "bridge.terminal"),
        (with_(regeneration_count=3), RegenerationLimitReached, "bridge.regeneration_limit"),
        (
            with_(last_regenerated_at=NOW - timedelta(seconds=29)),
            RegeneratedTooRecently,
            "bridge.too_soon",
        ),
        (
            with_(expires_at=NOW + timedelta(seconds=1)),
            InvoiceNotExpired,
            "bridge.invoice_not_expired",
        ),
        (with_(expires_at=None), InvoiceNotExpired, "bridge.invoice_not_expired"),
        (
            with_(regenerated_for=NOW - timedelta(seconds=5)),
            AlreadyRegenerated,
            "bridge.already_regenerated",
        ),
    ],
)
def test_each_rule_has_its_own_error(
    state: RegenerationState, error: type[RegenerationRefused], code: str
) -> None:
    with pytest.raises(error) as caught:
        check_regeneration(state, NOW)
    assert type(caught.value) is error
    assert caught.value.error_code == code
    assert caught.value.origin == "local"
    assert caught.value.status == 409


def test_expired_exactly_now_is_expired() -> None:
    assert regeneration_refusal(with_(expires_at=NOW), NOW) is None


def test_too_soon_says_how_long_to_wait() -> None:
    refusal = regeneration_refusal(with_(last_regenerated_at=NOW - timedelta(seconds=20)), NOW)
    assert isinstance(refusal, RegeneratedTooRecently)
    assert refusal.retry_after == pytest.approx(10.0)
    assert refusal.headers() == {"Retry-After": "10"}


def test_terminal_wins_over_other_broken_rules() -> None:
    state = with_(status=DepositStatus.COMPLETED, regeneration_count=3, expires_at=None)
    assert isinstance(regeneration_refusal(state, NOW), DepositTerminal)


def _bad(message: str) -> KotaniBadRequest:
    return KotaniBadRequest("400", status_code=400, kotani_message=message)


@pytest.mark.parametrize(
    ("message", "state", "error"),
    [
        # The OpenAPI's own example message names two rules; our count decides.
        ("Invoice not yet expired or max regenerations reached", ALLOWED, InvoiceNotExpired),
        (
            "Invoice not yet expired or max regenerations reached",
            with_(regeneration_count=3),
            RegenerationLimitReached,
        ),
        ("Maximum regenerations (3) reached", ALLOWED, RegenerationLimitReached),
        ("Refund config is only available for Lightning transactions", ALLOWED, NotLightning),
        ("Transaction is in a terminal state (COMPLETED)", ALLOWED, DepositTerminal),
        ("Please wait 30 seconds between regeneration requests", ALLOWED, RegeneratedTooRecently),
        ("Something else", ALLOWED, RegenerationRefused),
    ],
)
def test_kotani_400_maps_to_the_same_errors(
    message: str, state: RegenerationState, error: type[Exception]
) -> None:
    mapped = map_kotani_refusal(_bad(message), state)
    assert type(mapped) is error
    assert isinstance(mapped, RegenerationRefused)
    assert mapped.origin == "kotani"
    assert message in mapped.message


def test_kotani_404_is_not_found_and_others_pass_through() -> None:
    mapped = map_kotani_refusal(
        KotaniNotFound("404", status_code=404, kotani_message="Transaction not found")
    )
    assert isinstance(mapped, BridgeDepositNotFound)
    assert mapped.status == 404
    server = KotaniServerError("503", status_code=503)
    assert map_kotani_refusal(server) is server
