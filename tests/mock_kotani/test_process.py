"""``kotani-receiver mock-kotani`` as another project's CI runs it: a process, state on disk."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
from pydantic import SecretStr

from receiver.kotani.client import KotaniClient
from tests.support.server import free_port


def start(tmp_path: Path, port: int) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "receiver",
            "mock-kotani",
            "--port",
            str(port),
            "--data-dir",
            str(tmp_path / "state"),
            "--api-key",
            "ci-key",
        ],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/_mock/timeline", timeout=1)
            return proc
        except httpx.HTTPError:
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("mock-kotani did not start")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    return proc.communicate(timeout=20)[0]


def test_serves_kotani_paths_and_keeps_state_across_restarts(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port)
    try:
        created = httpx.post(
            f"{url}/api/v3/offramp",
            json={
                "cryptoAmount": 5000,
                "currency": "KES",
                "chain": "LIGHTNING",
                "token": "MSAT",
                "referenceId": "CI-1",
            },
            headers={"Authorization": "Bearer ci-key"},
        )
        assert created.status_code == 201, created.text
    finally:
        output = stop(proc)
    assert "mock-kotani on http://127.0.0.1" in output
    assert (tmp_path / "state" / "mock-kotani.sqlite3").exists()

    proc = start(tmp_path, port)
    try:

        async def status() -> str | None:
            async with KotaniClient(url, SecretStr("ci-key"), 5.0) as kotani:
                return (await kotani.refund_status("CI-1")).status

        assert asyncio.run(status()) == "PENDING"
    finally:
        stop(proc)


def test_only_loopback(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "receiver", "mock-kotani", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 2 and "loopback" in done.stderr
