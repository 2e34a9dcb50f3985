"""``kotani-receiver kotani …`` and ``bridge …``: run through ``receiver.cli.main`` with respx.

Each test asserts what was sent to Kotani (method, path, Bearer, body) and what was printed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import respx
import structlog

from receiver import cli

from .conftest import API_KEY, BASE, Spec, envelope, sign_invoice

REF = "KOTANI-REF-789"


@pytest.fixture(autouse=True)
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.setenv("RECEIVER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("RECEIVER_KOTANI_BASE_URL", "sandbox")
    monkeypatch.setenv("RECEIVER_KOTANI_API_KEY", API_KEY)
    # main() configures logging for the process, onto this test's captured stderr: undo it.
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    structlog.reset_defaults()
    for handler in root.handlers[:]:
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


@pytest.fixture
def kotani() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_mocked=True, assert_all_called=False) as mock:
        yield mock


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_retry_refund_json(kotani: respx.MockRouter, capsys: pytest.CaptureFixture[str]) -> None:
    route = kotani.post("/api/v3/offramp/retry-refund/TXN-1").respond(
        200, json=envelope({}, "Refund retry initiated")
    )
    status, out, _ = run(capsys, "kotani", "retry-refund", "TXN-1", "--json")
    assert status == 0
    assert json.loads(out) == {"message": "Refund retry initiated", "data": {}}
    request = route.calls[0].request
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.content == b""


def test_retry_refunds_human(
    kotani: respx.MockRouter, spec: Spec, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = spec.request_example("/api/v3/offramp/retry-refunds-multiple", "POST")["referenceIds"]
    route = kotani.post("/api/v3/offramp/retry-refunds-multiple").respond(
        200, json=envelope({}, "Retries queued")
    )
    status, out, _ = run(capsys, "kotani", "retry-refunds", *ids)
    assert status == 0
    assert out.strip() == "Retries queued"
    assert json.loads(route.calls[0].request.content) == {"referenceIds": ids}


def test_submit_invoice_decodes_before_sending(
    kotani: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    bolt11, _ = sign_invoice(1_500_000)
    route = kotani.post("/api/v3/offramp/submit-refund-invoice/TXN-1").respond(
        200, json=envelope({}, "Invoice accepted")
    )
    status, _, err = run(
        capsys, "kotani", "submit-invoice", "TXN-1", bolt11, "--amount-msat", "1500001"
    )
    assert status == 1 and "request.validation" in err
    status, _, err = run(capsys, "kotani", "submit-invoice", "TXN-1", "lnbc1garbage")
    assert status == 1 and "invalid_invoice" in err
    assert not route.calls
    status, out, _ = run(
        capsys, "kotani", "submit-invoice", "TXN-1", bolt11, "--amount-msat", "1500000"
    )
    assert status == 0 and "Invoice accepted" in out
    assert json.loads(route.calls[0].request.content) == {"invoice": bolt11}


def test_kotani_error_is_one_line(
    kotani: respx.MockRouter, spec: Spec, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = spec.response("/api/v3/offramp/retry-refund/{referenceId}", "POST", 404)
    kotani.post("/api/v3/offramp/retry-refund/NOPE").respond(404, json=answer)
    status, out, err = run(capsys, "kotani", "retry-refund", "NOPE")
    assert status == 1
    assert out == ""
    assert err.strip() == (
        "kotani-receiver: kotani.not_found: Kotani answered 404 to POST "
        "/api/v3/offramp/retry-refund/NOPE: Reference Id not found"
    )
    assert API_KEY not in err


def test_missing_api_key_is_a_configuration_error(
    monkeypatch: pytest.MonkeyPatch, kotani: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("RECEIVER_KOTANI_API_KEY")
    status, _, err = run(capsys, "kotani", "refund-status", "TXN-1")
    assert status == 2 and "RECEIVER_KOTANI_API_KEY" in err
    assert not kotani.calls


def test_bridge_rate_human_and_json(
    kotani: respx.MockRouter, spec: Spec, capsys: pytest.CaptureFixture[str]
) -> None:
    route = kotani.post("/api/v3/rate/crypto-bridge").respond(
        200, json=spec.response("/api/v3/rate/crypto-bridge", "POST", 200)
    )
    status, out, _ = run(capsys, "bridge", "rate", "--currency", "kes", "--amount", "1000")
    assert status == 0
    assert "RATE-CB-1732454321-XYZ123" in out and "150000000 msat" in out
    sent = json.loads(route.calls[0].request.content)
    assert sent == {
        "source_currency": "KES",
        "source_amount": 1000,
        "crypto_chain": "LIGHTNING",
        "crypto_token": "MSAT",
    }
    spec.check(spec.request_schema("/api/v3/rate/crypto-bridge", "POST"), sent)
    status, out, _ = run(
        capsys, "bridge", "rate", "--currency", "KES", "--amount", "1000", "--json"
    )
    assert json.loads(out)["rate_id"] == "RATE-CB-1732454321-XYZ123"


def test_bridge_create_from_file_checks_the_refund_invoice(
    kotani: respx.MockRouter, spec: Spec, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    body = spec.request_example("/api/v3/deposit/crypto-bridge", "POST")
    (tmp_path / "deposit.json").write_text(json.dumps(body))
    answer = spec.response("/api/v3/deposit/crypto-bridge", "POST", 200)
    route = kotani.post("/api/v3/deposit/crypto-bridge").respond(200, json=answer)
    status, out, _ = run(capsys, "bridge", "create", str(tmp_path / "deposit.json"), "--json")
    assert status == 0
    assert json.loads(route.calls[0].request.content) == body
    printed = json.loads(out)
    assert printed["kotani_reference_id"] == REF
    # The OpenAPI example's invoice is not an invoice: withheld, and said so.
    assert printed["refund_config"]["refund_invoice"] is None
    assert printed["refund_config"]["refund_invoice_check"] == "bridge.refund_invoice.undecodable"


def test_bridge_regenerate_refused_locally_never_posts(
    kotani: respx.MockRouter, spec: Spec, capsys: pytest.CaptureFixture[str]
) -> None:
    bolt11, payment_hash = sign_invoice(150_000_000)
    config = spec.example("RefundConfigDto") | {
        "refund_invoice": bolt11,
        "refund_payment_hash": payment_hash,
        "expires_at": "2999-01-01T00:00:00Z",
    }
    answer = spec.response("/api/v3/deposit/crypto-bridge/status/{kotani_reference_id}", "GET", 200)
    answer["data"]["refund_config"] = config
    kotani.get(f"/api/v3/deposit/crypto-bridge/status/{REF}").respond(200, json=answer)
    kotani.get(f"/api/v3/deposit/crypto-bridge/{REF}/refund-config").respond(
        200, json=envelope(config | {"regeneration_count": 0})
    )
    post = kotani.post(f"/api/v3/deposit/crypto-bridge/{REF}/refund-config").respond(
        200, json=envelope(config)
    )
    status, out, _ = run(capsys, "bridge", "watch", REF, "--once")
    assert status == 0 and "bridge.refund_config_changed" in out
    status, out, err = run(capsys, "bridge", "regenerate", REF)
    assert status == 1
    assert "bridge.invoice_not_expired" in err
    assert not post.calls
    status, out, _ = run(capsys, "bridge", "refund-config", REF)
    assert status == 0 and bolt11 in out and "refund_invoice_check:" in out


def test_bridge_status_human(
    kotani: respx.MockRouter, spec: Spec, capsys: pytest.CaptureFixture[str]
) -> None:
    answer = spec.response("/api/v3/deposit/crypto-bridge/status/{kotani_reference_id}", "GET", 200)
    kotani.get(f"/api/v3/deposit/crypto-bridge/status/{REF}").respond(200, json=answer)
    status, out, _ = run(capsys, "bridge", "status", REF)
    assert status == 0
    assert "PAYMENT_SENT" in out
    assert "lnbc1500n1p0xyz" not in out  # an unchecked invoice is never shown


def test_bridge_status_timeout(
    kotani: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    kotani.get(f"/api/v3/deposit/crypto-bridge/status/{REF}").mock(
        side_effect=httpx.ConnectError("refused")
    )
    status, _, err = run(capsys, "bridge", "status", REF)
    assert status == 1 and "kotani.unavailable" in err
