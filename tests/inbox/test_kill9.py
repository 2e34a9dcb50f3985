"""kill -9 during a flood of signed events, then restart: nothing acknowledged is lost, and every
event's effect is recorded exactly once (the real server process, the real SQLite file)."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.inbox.conftest import SECRET, signed
from tests.support.server import free_port

EVENTS = 400
SENDERS = 24
KILL_AFTER = 120  # acknowledged deliveries before the kill


def start_server(tmp_path: Path, port: int, **extra: str) -> subprocess.Popen[bytes]:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
        "RECEIVER_DATA_DIR": str(tmp_path / "data"),
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_PORT": str(port),
        "RECEIVER_WEBHOOK_SECRETS": SECRET,
        "RECEIVER_INVOICE_TOKENS": "kill9-token-0123456789abcdef",
        "RECEIVER_WORKER_LEASE": "2",
        "RECEIVER_LOG_LEVEL": "warning",
        **extra,
    }
    with open(tmp_path / "server.log", "ab") as log:  # the child keeps its own descriptor
        return subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve"],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


async def wait_healthy(url: str, process: subprocess.Popen[bytes]) -> None:
    async with httpx.AsyncClient(timeout=1) as client:
        for _ in range(300):
            assert process.poll() is None, "the server exited"
            try:
                if (await client.get(f"{url}/healthz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.05)
    raise AssertionError("the server did not start")


async def wait_all_done(database: Path, seconds: float) -> int:
    """Wait (up to ``seconds``) until every stored event is done; how many are not."""
    deadline = time.monotonic() + seconds
    while True:
        with sqlite3.connect(database) as conn:
            left = int(
                conn.execute(
                    "SELECT count(*) FROM webhook_events WHERE status != 'done'"
                ).fetchone()[0]
            )
        if left == 0 or time.monotonic() >= deadline:
            return left
        await asyncio.sleep(0.2)


def body_for(n: int) -> tuple[bytes, str]:
    if n % 2:
        return signed("refund.completed", {"referenceId": f"K9-{n}", "status": "REVERSED"})
    return signed(
        "transaction.offramp.status.updated",
        {"referenceId": f"K9-{n}", "status": "SUCCESSFUL", "updated_at": "2024-11-22T10:00:00Z"},
    )


async def flood(url: str, numbers: list[int], acked: set[int], kill: asyncio.Event | None) -> None:
    queue = list(numbers)

    async def sender(client: httpx.AsyncClient) -> None:
        while queue:
            n = queue.pop()
            body, signature = body_for(n)
            try:
                response = await client.post(
                    f"{url}/webhooks/kotani",
                    content=body,
                    headers={"X-Kotani-Signature": signature},
                )
            except httpx.HTTPError:
                continue  # no answer: Kotani would retry later
            if response.status_code == 200:
                acked.add(n)
                if kill is not None and len(acked) >= KILL_AFTER:
                    kill.set()

    async with httpx.AsyncClient(timeout=5) as client:
        await asyncio.gather(*(sender(client) for _ in range(SENDERS)))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_kill9_loses_nothing_and_applies_each_effect_once(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(tmp_path, port)
    acked_before: set[int] = set()
    try:
        await wait_healthy(url, server)
        kill = asyncio.Event()

        async def killer() -> None:
            await kill.wait()
            os.kill(server.pid, signal.SIGKILL)

        killing = asyncio.create_task(killer())
        await flood(url, list(range(EVENTS)), acked_before, kill)
        await killing
        server.wait(timeout=10)
        assert server.returncode == -signal.SIGKILL
        assert KILL_AFTER <= len(acked_before) < EVENTS  # the kill hit the flood mid-way

        database = tmp_path / "data" / "receiver.sqlite3"
        with sqlite3.connect(database) as conn:
            stored = {row[0] for row in conn.execute("SELECT reference_id FROM webhook_events")}
        missing = {f"K9-{n}" for n in acked_before} - stored
        assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"

        # Restart on the same database; Kotani redelivers everything it got no 2xx for.
        server = start_server(tmp_path, port)
        await wait_healthy(url, server)
        acked_after: set[int] = set()
        await flood(url, sorted(set(range(EVENTS)) - acked_before), acked_after, None)
        assert acked_before | acked_after == set(range(EVENTS))

        await wait_all_done(database, 60)
        with sqlite3.connect(database) as conn:
            statuses = dict(
                conn.execute("SELECT status, count(*) FROM webhook_events GROUP BY status")
            )
            per_reference = dict(
                conn.execute("SELECT reference_id, count(*) FROM webhook_events GROUP BY 1")
            )
            history = dict(
                conn.execute(
                    "SELECT reference_id, count(*) FROM refund_history "
                    "WHERE action = 'refund.completed' GROUP BY 1"
                )
            )
            status_rows = {
                row[0] for row in conn.execute("SELECT reference_id FROM transaction_status")
            }
        assert statuses == {"done": EVENTS}
        assert set(per_reference.values()) == {1}  # one record per event, redeliveries deduplicated
        assert history == {f"K9-{n}": 1 for n in range(EVENTS) if n % 2}  # each effect once
        assert status_rows == {f"K9-{n}" for n in range(EVENTS) if n % 2 == 0}
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=15)
