"""The kotani-receiver command line, run as a user runs it: a real process, real environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import bolt11_ref

TOKEN = "cli-token-0123456789abcdef"


def cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    base.update({"RECEIVER_DATA_DIR": str(tmp_path / "data"), **env})
    return subprocess.run(
        [sys.executable, "-m", "receiver", *args],
        capture_output=True,
        text=True,
        env=base,
        cwd=tmp_path,
        timeout=60,
    )


def test_invoice_decode_and_fake_pay(tmp_path: Path) -> None:
    minted = cli(tmp_path, "invoice", "1001", "--reference", "TXN-CLI")
    assert minted.returncode == 0, minted.stderr
    answer = json.loads(minted.stdout)
    assert bolt11_ref.decode(answer["bolt11"]).amount_msat == 1001
    again = json.loads(cli(tmp_path, "invoice", "1001", "--reference", "TXN-CLI").stdout)
    assert again["bolt11"] == answer["bolt11"] and again["reused"] is True

    decoded = cli(tmp_path, "decode", answer["bolt11"], "--amount-msat", "1001", "--json")
    assert decoded.returncode == 0, decoded.stdout
    report = json.loads(decoded.stdout)
    assert report["payment_hash"] == answer["payment_hash"]
    assert all(check["ok"] for check in report["checks"])
    wrong = cli(tmp_path, "decode", answer["bolt11"], "--amount-msat", "1000")
    assert wrong.returncode == 1 and "FAIL" in wrong.stdout

    paid = cli(tmp_path, "fake", "pay", answer["bolt11"])
    assert paid.returncode == 0, paid.stderr
    assert json.loads(paid.stdout)["paid_msat"] == 1001
    twice = cli(tmp_path, "fake", "pay", answer["bolt11"])
    assert twice.returncode == 1 and "already paid" in twice.stderr
    fresh = json.loads(cli(tmp_path, "invoice", "1001", "--reference", "TXN-CLI").stdout)
    assert fresh["payment_hash"] != answer["payment_hash"] and fresh["reused"] is False


def test_decode_garbage_is_a_clear_error(tmp_path: Path) -> None:
    result = cli(tmp_path, "decode", "lnbc1notaninvoice")
    assert result.returncode == 1
    assert "backend.invalid_invoice.undecodable" in result.stderr
    assert "Traceback" not in result.stderr


def test_urls_mask_the_token_unless_asked(tmp_path: Path) -> None:
    env = {"RECEIVER_INVOICE_TOKENS": TOKEN, "RECEIVER_PUBLIC_URL": "https://pay.example.com/"}
    masked = cli(tmp_path, "urls", **env)
    assert masked.returncode == 0
    assert TOKEN not in masked.stdout and "https://pay.example.com/invoices/cli-" in masked.stdout
    shown = cli(tmp_path, "urls", "--show-secrets", **env)
    assert f"https://pay.example.com/invoices/{TOKEN}" in shown.stdout


def test_urls_point_at_simulate_until_something_arrives(tmp_path: Path) -> None:
    env = {"RECEIVER_INVOICE_TOKENS": TOKEN}
    assert cli(tmp_path, "db", "upgrade", **env).returncode == 0
    fresh = cli(tmp_path, "urls", **env)
    assert "/webhooks/kotani" in fresh.stdout
    assert "nothing has arrived yet" in fresh.stderr and "simulate refund" in fresh.stderr
    assert cli(tmp_path, "invoice", "2000", "--reference", "TXN-U", **env).returncode == 0
    after = cli(tmp_path, "urls", **env)
    assert "nothing has arrived yet" not in after.stderr


def test_token_new_is_long_and_random(tmp_path: Path) -> None:
    first, second = (
        cli(tmp_path, "token", "new").stdout.strip(),
        cli(tmp_path, "token", "new").stdout.strip(),
    )
    assert first != second and len(first) >= 40


def test_db_upgrade(tmp_path: Path) -> None:
    result = cli(tmp_path, "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "data" / "receiver.sqlite3").exists()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"RECEIVER_PORT": "eighty"}, "RECEIVER_PORT"),
        ({"RECEIVER_NETWORK": "mainnet"}, "RECEIVER_NETWORK"),
        ({"RECEIVER_DEADLINE": "12"}, "RECEIVER_DEADLINE"),
        ({"RECEIVER_INVOICE_TOKENS": "short-secret"}, "RECEIVER_INVOICE_TOKENS"),
        ({"RECEIVER_BACKENDS": "fake,nosuchnode"}, "RECEIVER_BACKENDS"),
        ({"RECEIVER_MIN_VALIDITY": "7200"}, "RECEIVER_MIN_VALIDITY"),
        ({"RECEIVER_INVOICE_DESCRIPTION": "refund {amount}"}, "RECEIVER_INVOICE_DESCRIPTION"),
        ({"RECEIVER_DATABASE_URL": "mysql://u:short-secret@h/db"}, "RECEIVER_DATABASE_URL"),
    ],
)
def test_bad_settings_are_one_clear_line(
    tmp_path: Path, env: dict[str, str], variable: str
) -> None:
    result = cli(tmp_path, "invoice", "1000", **env)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert "short-secret" not in result.stderr


def test_help_everywhere(tmp_path: Path) -> None:
    for args in (["--help"], ["serve", "--help"], ["invoice", "--help"], ["fake", "pay", "--help"]):
        result = cli(tmp_path, *args)
        assert result.returncode == 0 and "usage:" in result.stdout


def test_unreachable_database_stops_serve_with_one_line(tmp_path: Path) -> None:
    url = "postgresql://user:hunter2-secret@127.0.0.1:1/db"
    result = cli(tmp_path, "serve", RECEIVER_DATABASE_URL=url)
    assert result.returncode == 2
    assert "RECEIVER_DATABASE_URL" in result.stderr and "unreachable" in result.stderr
    assert "hunter2-secret" not in result.stderr and "Traceback" not in result.stderr


def test_a_malformed_forward_secret_is_refused_at_start_without_echoing_it(tmp_path: Path) -> None:
    secret = "not-a-whsec-secret!"
    result = cli(tmp_path, "serve", RECEIVER_FORWARD_SECRET=secret)
    assert result.returncode == 2
    assert "RECEIVER_FORWARD_SECRET: use a Standard Webhooks secret" in result.stderr
    assert "Traceback" not in result.stderr and secret not in result.stderr + result.stdout
