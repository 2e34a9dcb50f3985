"""The stdlib-sqlite3 writers' thread, connection settings and their own wait for the write lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from receiver.db.sqlite_conn import SqliteThread, begin_immediate, connect


def test_connect_uses_the_service_settings(tmp_path: Path) -> None:
    conn = connect(str(tmp_path / "db.sqlite3"))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 0  # begin_immediate waits
    finally:
        conn.close()


def test_begin_waits_for_a_short_write_of_another_connection(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    locked = threading.Event()

    def short_write() -> None:
        holder = connect(path)
        try:
            holder.execute("BEGIN IMMEDIATE")
            locked.set()
            time.sleep(0.05)
            holder.execute("COMMIT")
        finally:
            holder.close()

    other = threading.Thread(target=short_write)
    other.start()
    assert locked.wait(5)
    waiter = connect(path)
    try:
        begin_immediate(waiter, timeout=5.0)  # would raise "database is locked" at once otherwise
        waiter.execute("COMMIT")
    finally:
        waiter.close()
        other.join()


def test_begin_gives_up_after_its_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "db.sqlite3")
    holder, waiter = connect(path), connect(path)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            begin_immediate(waiter, timeout=0.1)
        assert time.monotonic() - started >= 0.1
        holder.execute("ROLLBACK")
    finally:
        holder.close()
        waiter.close()


async def test_the_thread_runs_jobs_in_order_on_itself_and_hands_back_errors() -> None:
    worker = SqliteThread("writer-test")
    seen: list[tuple[int, str]] = []

    def job(n: int) -> int:
        seen.append((n, threading.current_thread().name))
        return n * 10

    try:
        results = await asyncio.gather(*(worker.run(lambda n=n: job(n)) for n in range(20)))
        with pytest.raises(sqlite3.OperationalError, match="boom"):
            await worker.run(lambda: (_ for _ in ()).throw(sqlite3.OperationalError("boom")))
        assert await worker.run(lambda: job(99)) == 990  # an error does not stop the thread
    finally:
        worker.close()
    assert results == [n * 10 for n in range(20)]
    assert [n for n, _ in seen] == [*range(20), 99]
    assert {name for _, name in seen} == {"writer-test"}


async def test_a_cancelled_caller_leaves_the_thread_working() -> None:
    worker = SqliteThread("writer-test")
    release = threading.Event()
    done: list[str] = []

    def slow() -> str:
        release.wait(5)
        done.append("slow")
        return "slow"

    try:
        waiting = asyncio.ensure_future(worker.run(slow))
        await asyncio.sleep(0.01)
        waiting.cancel()
        release.set()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        assert await worker.run(lambda: "next") == "next"
    finally:
        worker.close()
    assert done == ["slow"]  # the job ran to its end; only its result was dropped


async def test_close_runs_the_last_job_after_the_others_then_refuses_more() -> None:
    worker = SqliteThread("writer-test")
    order: list[str] = []
    assert await worker.run(lambda: order.append("job")) is None
    worker.close(lambda: order.append("last"))
    assert order == ["job", "last"]
    with pytest.raises(RuntimeError, match="closed"):
        await worker.run(lambda: order.append("late"))
    assert order == ["job", "last"]
