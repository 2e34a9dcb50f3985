"""What the two stdlib-``sqlite3`` writers share: their thread, how they connect and lock.

The mint store (``receiver.mint_store``) and the webhook accept path
(``receiver.inbox.sqlite_writer``) each write through their own connection on their own
``SqliteThread``. Both wait for SQLite's write lock themselves, in steps of ``BUSY_STEP``:
SQLite's own busy handler sleeps 1, 2, 5, 10, 15, 20 ... ms between tries, so a transaction that
meets another connection's short write (the worker, the other writer) would pay milliseconds for
a lock that was free again after microseconds.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")

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


class SqliteThread:
    """One thread running a writer's jobs in order, so its connection never changes threads.

    ``run`` costs one wake-up each way: a third of ``loop.run_in_executor``'s round trip here
    (~35 µs against ~70-100 µs: no concurrent.futures locks, futures and chained callbacks),
    and one such hop, the store's, is on every mint's path. As with an executor, a job whose
    caller was cancelled still runs to its end; only its result is dropped.
    """

    def __init__(self, name: str) -> None:
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._serve, name=name, daemon=True)
        self._closed = False

    async def run(self, job: Callable[[], T]) -> T:
        """``job()`` on the thread; its result or its exception here."""
        if self._closed:
            raise RuntimeError("the SQLite thread is closed")
        if not self._thread.is_alive():
            self._thread.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((job, future, loop))
        return await future

    def close(self, last: Callable[[], object] | None = None) -> None:
        """Run ``last`` (closing the connection, say) after the jobs in hand, then stop.

        Blocks until the thread has finished: callers close at shutdown.
        """
        if self._closed:
            return
        self._closed = True
        if not self._thread.is_alive():
            if last is not None:
                last()
            return
        if last is not None:
            self._jobs.put((last, None, None))
        self._jobs.put(None)
        self._thread.join()

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, future, loop = item
            try:
                outcome: tuple[bool, Any] = (True, job())
            except BaseException as exc:  # handed to the caller, whatever it is
                outcome = (False, exc)
            if future is not None and loop is not None:
                with suppress(RuntimeError):  # the loop is closed: nobody waits any more
                    loop.call_soon_threadsafe(_settle, future, *outcome)


_Job = tuple[
    Callable[[], Any], "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None"
]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
