"""``kotani-receiver check`` against a real LNbits, a node that is down, and a wrong network."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from receiver.check import Row, cmd_check, register, render, run_checks
from receiver.settings import Settings
from tests.lightning.lnbits_server import LnbitsServer
from tests.support.server import free_port


def by_check(rows: list[Row], component: str) -> dict[str, Row]:
    return {row.check: row for row in rows if row.component == component}


async def test_lnbits_passes_and_a_down_lnd_fails_with_a_fix(
    lnbits: LnbitsServer,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert lnbits.account is not None
    monkeypatch.setenv("RECEIVER_LNBITS_URL", lnbits.url)
    monkeypatch.setenv("RECEIVER_LNBITS_KEY", lnbits.account.inkey)
    monkeypatch.setenv("RECEIVER_LND_URL", f"https://127.0.0.1:{free_port()}")
    monkeypatch.setenv("RECEIVER_LND_MACAROON", "ab" * 40)
    settings = make_settings(backends="lnbits,lnd,cln", network="bitcoin")

    rows = await run_checks(settings, mint=True)
    table = render(rows)

    lnbits_rows = by_check(rows, "backend lnbits")
    assert lnbits_rows["reachable"].ok and lnbits_rows["authenticated"].ok
    assert lnbits_rows["network"].ok is None  # LNbits does not say; the test mint does
    assert lnbits_rows["test invoice"].ok, table
    assert "verified (bitcoin" in lnbits_rows["test invoice"].detail

    lnd_rows = by_check(rows, "backend lnd")
    assert lnd_rows["reachable"].ok is False
    assert "RECEIVER_LND_URL" in lnd_rows["reachable"].fix
    assert "test invoice" not in lnd_rows

    cln_rows = by_check(rows, "backend cln")
    assert cln_rows["configured"].ok is False
    assert "RECEIVER_CLN_URL" in cln_rows["configured"].detail

    assert by_check(rows, "database")["reachable"].ok
    assert by_check(rows, "public url")["/healthz"].ok is None
    assert "fix: check RECEIVER_LND_URL" in table
    assert table.splitlines()[-1] == "2 check(s) failed"
    assert "ab" * 40 not in table


async def test_wrong_network_and_wrong_key(
    lnbits: LnbitsServer,
    make_settings: Callable[..., Settings],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RECEIVER_LNBITS_URL", lnbits.url)
    monkeypatch.setenv("RECEIVER_LNBITS_KEY", "0" * 32)
    rows = await run_checks(make_settings(backends="lnbits", network="regtest"), mint=True)
    checks = by_check(rows, "backend lnbits")
    assert checks["authenticated"].ok is False
    assert "RECEIVER_LNBITS_KEY" in checks["authenticated"].fix
    assert "0" * 32 not in render(rows)

    assert lnbits.account is not None
    monkeypatch.setenv("RECEIVER_LNBITS_KEY", lnbits.account.inkey)
    rows = await run_checks(make_settings(backends="lnbits", network="regtest"), mint=True)
    minted = by_check(rows, "backend lnbits")["test invoice"]
    assert minted.ok is False and "network" in minted.detail
    assert "RECEIVER_NETWORK" in minted.fix


def test_command_exit_status_and_public_url(
    make_settings: Callable[..., Settings], capsys: pytest.CaptureFixture[str]
) -> None:
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["check"])
    down = f"http://127.0.0.1:{free_port()}"
    status = cmd_check(args, make_settings(backends="fake", public_url=down))
    out = capsys.readouterr().out
    assert status == 1
    assert "public url" in out and "FAIL" in out and "fix: Kotani calls RECEIVER_PUBLIC_URL" in out

    status = cmd_check(parser.parse_args(["check", "--mint"]), make_settings(backends="fake"))
    out = capsys.readouterr().out
    assert status == 0, out
    assert "all checks passed" in out and "1 sat, verified (regtest" in out


def test_kotani_receiver_check_is_wired(tmp_path: Path) -> None:
    # A subprocess: the CLI configures logging for its own process.
    def cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
        return subprocess.run(
            [sys.executable, "-m", "receiver", *args],
            env={**clean, "RECEIVER_DATA_DIR": str(tmp_path / "data"), **env},
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    ok = cli("check", "--mint")
    assert ok.returncode == 0 and "all checks passed" in ok.stdout, ok.stdout + ok.stderr
    failed = cli("check", RECEIVER_BACKENDS="fake,lnd")
    assert failed.returncode == 1
    assert "fix: set the variables named above" in failed.stdout
