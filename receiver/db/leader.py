"""Leadership: run a periodic job on one replica at a time.

Every replica may run the queue loops (claims hold leases and skip locked rows), but a job that
polls an outside service on a timer, like the bridge keeper, must run once across replicas. That
job is wrapped in a ``Leadership``:

* on PostgreSQL, ``PostgresLeadership`` holds a session-level ``pg_try_advisory_lock(key)`` on a
  dedicated connection (its own engine without a pool, autocommit: never idle in a transaction).
  The holder runs the job; the others retry every ``retry`` seconds. When the leader process
  dies, or its connection drops, PostgreSQL ends the session and frees the lock, and the next
  retry of another replica takes it. The leader pings its connection every ``check`` seconds
  and tells its job to stop when the ping fails, so after a silent network loss the old leader
  is stopping (within ``check`` + ``timeout`` seconds; a tick in progress finishes) before the
  server gives the lock away (TCP keepalives end the session after about 11 s: ``_KEEPALIVES``).
  Leadership saves duplicate work; it is not what makes effects safe: a moment of two leaders
  is harmless because the job's effects are reserved in the database (bridge regenerations).
  On shutdown the leader stops the job and unlocks at once, so another replica takes over on
  its next retry.
* on SQLite there is one process (the database has one writer; ``serve --workers`` refuses
  it), so ``AlwaysLeader`` runs the job at once.

A job is ``async def job(stop: asyncio.Event) -> None`` that returns soon after ``stop`` is set
(``BridgeKeeper.run``). Neither ``start`` nor ``aclose`` waits for the database: start-up never
blocks on another replica, and shutdown is bounded by ``grace``.

Log events: ``leader.acquired``, ``leader.lost``, ``leader.released``, ``leader.error``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable, Coroutine
from typing import Any, Protocol

from sqlalchemy import text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from receiver.logs import get_logger

Job = Callable[[asyncio.Event], Coroutine[Any, Any, None]]

log = get_logger("leader")

# Server-side TCP keepalives for the lock's session: a leader that vanished without closing its
# socket (host down, network cut) loses the lock after idle + interval * count seconds.
_KEEPALIVES = {
    "tcp_keepalives_idle": "5",
    "tcp_keepalives_interval": "2",
    "tcp_keepalives_count": "3",
}


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for a job name."""
    return int.from_bytes(
        hashlib.sha256(f"kotani-receiver:{name}".encode()).digest()[:8], "big", signed=True
    )


class Leadership(Protocol):
    """Runs one job only while this process leads; ``start`` then ``aclose``."""

    name: str

    @property
    def is_leader(self) -> bool: ...

    def start(self) -> None: ...

    async def aclose(self) -> None: ...


def leadership(url: str | URL, name: str, job: Job, **options: float) -> Leadership:
    """The leadership for the database at ``url``: advisory lock on PostgreSQL, else always."""
    url = make_url(url)
    if url.get_backend_name() == "postgresql":
        return PostgresLeadership(url, name, job, **options)
    return AlwaysLeader(name, job, grace=options.get("grace", 15.0))


class _JobRunner:
    """Starts the job with a fresh stop event and stops it within ``grace`` seconds."""

    def __init__(self, name: str, job: Job, grace: float) -> None:
        self.name = name
        self._job = job
        self._grace = grace
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def run(self) -> None:
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(self._job(self._stop), name=f"leader-job-{self.name}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        self._stop.set()
        _, pending = await asyncio.wait([task], timeout=self._grace)
        for late in pending:
            late.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await late
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("leader.error", job=self.name, error=type(task.exception()).__name__)


class AlwaysLeader:
    """One process owns the database (SQLite): the job runs from ``start`` to ``aclose``."""

    def __init__(self, name: str, job: Job, *, grace: float = 15.0) -> None:
        self.name = name
        self._runner = _JobRunner(name, job, grace)

    @property
    def is_leader(self) -> bool:
        return self._runner.running

    def start(self) -> None:
        self._runner.run()

    async def aclose(self) -> None:
        await self._runner.stop()


class PostgresLeadership:
    """Session-level advisory lock on a dedicated connection; the job runs while it is held."""

    def __init__(
        self,
        url: str | URL,
        name: str,
        job: Job,
        *,
        retry: float = 2.0,
        check: float = 2.0,
        timeout: float = 2.0,
        grace: float = 15.0,
    ) -> None:
        self.name = name
        self.key = lock_key(name)
        self.retry = retry
        self.check = check
        self.timeout = timeout
        self._runner = _JobRunner(name, job, grace)
        self._engine: AsyncEngine = create_async_engine(
            make_url(url),
            poolclass=NullPool,
            isolation_level="AUTOCOMMIT",
            connect_args={"server_settings": _KEEPALIVES, "timeout": timeout},
        )
        self._conn: AsyncConnection | None = None
        self.backend_pid: int | None = None
        """The server process of the lock's session (a test ends it to cut the link)."""
        self._leading = False
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"PostgresLeadership(name={self.name!r}, leading={self._leading})"

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        self._closing.clear()
        self._task = asyncio.create_task(self._loop(), name=f"leader-{self.name}")

    async def aclose(self) -> None:
        """Stop the job, unlock, close the connection (bounded: never waits on a dead server)."""
        self._closing.set()
        if self._task is not None:
            await self._task
            self._task = None
        await self._engine.dispose()

    async def _loop(self) -> None:
        while not self._closing.is_set():
            try:
                if await self._try_lock():
                    await self._lead()
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                log.warning(
                    "leader.lost" if self._leading else "leader.error",
                    job=self.name,
                    error=type(exc).__name__,
                )
                await self._step_down()
                await self._disconnect(unlock=False)
            await self._sleep(self.retry)
        await self._step_down()
        await self._disconnect(unlock=True)

    async def _try_lock(self) -> bool:
        if self._conn is None:
            self._conn = await asyncio.wait_for(self._engine.connect(), self.timeout)
            pid = await self._scalar("SELECT pg_backend_pid()")
            self.backend_pid = int(pid) if isinstance(pid, int) else None
        if not await self._scalar("SELECT pg_try_advisory_lock(:key)"):
            return False
        self._leading = True
        log.info("leader.acquired", job=self.name, key=self.key)
        self._runner.run()
        return True

    async def _lead(self) -> None:
        """Hold the lock while the connection answers; return on close, raise when it fails."""
        while not self._closing.is_set():
            await self._sleep(self.check)
            if self._closing.is_set():
                return
            await self._scalar("SELECT 1")
            if not self._runner.running:  # the job ended by itself: run it again
                log.error("leader.job_ended", job=self.name)
                self._runner.run()

    async def _step_down(self) -> None:
        if self._leading:
            await self._runner.stop()
            self._leading = False

    async def _disconnect(self, *, unlock: bool) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            if unlock:
                await self._scalar("SELECT pg_advisory_unlock(:key)", conn)
                log.info("leader.released", job=self.name)
            await asyncio.wait_for(conn.close(), self.timeout)
        except (SQLAlchemyError, OSError, TimeoutError):
            # The session is gone or unreachable: the server frees the lock with it.
            with contextlib.suppress(Exception):
                await conn.invalidate()

    async def _scalar(self, sql: str, conn: AsyncConnection | None = None) -> object:
        conn = conn or self._conn
        assert conn is not None
        statement = conn.execute(text(sql), {"key": self.key} if ":key" in sql else {})
        return (await asyncio.wait_for(statement, self.timeout)).scalar()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._closing.wait(), seconds)
