"""What the two stdlib-``sqlite3`` writers share: how they connect and take the write lock.

The mint store (``receiver.mint_store``) and the webhook accept path
(``receiver.inbox.sqlite_writer``) each write through their own connection on their own thread.
Both wait for SQLite's write lock themselves, in steps of ``BUSY_STEP``: SQLite's own busy
handler sleeps 1, 2, 5, 10, 15, 20 ... ms between tries, so a transaction that meets another
connection's short write (the worker, the other writer) would pay milliseconds for a lock that
was free again after microseconds.
"""

from __future__ import annotations

import sqlite3
import time

BUSY_TIMEOUT = 15.0
"""Seconds a transaction waits for the write lock before it fails."""
BUSY_STEP = 0.0005


def connect(path: str) -> sqlite3.Connection:
    """A connection in autocommit mode with the service's settings: WAL, ``synchronous=FULL``.

    ``timeout=0``: ``begin_immediate`` does the waiting.
    """
    conn = sqlite3.connect(path, timeout=0, isolation_level=None)
    for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
        conn.execute(f"PRAGMA {pragma}")
    return conn


def begin_immediate(conn: sqlite3.Connection, timeout: float = BUSY_TIMEOUT) -> None:
    """``BEGIN IMMEDIATE`` (the write lock now), waiting up to ``timeout`` seconds for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            busy = getattr(exc, "sqlite_errorcode", sqlite3.SQLITE_BUSY) & 0xFF
            if busy != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(BUSY_STEP)
