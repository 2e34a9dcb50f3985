"""The thread that runs SQLite units of work: in order, on itself, errors handed back."""

from __future__ import annotations

import asyncio
import sqlite3
import threading

import pytest

from receiver.db.thread import SqliteThread


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
