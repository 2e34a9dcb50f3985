"""Leadership on a real PostgreSQL: two contenders, one leads; it closes, dies or loses its link,
and the other takes over within a few seconds. On SQLite the one process always leads."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg

from receiver.db.leader import AlwaysLeader, PostgresLeadership, leadership

FAST = {"retry": 0.2, "check": 0.2, "timeout": 2.0, "grace": 5.0}
TAKEOVER = 10.0  # seconds: generous bound on "within a few seconds" on a loaded machine


class Jobs:
    """Records which contender runs its job, and the most that ever ran at once."""

    def __init__(self) -> None:
        self.running: set[str] = set()
        self.most = 0
        self.starts: list[str] = []

    def job(self, who: str):  # type: ignore[no-untyped-def]
        async def run(stop: asyncio.Event) -> None:
            self.running.add(who)
            self.starts.append(who)
            self.most = max(self.most, len(self.running))
            try:
                await stop.wait()
            finally:
                self.running.discard(who)

        return run


async def until(condition, limit: float = TAKEOVER) -> float:  # type: ignore[no-untyped-def]
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < limit, "timed out"
        await asyncio.sleep(0.05)
    return time.monotonic() - started


def contenders(url: str, jobs: Jobs, name: str = "keeper") -> list[PostgresLeadership]:
    return [PostgresLeadership(url, name, jobs.job(who), **FAST) for who in ("a", "b")]


async def test_one_of_two_leads_and_the_other_takes_over_on_close(
    fresh_postgres_url: str,
) -> None:
    jobs = Jobs()
    a, b = contenders(fresh_postgres_url, jobs)
    a.start()
    await until(lambda: a.is_leader)
    b.start()
    await asyncio.sleep(1.0)  # b retried five times meanwhile
    assert (a.is_leader, b.is_leader) == (True, False)
    assert jobs.running == {"a"}
    await a.aclose()  # unlocks at once
    assert jobs.running == set()
    await until(lambda: b.is_leader)
    assert jobs.running == {"b"}
    assert jobs.starts == ["a", "b"] and jobs.most == 1
    await b.aclose()
    assert jobs.running == set()


async def test_a_lost_connection_hands_leadership_over(
    fresh_postgres_url: str, postgres_url: str
) -> None:
    jobs = Jobs()
    a, b = contenders(fresh_postgres_url, jobs)
    try:
        a.start()
        await until(lambda: a.is_leader)
        b.start()
        await asyncio.sleep(0.5)
        assert not b.is_leader
        admin = await asyncpg.connect(postgres_url.replace("postgresql+asyncpg", "postgresql"))
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", a.backend_pid)
        finally:
            await admin.close()
        await until(lambda: b.is_leader and not a.is_leader)
        assert jobs.running == {"b"}
        # a reconnects and keeps contending; it does not lead while b holds the lock
        await asyncio.sleep(1.0)
        assert (a.is_leader, b.is_leader) == (False, True)
    finally:
        await a.aclose()
        await b.aclose()


async def test_jobs_with_different_names_lead_independently(fresh_postgres_url: str) -> None:
    jobs = Jobs()
    one = PostgresLeadership(fresh_postgres_url, "keeper", jobs.job("keeper"), **FAST)
    other = PostgresLeadership(fresh_postgres_url, "sweeper", jobs.job("sweeper"), **FAST)
    one.start()
    other.start()
    try:
        await until(lambda: one.is_leader and other.is_leader)
    finally:
        await one.aclose()
        await other.aclose()


CHILD = """
import asyncio, sys
from receiver.db.leader import PostgresLeadership

async def job(stop):
    print("leading", flush=True)
    await stop.wait()

async def main():
    leader = PostgresLeadership(sys.argv[1], "keeper", job, retry=0.2, check=0.2)
    leader.start()
    await asyncio.Event().wait()

asyncio.run(main())
"""


def spawn_leader(url: str, cwd: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-c", CHILD, url],
        stdout=subprocess.PIPE,
        cwd=cwd,
        env={k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")},
    )


async def test_a_killed_leader_process_is_replaced(fresh_postgres_url: str, tmp_path: Path) -> None:
    child = spawn_leader(fresh_postgres_url, tmp_path)
    jobs = Jobs()
    here = PostgresLeadership(fresh_postgres_url, "keeper", jobs.job("here"), **FAST)
    try:
        assert child.stdout is not None
        stdout = child.stdout

        def lead_line() -> None:  # the child's log lines go to stdout too
            while (line := stdout.readline()) != b"leading\n":
                assert line, "the child exited"

        await asyncio.wait_for(asyncio.to_thread(lead_line), 30)
        here.start()
        await asyncio.sleep(1.0)
        assert not here.is_leader  # the child holds the lock
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        waited = await until(lambda: here.is_leader)
        assert jobs.running == {"here"}
        print(f"took over {waited:.2f} s after the kill")
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
        await here.aclose()


async def test_sqlite_always_leads_until_closed(tmp_path: Path) -> None:
    jobs = Jobs()
    leader = leadership(f"sqlite+aiosqlite:///{tmp_path / 'x.sqlite3'}", "keeper", jobs.job("one"))
    assert isinstance(leader, AlwaysLeader)
    leader.start()
    await until(lambda: jobs.running == {"one"})
    assert leader.is_leader
    await leader.aclose()
    assert jobs.running == set() and not leader.is_leader


async def test_close_is_bounded_when_the_job_ignores_stop(fresh_postgres_url: str) -> None:
    started = asyncio.Event()

    async def stubborn(stop: asyncio.Event) -> None:
        started.set()
        await asyncio.sleep(3600)

    leader = PostgresLeadership(fresh_postgres_url, "keeper", stubborn, **{**FAST, "grace": 0.2})
    leader.start()
    await asyncio.wait_for(started.wait(), TAKEOVER)
    await asyncio.wait_for(leader.aclose(), TAKEOVER)  # the job is cancelled after grace
    assert not leader.is_leader
