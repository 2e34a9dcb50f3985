"""The stdlib-sqlite3 writers' connection settings and their own wait for the write lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from receiver.db.sqlite_conn import begin_immediate, connect


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
