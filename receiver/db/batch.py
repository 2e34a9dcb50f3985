"""Group commit: callers that arrive together share one unit of work.

``GroupCommit.submit(item)`` waits for its own result; one writer task takes everything queued
(up to ``max_batch``) and hands it to ``write`` in one call, so a burst costs one transaction
(one fsync on SQLite) while each caller still returns only after its own commit. ``write``
returns one result per item: a value, or an exception instance raised to that caller alone.
With ``linger`` and ``expect`` (how many items are on their way), a batch waits up to
``linger`` seconds for the others (Kafka's ``linger.ms``): a transaction costs more than that.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

from receiver.logs import get_logger

T = TypeVar("T")
R = TypeVar("R")

log = get_logger("db")


class GroupCommit(Generic[T, R]):
    """Batches ``submit`` calls into ``write`` calls (see module)."""

    def __init__(
        self,
        write: Callable[[list[T]], Awaitable[Sequence[R | BaseException]]],
        *,
        max_batch: int = 200,
        name: str = "group-commit",
        linger: float = 0.0,
        expect: Callable[[], int] | None = None,
    ) -> None:
        self._write = write
        self.max_batch = max_batch
        self._linger = linger
        self._expect = expect
        self._name = name
        self._queue: list[tuple[T, asyncio.Future[R]]] = []
        self._wake = asyncio.Event()
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    @property
    def waiting(self) -> int:
        """Items waiting for their commit."""
        return len(self._queue)

    async def submit(self, item: T) -> R:
        if self._closing:
            raise RuntimeError(f"{self._name} is closed")
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        self._wake.set()
        self._arrived.set()
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._loop(), name=self._name)
        return await future

    async def aclose(self) -> None:
        """Finish the items in hand, then stop."""
        self._closing = True
        if self._task is None:
            return
        self._wake.set()
        await self._task
        self._task = None

    async def _loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                await self._wait_for_more()
                batch = self._queue[: self.max_batch]
                del self._queue[: self.max_batch]
                try:
                    results = await self._write([item for item, _ in batch])
                except Exception as exc:  # the loop outlives any failure: callers wait on it
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if future.done():
                        continue
                    if isinstance(result, BaseException):
                        future.set_exception(result)
                    else:
                        future.set_result(result)
            if self._closing:
                return

    async def _wait_for_more(self) -> None:
        """Up to ``linger`` s, until every expected item has arrived (or the batch is full)."""
        if not self._linger or self._expect is None or self._closing:
            return
        loop = asyncio.get_running_loop()
        until = loop.time() + self._linger
        while len(self._queue) < min(self._expect(), self.max_batch):
            left = until - loop.time()
            if left <= 0:
                return
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), left)
