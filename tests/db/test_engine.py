"""``Database.run``, the one unit of work: on SQLite's writer thread and on PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from sqlalchemy import insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.exc import OperationalError

from receiver.db import Database, engine
from receiver.db.models import MintLease
from receiver.db.types import utcnow


def _lease(conn: Connection, key: str) -> None:
    conn.execute(insert(MintLease).values(key=key, owner="o", expires_at=utcnow()))


def _keys(conn: Connection) -> list[str]:
    return list(conn.execute(select(MintLease.key).order_by(MintLease.key)).scalars())


async def test_a_unit_commits_when_it_returns_and_rolls_back_when_it_raises(db: Database) -> None:
    await db.run(lambda conn: _lease(conn, "kept"))

    def fails(conn: Connection) -> None:
        _lease(conn, "dropped")
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        await db.run(fails)
    assert await db.run(_keys) == ["kept"]


async def test_units_run_concurrently_and_each_sees_its_own_writes(db: Database) -> None:
    def write_then_read(key: str) -> Callable[[Connection], bool]:
        def work(conn: Connection) -> bool:
            _lease(conn, key)
            return key in _keys(conn)

        return work

    results = await asyncio.gather(*(db.run(write_then_read(f"k{n:02}")) for n in range(20)))
    assert results == [True] * 20
    assert await db.run(_keys) == [f"k{n:02}" for n in range(20)]


async def test_a_unit_that_is_not_durable_skips_the_flush_only_for_itself(db: Database) -> None:
    if db.is_sqlite:
        setting = "PRAGMA synchronous"
        during, after = (0,), (2,)  # OFF, then FULL again
    else:
        setting = "SHOW synchronous_commit"
        during, after = ("off",), ("on",)
    assert await db.run(lambda c: tuple(c.exec_driver_sql(setting).one()), durable=False) == during
    assert await db.run(lambda c: tuple(c.exec_driver_sql(setting).one())) == after


async def test_sqlite_units_run_on_one_thread_with_the_service_settings(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite3'}")
    try:
        names = {await db.run(lambda _: threading.current_thread().name) for _ in range(5)}
        pragmas = await db.run(
            lambda c: [
                c.exec_driver_sql(f"PRAGMA {name}").scalar_one()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            ]
        )
    finally:
        await db.dispose()
    assert names == {"sqlite-writer"}
    assert pragmas == ["wal", 2, 1, 0]  # busy_timeout 0: the unit waits for the lock itself


@asynccontextmanager
async def another_writer_holds_the_lock(tmp_path: Path, seconds: float) -> AsyncIterator[Database]:
    """A SQLite database whose write lock another connection holds for ``seconds``."""
    path = tmp_path / "db.sqlite3"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.upgrade()
    locked = threading.Event()

    def hold() -> None:
        holder = sqlite3.connect(path, isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(seconds)
            holder.execute("COMMIT")
        finally:
            holder.close()

    other = threading.Thread(target=hold)
    other.start()
    try:
        assert locked.wait(5)
        yield db
    finally:
        other.join()
        await db.dispose()


async def test_a_sqlite_unit_waits_for_another_process_short_write(tmp_path: Path) -> None:
    async with another_writer_holds_the_lock(tmp_path, 0.05) as db:
        await db.run(lambda conn: _lease(conn, "after"))  # "database is locked" at once otherwise
        assert await db.run(_keys) == ["after"]


async def test_a_sqlite_unit_gives_up_after_the_busy_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine, "BUSY_TIMEOUT", 0.1)
    async with another_writer_holds_the_lock(tmp_path, 1.0) as db:
        started = time.monotonic()
        with pytest.raises(OperationalError, match="locked"):
            await db.run(lambda conn: _lease(conn, "never"))
        assert time.monotonic() - started >= 0.1
