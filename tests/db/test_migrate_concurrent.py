"""Replicas that start together: N ``kotani-receiver db upgrade`` processes on one fresh
PostgreSQL database wait on one advisory lock; exactly one migrates and all succeed."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
from alembic.script import ScriptDirectory

from receiver.db.engine import _MIGRATION_LOCK, MIGRATIONS

REPLICAS = 4


def upgrade_process(url: str, cwd: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return subprocess.Popen(
        [sys.executable, "-m", "receiver", "db", "upgrade"],
        env={**env, "RECEIVER_DATABASE_URL": url, "RECEIVER_DATA_DIR": str(cwd / "data")},
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def outcome(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout.strip(), stderr


async def test_concurrent_upgrades_migrate_once_and_all_succeed(
    fresh_postgres_url: str, tmp_path: Path
) -> None:
    dsn = fresh_postgres_url.replace("postgresql+asyncpg", "postgresql")
    gate = await asyncpg.connect(dsn)
    processes: list[subprocess.Popen[str]] = []
    try:
        # Hold the migration lock so that every replica is inside upgrade() at the same time.
        gate_tx = gate.transaction()
        await gate_tx.start()
        await gate.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        processes = [upgrade_process(fresh_postgres_url, tmp_path) for _ in range(REPLICAS)]
        deadline = time.monotonic() + 60
        waiting = 0
        while waiting < REPLICAS:
            assert time.monotonic() < deadline, f"only {waiting} replicas reached the lock"
            assert all(p.poll() is None for p in processes), "an upgrade exited early"
            waiting = await gate.fetchval(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            await asyncio.sleep(0.1)
        await gate_tx.commit()  # release: they run one after another
        results = await asyncio.to_thread(lambda: [outcome(p) for p in processes])
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
        await gate.close()

    assert [code for code, _, _ in results] == [0] * REPLICAS, [err for _, _, err in results]
    said = sorted(out for _, out, _ in results)
    assert said == ["database is up to date"] * (REPLICAS - 1) + ["database migrated"]

    check = await asyncpg.connect(dsn)
    try:
        versions = await check.fetch("SELECT version_num FROM alembic_version")
        tables = {
            row[0]
            for row in await check.fetch(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            )
        }
    finally:
        await check.close()
    heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    assert {row[0] for row in versions} == heads
    assert {"invoices", "webhook_events", "alembic_version"} <= tables


def test_db_upgrade_twice_says_what_it_did(fresh_postgres_url: str, tmp_path: Path) -> None:
    first = outcome(upgrade_process(fresh_postgres_url, tmp_path))
    second = outcome(upgrade_process(fresh_postgres_url, tmp_path))
    assert first[:2] == (0, "database migrated")
    assert second[:2] == (0, "database is up to date")
