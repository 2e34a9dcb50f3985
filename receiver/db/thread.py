"""One thread that runs jobs in order, so a SQLite connection never changes threads.

``receiver.db.engine`` runs every SQLite unit of work on one such thread (one hop per
transaction); SQLite has one writer anyway.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable
from contextlib import suppress
from typing import Any, TypeVar

T = TypeVar("T")


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


_Job = tuple[Callable[[], Any], "asyncio.Future[Any] | None", "asyncio.AbstractEventLoop | None"]


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
