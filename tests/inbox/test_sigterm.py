"""SIGTERM during a flood of signed events: exit 0 within the grace period, nothing
acknowledged lost, and after a restart nothing waits for a lease to expire (the events in
hand were finished or released, not left leased)."""

from __future__ import annotations

import asyncio
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest

from tests.inbox.test_kill9 import EVENTS, flood, start_server, wait_all_done, wait_healthy
from tests.support.server import free_port

LEASE = "600"  # far longer than the test: a lease left behind would show
GRACE = 6.0


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
async def test_sigterm_mid_flood_loses_nothing_and_releases_leases(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    options = {"RECEIVER_WORKER_LEASE": LEASE, "RECEIVER_SHUTDOWN_GRACE": str(GRACE)}
    server = start_server(tmp_path, port, **options)
    acked: set[int] = set()
    try:
        await wait_healthy(url, server)
        term = asyncio.Event()

        async def terminator() -> None:
            await term.wait()
            server.send_signal(signal.SIGTERM)

        stopping = asyncio.create_task(terminator())
        await flood(url, list(range(EVENTS)), acked, term)
        await stopping
        started = time.monotonic()
        server.wait(timeout=GRACE + 10)
        assert server.returncode == 0
        assert time.monotonic() - started < GRACE + 5
        database = tmp_path / "data" / "receiver.sqlite3"
        with sqlite3.connect(database) as conn:
            stored = {row[0] for row in conn.execute("SELECT reference_id FROM webhook_events")}
        assert not {f"K9-{n}" for n in acked} - stored, "acknowledged but not stored"

        server = start_server(tmp_path, port, **options)
        await wait_healthy(url, server)
        left = await wait_all_done(database, 60)  # << the 600 s lease
        assert left == 0, f"{left} events still waiting (a lease was not released)"
    finally:
        if server.poll() is None:
            server.terminate()
            server.wait(timeout=15)
