"""The one queue loop: claim due jobs, run the injected handler on each, close them; repeat.

Used by the inbox worker (``receiver.inbox.worker``) and the forwarder
(``receiver.inbox.forwarder``); each supplies ``handle(job) -> Close`` and nothing else.

- Up to ``batch`` jobs are leased at once, and up to ``concurrency`` of them run their handler
  at once; free places are filled by one claim of as many jobs (one transaction), once half of
  them are free. A claim and a close cost about the same for 10 jobs as for 60, so the batch
  is larger than the handlers' concurrency. Jobs of one ``QueueSpec.exclusive`` value (a
  reference) claimed together run one after the other in claim order; other jobs concurrently.
- Closes of jobs that finish together share one transaction (``GroupCommit``); should it fail,
  the queue closes them again one per transaction (``DurableQueue.close``), so one failing close
  fails alone.
- One heartbeat renews the leases of every job in flight; a job that runs past its lease may be
  taken over by another process, and its close then finds it lost (dropped, logged).
- ``pause()`` (optional) says deliveries are arriving: then one claim (of up to ``batch`` jobs)
  is made every ``PRESSURE_PAUSE`` s, so acknowledging Kotani comes first and the backlog still
  moves. One job at a time would cost a claim and a close transaction per job: under a flood
  that spent more of the SQLite writer than the deliveries did.
- A close whose effects fail is rolled back alone; ``recover`` turns it into another close
  (the worker: a retry later), so the job does not sit leased until its lease runs out.
- ``stop(grace)`` lets the jobs in flight finish (up to ``grace`` s), then cancels the rest and
  releases their jobs, due now. A process killed outright leaves its jobs leased; they are due
  again when the lease runs out.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import Row
from sqlalchemy.exc import SQLAlchemyError

from receiver.db.batch import GroupCommit
from receiver.db.queue import Close, Closed, DurableQueue
from receiver.logs import get_logger

log = get_logger("queue")

PRESSURE_PAUSE = 0.25
CLOSE_LINGER = 0.02
"""A close waits up to this long for the other jobs in flight to join its transaction."""
Handle = Callable[[Row[Any]], Awaitable[Close]]
Report = Callable[[Row[Any], Close, Closed], None]
Recover = Callable[[Row[Any], Close, BaseException], Close]


class QueueLoop:
    """Runs ``handle`` for a queue's due jobs (see module)."""

    def __init__(
        self,
        queue: DurableQueue,
        handle: Handle,
        *,
        name: str,
        concurrency: int = 16,
        batch: int = 0,
        poll: float = 1.0,
        pause: Callable[[], bool] | None = None,
        report: Report | None = None,
        recover: Recover | None = None,
        linger: float = CLOSE_LINGER,
    ) -> None:
        self.queue = queue
        self._handle = handle
        self.name = name
        self.concurrency = max(concurrency, 1)
        self.batch = max(batch, self.concurrency)
        """Jobs leased at once (``concurrency`` of them in their handler)."""
        self._handlers = asyncio.Semaphore(self.concurrency)
        self.poll = poll
        self._pause = pause
        self._report = report
        self._recover = recover
        self._commit: GroupCommit[Close, Closed] = GroupCommit(
            queue.close, name=f"{name}-close", linger=linger, expect=self._unclosed
        )
        self._wake = asyncio.Event()
        self._slot = asyncio.Event()
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._inflight: dict[int, Row[Any]] = {}

    def _unclosed(self) -> int:
        return len(self._inflight)

    def wake(self) -> None:
        """Look for work now (a job was just queued)."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._main = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self, grace: float = 30.0) -> None:
        """Finish the jobs in flight (up to ``grace`` s), then stop; cut-off jobs are released."""
        self._stopping = True
        self._wake.set()
        self._slot.set()
        if self._main is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._main
            self._main = None
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        cut_off = list(self._inflight)
        self._inflight.clear()
        with contextlib.suppress(SQLAlchemyError, OSError):
            await self.queue.release(cut_off)
            for job_id in cut_off:
                log.info(f"{self.name}.released", job_id=job_id)
        await self._commit.aclose()

    async def run_once(self) -> bool:
        """Claim and run one due job; False when none was due (tests, CLI)."""
        rows = await self.queue.claim(1)
        if not rows:
            return False
        await self._run([rows[0]])
        return True

    async def drain(self, limit: int = 10_000) -> int:
        """Run due jobs until none is left; how many ran."""
        done = 0
        while done < limit and await self.run_once():
            done += 1
        return done

    async def _loop(self) -> None:
        beat = asyncio.create_task(self._heartbeat(), name=f"{self.name}-heartbeat")
        try:
            while not self._stopping:
                free = self.batch - len(self._inflight)
                if self._pause is not None and self._pause():
                    await asyncio.sleep(PRESSURE_PAUSE)
                    free = self.batch - len(self._inflight)
                elif self._inflight and free < self.batch // 2:
                    # Claim in batches: one claim per job in flight would cost a transaction
                    # each; wait until half the places are free (or none is in flight).
                    free = 0
                if free <= 0:
                    self._slot.clear()
                    await self._slot.wait()
                    continue
                try:
                    rows = await self.queue.claim(free)
                except (SQLAlchemyError, OSError) as exc:
                    log.error(f"{self.name}.storage_failed", error=type(exc).__name__)
                    rows = []
                if not rows:
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll)
                    continue
                for group in _groups(rows, self.queue.spec.exclusive):
                    for row in group:
                        self._inflight[row[0]] = row
                    task = asyncio.create_task(self._run(group))
                    self._tasks.add(task)
                    task.add_done_callback(self._tasks.discard)
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat

    async def _run(self, group: list[Row[Any]]) -> None:
        """Jobs of one reference, in claim order."""
        for row in group:
            try:
                async with self._handlers:
                    close = await self._handle(row)
                closed = await self._commit.submit(close)
                if closed.error is not None and self._recover is not None:
                    if self._report is not None:
                        self._report(row, close, closed)
                    close = self._recover(row, close, closed.error)
                    closed = await self._commit.submit(close)
            except asyncio.CancelledError:
                raise  # still in flight: stop() releases it
            except Exception as exc:
                # Storage failed: the lease runs out and the job is due again; nothing is lost.
                log.error(f"{self.name}.storage_failed", job_id=row[0], error=type(exc).__name__)
            else:
                if closed.lost:
                    log.warning(f"{self.name}.lease_lost", job_id=row[0])
                elif self._report is not None:
                    self._report(row, close, closed)
            self._inflight.pop(row[0], None)
            self._slot.set()

    async def _heartbeat(self) -> None:
        interval = max(self.queue.lease.total_seconds() / 3, 0.1)
        while True:
            await asyncio.sleep(interval)
            with contextlib.suppress(SQLAlchemyError, OSError):
                await self.queue.extend(list(self._inflight))


def _groups(rows: list[Row[Any]], exclusive: str | None) -> list[list[Row[Any]]]:
    """Claimed jobs grouped by their exclusive value (None: each alone), claim order kept."""
    if exclusive is None:
        return [[row] for row in rows]
    groups: dict[object, list[Row[Any]]] = {}
    for row in rows:
        value = getattr(row, exclusive)
        groups.setdefault(row[0] if value is None else ("v", value), []).append(row)
    return list(groups.values())
