"""Fixtures for the backend tests: a backend context, signed invoices, and a real LNbits."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs

import coincurve
import httpx
import pytest
import respx

from receiver.lightning.base import BackendContext, Network
from tests.lightning.lnbits_server import LnbitsServer, LnbitsUnavailable
from tests.support.faulty import sign


@pytest.fixture
def context(tmp_path: Path) -> BackendContext:
    return BackendContext(network=Network.REGTEST, data_dir=tmp_path / "data")


@pytest.fixture
def node_key() -> coincurve.PrivateKey:
    return coincurve.PrivateKey(os.urandom(32))


def signed_invoice(
    key: coincurve.PrivateKey, amount_msat: int, *, currency: str = "bcrt", expiry: int = 3600
) -> tuple[str, str]:
    """A real signed bolt11 (what a node would answer) and its payment hash."""
    payment_hash = hashlib.sha256(os.urandom(32)).hexdigest()
    invoice = sign(
        key, currency=currency, amount_msat=amount_msat, payment_hash=payment_hash, expiry=expiry
    )
    return invoice, payment_hash


def sent(route: respx.Route) -> httpx.Request:
    """The one request a respx route received (it must have received exactly one)."""
    assert route.call_count == 1
    return route.calls.last.request


def form(request: httpx.Request) -> dict[str, str]:
    """The fields of a form-encoded request body (phoenixd, Eclair), asserting its content type."""
    assert request.headers["content-type"] == "application/x-www-form-urlencoded"
    return {key: values[0] for key, values in parse_qs(request.content.decode()).items()}


@pytest.fixture(scope="session")
def lnbits(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LnbitsServer]:
    """A real LNbits (FakeWallet) with one account, for the whole session.

    If it cannot start, the tests that need it fail in CI (``CI`` set) and are skipped, with the
    reason, elsewhere.
    """
    server = LnbitsServer(tmp_path_factory.mktemp("lnbits"))
    try:
        server.start()
    except LnbitsUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"real LNbits could not start: {exc}", pytrace=False)
        pytest.skip(f"real LNbits could not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    """respx that fails the test on an unmocked request and on a route never called."""
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock
