"""``simulate refund`` as a user runs it: a real ``serve`` process, then the CLI in another one.

The receiver is configured as the README says (a webhook secret, an API key, Kotani's base URL
pointing at the imitation's port); ``simulate`` runs with the same environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port
from tests.test_serve import start, stop


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    tmp = tmp_path_factory.mktemp("receiver")
    port, kotani_port = free_port(), free_port()
    env = {
        "RECEIVER_WEBHOOK_SECRETS": "whsec_simulate_test",
        "RECEIVER_API_KEY": "api-key-simulate-0123456789",
        "RECEIVER_KOTANI_BASE_URL": f"http://127.0.0.1:{kotani_port}",
        "RECEIVER_KOTANI_API_KEY": "kotani-key-simulate",
    }
    proc = start(tmp, port, **env)
    env.update(RECEIVER_DATA_DIR=str(tmp / "data"), RECEIVER_PORT=str(port))
    try:
        yield env
    finally:
        stop(proc)


def simulate(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return subprocess.run(
        [sys.executable, "-m", "receiver", "simulate", *args],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def refund_of(env: dict[str, str], output: str) -> dict[str, object]:
    ref = output.split("simulate refund ", 1)[1].split(":", 1)[0]
    answer = httpx.get(
        f"http://127.0.0.1:{env['RECEIVER_PORT']}/refunds/{ref}",
        headers={"Authorization": f"Bearer {env['RECEIVER_API_KEY']}"},
    )
    assert answer.status_code == 200
    view: dict[str, object] = answer.json()
    return view


@pytest.mark.parametrize("option", ["b", "a"])
def test_simulate_refund_ends_completed_and_paid(receiver: dict[str, str], option: str) -> None:
    done = simulate(receiver, "refund", "--amount-msat", "1500000", "--option", option)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "receiver: state=completed payment=paid" in done.stdout
    assert "refundStatus=SUCCESSFUL" in done.stdout
    view = refund_of(receiver, done.stdout)
    refund = view["refund"]
    assert isinstance(refund, dict) and refund["state"] == "completed"
    actions = [step["action"] for step in view["history"]]  # type: ignore[attr-defined]
    assert actions.count("refund.completed") == 1 and "payment.paid" in actions
    if option == "b":
        assert "invoice.submitted" in actions and refund["submissions"] == 1
        assert "Option B: sending refund.lightning.invoice_needed" in done.stdout
    else:
        assert "generate_invoice_url answered" in done.stdout
        assert "invoice.submitted" not in actions


def test_duplicates_reorder_and_a_compressed_clock_still_end_once(
    receiver: dict[str, str],
) -> None:
    done = simulate(
        receiver,
        "refund",
        "--amount-msat",
        "1500000",
        "--duplicates",
        "--reorder",
        "--drop-first",
        "--clock-scale",
        "3600",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "invoices accepted=1" in done.stdout
    assert (
        "duplicate sent: HTTP 200" in done.stdout and "dropped (chaos --drop-first)" in done.stdout
    )
    view = refund_of(receiver, done.stdout)
    actions = [step["action"] for step in view["history"]]  # type: ignore[attr-defined]
    assert actions.count("refund.completed") == 1
    assert actions.count("invoice.submitted") == 1


def test_simulate_invoice_and_webhook(receiver: dict[str, str]) -> None:
    judged = simulate(receiver, "invoice", "--amount-msat", "21000")
    assert judged.returncode == 0, judged.stdout + judged.stderr
    assert judged.stdout.startswith("ACCEPTED")
    sent = simulate(receiver, "webhook", "refund.failed", "--reference", "SIM-WH-1")
    assert sent.returncode == 0 and "HTTP 200" in sent.stdout, sent.stdout + sent.stderr
    wrong = simulate(
        {**receiver, "RECEIVER_WEBHOOK_SECRETS": "whsec_wrong"},
        "webhook",
        "refund.failed",
        "--reference",
        "SIM-WH-2",
    )
    assert wrong.returncode == 1 and "HTTP 401" in wrong.stdout


def test_option_b_without_a_loopback_kotani_url_says_what_to_set(
    receiver: dict[str, str], tmp_path: Path
) -> None:
    done = simulate(
        {**receiver, "RECEIVER_KOTANI_BASE_URL": "sandbox"}, "refund", "--amount-msat", "1000"
    )
    assert done.returncode == 2
    assert "RECEIVER_KOTANI_BASE_URL" in done.stderr and "--option a" in done.stderr


def test_replay_resends_captured_deliveries(receiver: dict[str, str], tmp_path: Path) -> None:
    sent = simulate(receiver, "webhook", "refund.completed", "--reference", "SIM-RP-1")
    assert sent.returncode == 0, sent.stdout + sent.stderr
    event_id = sent.stdout.split('"event_id":', 1)[1].split(",", 1)[0].strip()
    shown = subprocess.run(
        [sys.executable, "-m", "receiver", "events", "show", event_id],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}, **receiver},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert shown.returncode == 0, shown.stderr
    capture = tmp_path / "capture.json"
    capture.write_text(shown.stdout)
    again = simulate(receiver, "replay", str(capture))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "HTTP 200" in again.stdout and '"duplicate":true' in again.stdout
    # Tampered: the stored signature no longer matches the body.
    capture.write_text(shown.stdout.replace("SIM-RP-1", "SIM-RP-2"))
    tampered = simulate(receiver, "replay", str(capture))
    assert tampered.returncode == 1 and "HTTP 401" in tampered.stdout


def test_no_receiver_is_one_clear_line(receiver: dict[str, str]) -> None:
    url = "http://127.0.0.1:9"
    judged = simulate(receiver, "invoice", "--amount-msat", "1000", "--url", url)
    assert judged.returncode == 1
    assert judged.stdout.startswith("REFUSED  no answer from the generate_invoice_url")
    sent = simulate(receiver, "webhook", "refund.completed", "--reference", "R", "--url", url)
    assert sent.returncode == 1
    assert f"no answer from {url}" in sent.stderr and "Traceback" not in sent.stderr
