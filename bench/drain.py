"""Benchmark: end-to-end drain, from Kotani's delivery to the integrator's app.

    python bench/drain.py [--events 2000] [--connections 32] [--limit 120] [--only sqlite,pg1,pg2]
                          [--min-rate 200] [--timeline] [--profile DIR]

For each setup the real service (``kotani-receiver serve``) gets ``--events`` unique signed
offramp status updates over keep-alive connections (bench/webhooks.py's raw HTTP/1.1 client),
stores them, handles them (one ``transaction_status`` row each) and forwards them to a loopback
Standard Webhooks sink in this process (every signature checked). Printed per setup, all from
the same run:

* ingest: first send to the last 2xx (what Kotani sees);
* handled: first send to the last event handled (polled every 0.1 s);
* forwarded: first send to the last distinct message at the sink (the end-to-end figure);
* the 1-minute load average at the end (the machine may be shared).

Each setup's events, and its warm-up's, have references of their own (``bench-sqlite-<n>``,
``warm-sqlite-<n>``...): the sink and the handled count see only the timed events of the setup
at hand. ``--profile DIR`` attaches py-spy (``pip install py-spy``) to each server for the
timed part and writes its collapsed stacks to ``DIR/<setup>-<replica>.txt``.

Setups: SQLite (one process), PostgreSQL with one replica, PostgreSQL with two replicas (two
processes on one database, each getting half of the events). PostgreSQL is ``$DRAIN_POSTGRES_URL``
(a server the bench may create databases on) or a throwaway server from this machine's
PostgreSQL binaries (tests/support/postgres.py); without either its rows are skipped. Every setup
stops after ``--limit`` seconds, and reports how far it got. Exit 1 when a setup did not finish
or ``--min-rate`` (end to end) was not reached.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hmac
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _load import PY, start_process, stop_process  # noqa: E402
from sqlalchemy import text  # noqa: E402
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine  # noqa: E402
from webhooks import SECRET, drive, free_port, requests_for  # noqa: E402

from receiver.webhooks import standard  # noqa: E402

WARMUP = 50
FORWARD_KEY = bytes(range(7, 39))
FORWARD_SECRET = "whsec_" + base64.b64encode(FORWARD_KEY).decode()


class Sink:
    """A loopback Standard Webhooks receiver: raw keep-alive HTTP/1.1, signatures checked."""

    def __init__(self) -> None:
        self.prefix = ""
        self.seen: set[str] = set()
        self.repeats = 0
        self.bad = 0
        self.last = 0.0
        self.arrived = asyncio.Event()

    async def wait_for(self, count: int, limit: float) -> None:
        """Until ``count`` distinct messages arrived, or ``limit`` seconds."""
        deadline = time.perf_counter() + limit
        while len(self.seen) < count and time.perf_counter() < deadline:
            self.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.arrived.wait(), 0.1)

    def expect(self, prefix: str) -> None:
        """Count from now on only the messages of references ``<prefix>-<n>``.

        Each setup (and its warm-up) has references of its own: the message id is derived from
        the event, so the same events in two setups would have the same ids, and a warm-up
        message forwarded late would count as a timed one.
        """
        self.prefix = prefix + "-"
        self.seen.clear()
        self.repeats = self.bad = 0

    def _counted(self, body: bytes) -> bool:
        reference = json.loads(body).get("kotani", {}).get("reference_id") or ""
        return isinstance(reference, str) and reference.startswith(self.prefix)

    async def connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while request_line := await reader.readline():
                if not request_line.strip():
                    continue
                headers: dict[str, str] = {}
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                message_id = headers.get("webhook-id", "")
                timestamp = int(headers.get("webhook-timestamp", "0"))
                expected = standard.signature(FORWARD_KEY, message_id, timestamp, body)
                if hmac.compare_digest(expected, headers.get("webhook-signature", "")):
                    if not self._counted(body):
                        pass
                    elif message_id in self.seen:
                        self.repeats += 1
                    else:
                        self.seen.add(message_id)
                        self.last = time.perf_counter()
                        self.arrived.set()
                    writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
                else:
                    self.bad += 1
                    writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@dataclass
class Outcome:
    name: str
    events: int
    ingested: int
    ingest_s: float
    handled: int
    handled_s: float
    forwarded: int
    forward_s: float
    repeats: int
    bad: int
    load: str = ""

    def rate(self, count: int, seconds: float) -> str:
        return f"{count / seconds:8.0f}/s" if seconds > 0 else "       -"

    def line(self) -> str:
        partial = "" if self.forwarded == self.handled == self.events else "  (NOT FINISHED)"
        return (
            f"{self.name:<15} ingest {self.rate(self.ingested, self.ingest_s)}"
            f" ({self.ingest_s:5.2f} s)   handled {self.handled:>5}"
            f" {self.rate(self.handled, self.handled_s)} ({self.handled_s:5.1f} s)"
            f"   forwarded {self.forwarded:>5} {self.rate(self.forwarded, self.forward_s)}"
            f" ({self.forward_s:5.1f} s)   load {self.load}{partial}"
        )


def load_average() -> str:
    """The 1-minute load average (the machine is shared: figures are only comparable within a
    run, beside their load)."""
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


async def handled_count(engine: AsyncEngine, prefix: str) -> int:
    """Events handled so far (each one's effect: its reference's newest status)."""
    async with engine.connect() as conn:
        result = await conn.execute(
            text("SELECT count(*) FROM transaction_status WHERE reference_id LIKE :pattern"),
            {"pattern": f"{prefix}-%"},
        )
        return int(result.scalar_one())


def profile(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy sampling ``pid`` (collapsed stacks, idle frames left out) until interrupted."""
    beside = Path(sys.executable).with_name("py-spy")  # installed in this venv, or on PATH
    spy = str(beside) if beside.exists() else "py-spy"
    cmd = [spy, "record", "--pid", str(pid), "--rate", "100", "--format", "raw"]
    return subprocess.Popen(
        [*cmd, "--output", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )


async def run_setup(
    key: str,
    name: str,
    database_url: str,
    replicas: int,
    args: argparse.Namespace,
    sink: Sink,
    sink_port: int,
    tmp: Path,
) -> Outcome:
    ports = [free_port() for _ in range(replicas)]
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    processes = []
    profilers: list[subprocess.Popen[bytes]] = []
    engine = create_async_engine(database_url)
    try:
        for port in ports:
            env = {
                **base,
                "RECEIVER_DATABASE_URL": database_url,
                "RECEIVER_DATA_DIR": str(tmp / f"data-{port}"),
                "RECEIVER_PORT": str(port),
                "RECEIVER_WEBHOOK_SECRETS": SECRET,
                "RECEIVER_INVOICE_TOKENS": "drain-token-0123456789abcdef",
                "RECEIVER_FORWARD_URL": f"http://127.0.0.1:{sink_port}/hook",
                "RECEIVER_FORWARD_SECRET": FORWARD_SECRET,
                "RECEIVER_LOG_LEVEL": "warning",
            }
            health = f"http://127.0.0.1:{port}/healthz"
            cmd = [PY, "-m", "receiver", "serve"]
            processes.append(await asyncio.to_thread(start_process, cmd, env, health, tmp))
        # Each replica gets every other event. The warm-up (connections, caches) and the timed
        # events have references of their own, so only timed ones are counted.
        per_port = max(1, args.connections // replicas)
        warm = [requests_for(WARMUP, p, f"warm-{key}")[i::replicas] for i, p in enumerate(ports)]
        timed = [
            requests_for(args.events, p, f"bench-{key}")[i::replicas] for i, p in enumerate(ports)
        ]
        sink.expect(f"warm-{key}")
        warming = asyncio.gather(*(drive(p, w, per_port) for p, w in zip(ports, warm, strict=True)))
        await asyncio.wait_for(warming, 30)  # a server that stops answering ends the run
        await sink.wait_for(WARMUP, 30)
        if len(sink.seen) < WARMUP:
            raise SystemExit(f"{name}: {len(sink.seen)} of {WARMUP} warm-up events forwarded")
        sink.expect(f"bench-{key}")
        if args.profile is not None:
            args.profile.mkdir(parents=True, exist_ok=True)
            for n, process in enumerate(processes):
                profilers.append(profile(process.pid, args.profile / f"{key}-{n}.txt"))
            await asyncio.sleep(1.0)  # py-spy attached
        events = sum(len(t) for t in timed)

        started = time.perf_counter()
        sending = asyncio.gather(
            *(drive(p, t, per_port) for p, t in zip(ports, timed, strict=True))
        )
        results = await asyncio.wait_for(sending, args.limit)
        ingest_s = time.perf_counter() - started
        ingested = sum(ok for _, ok in results)
        handled, handled_s = 0, 0.0
        timeline: list[str] = []
        limit = started + args.limit
        while time.perf_counter() < limit:
            if handled < events:
                now = await handled_count(engine, f"bench-{key}")
                if now > handled:
                    handled, handled_s = now, time.perf_counter() - started
            elapsed = time.perf_counter() - started
            if args.timeline and elapsed >= 0.5 * (len(timeline) + 1):
                timeline.append(f"{elapsed:4.1f}s h{handled} f{len(sink.seen)}")
            if handled >= events and len(sink.seen) >= events:
                break
            sink.arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sink.arrived.wait(), 0.1)
        forwarded = len(sink.seen)
        if timeline:
            print("  " + " | ".join(timeline))
        forward_s = (sink.last - started) if forwarded else 0.0
        if forwarded < events:
            forward_s = time.perf_counter() - started
        return Outcome(
            name,
            events,
            ingested,
            ingest_s,
            handled,
            handled_s,
            forwarded,
            forward_s,
            sink.repeats,
            sink.bad,
            load_average(),
        )
    finally:
        for profiler in profilers:
            profiler.send_signal(signal.SIGINT)
            await asyncio.to_thread(profiler.wait, 30)
        await engine.dispose()
        for process in processes:
            await asyncio.to_thread(stop_process, process)


@contextlib.contextmanager
def postgres() -> Iterator[str | None]:
    """A PostgreSQL server URL (asyncpg), or None with the reason printed."""
    given = os.environ.get("DRAIN_POSTGRES_URL")
    if given:
        yield given
        return
    try:
        from tests.support.postgres import postgres_server

        server = postgres_server()
        url = server.__enter__()
    except Exception as exc:  # no binaries, not allowed to run them...
        print(f"PostgreSQL: skipped ({exc})")
        yield None
        return
    try:
        yield url
    finally:
        server.__exit__(None, None, None)


async def fresh_database(server_url: str) -> str:
    import asyncpg  # type: ignore[import-untyped]

    name = f"drain_{uuid.uuid4().hex[:10]}"
    conn = await asyncpg.connect(server_url.replace("postgresql+asyncpg", "postgresql"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return server_url.rsplit("/", 1)[0] + f"/{name}"


async def bench(args: argparse.Namespace, pg_url: str | None, tmp: Path) -> list[Outcome]:
    sink = Sink()
    server = await asyncio.start_server(sink.connection, "127.0.0.1", 0)
    sink_port = server.sockets[0].getsockname()[1]
    outcomes = []
    setups = [
        ("sqlite", "sqlite", 1),
        ("pg1", "postgresql x1", 1),
        ("pg2", "postgresql x2", 2),
    ]
    try:
        for key, name, replicas in setups:
            if key not in args.only:
                continue
            if key == "sqlite":
                url = f"sqlite+aiosqlite:///{tmp / 'drain.sqlite3'}"
            elif pg_url is None:
                continue
            else:
                url = await fresh_database(pg_url)
            outcome = await run_setup(key, name, url, replicas, args, sink, sink_port, tmp)
            print(outcome.line(), flush=True)
            outcomes.append(outcome)
    finally:
        server.close()
        await server.wait_closed()
    return outcomes


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--limit", type=float, default=120.0, help="seconds per setup")
    parser.add_argument("--only", default="sqlite,pg1,pg2", help="setups to run")
    parser.add_argument("--min-rate", type=float, default=0.0, help="end-to-end events/s")
    parser.add_argument(
        "--timeline", action="store_true", help="print handled and forwarded every 0.5 s"
    )
    parser.add_argument(
        "--profile",
        type=Path,
        help="directory for py-spy's collapsed stacks of each server during the timed part",
    )
    args = parser.parse_args()
    args.only = set(args.only.split(","))
    print(
        f"events: {args.events} unique signed (after {WARMUP} warm-up), connections: "
        f"{args.connections}, limit {args.limit:.0f} s per setup; rates from the first send"
    )
    with tempfile.TemporaryDirectory(prefix="bench-drain-") as tmp, postgres() as pg_url:
        outcomes = asyncio.run(bench(args, pg_url, Path(tmp)))
    failed = False
    for outcome in outcomes:
        end_to_end = outcome.forwarded / outcome.forward_s if outcome.forward_s else 0.0
        if outcome.repeats or outcome.bad:
            print(f"{outcome.name}: {outcome.repeats} repeated, {outcome.bad} bad signatures")
        finished = outcome.forwarded == outcome.handled == outcome.events == outcome.ingested
        failed |= not finished or end_to_end < args.min_rate
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
