"""Two real ``kotani-receiver serve`` processes on one real PostgreSQL, as two replicas behind a
load balancer that sends every delivery to both: one is SIGKILLed mid-flood and restarted.

Asserted: every event acknowledged is stored once and its effect recorded once; every event is
forwarded to the integrator's app (a loopback Standard Webhooks sink, signatures checked) under
exactly one message id. The same message id may arrive twice: a replica killed after the sink
answered but before it recorded the delivery leaves the message to be sent again when its lease
ends. That is at-least-once delivery with an idempotency key (``webhook-id``), which is what
Standard Webhooks promises and what the receiving app deduplicates on; such repeats must carry
the identical body. And 40 identical concurrent generate-invoice requests spread over both
replicas get one invoice. Also: ``serve --workers`` on PostgreSQL, refused on SQLite.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

import asyncpg
import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.webhooks import jsjson, standard
from tests.inbox.conftest import SECRET
from tests.inbox.test_kill9 import body_for, wait_healthy
from tests.support.server import free_port, serve_app

EVENTS = 300
SENDERS = 16
KILL_AFTER = 90  # events acknowledged before replica A is killed
TOKEN = "replica-token-0123456789abcdef"
FORWARD_KEY = bytes(range(32))
FORWARD_SECRET = "whsec_" + base64.b64encode(FORWARD_KEY).decode()
SETTLE = 90.0  # seconds: bound on handling and forwarding after the last delivery


class Sink:
    """The integrator's app: checks each Standard Webhooks signature, records what arrived."""

    def __init__(self) -> None:
        self.bodies: dict[str, list[bytes]] = defaultdict(list)
        self.bad_signatures = 0

    async def receive(self, request: Request) -> Response:
        body = await request.body()
        message_id = request.headers["webhook-id"]
        timestamp = int(request.headers["webhook-timestamp"])
        expected = standard.signature(FORWARD_KEY, message_id, timestamp, body)
        if not hmac.compare_digest(expected, request.headers["webhook-signature"]):
            self.bad_signatures += 1
            return Response(status_code=400)
        self.bodies[message_id].append(body)
        return Response(status_code=204)

    def references(self) -> dict[str, set[str]]:
        """Reference id -> the message ids it was forwarded under."""
        out: dict[str, set[str]] = defaultdict(set)
        for message_id, bodies in self.bodies.items():
            document = jsjson.loads(bodies[0])
            assert isinstance(document, dict) and isinstance(document["kotani"], dict)
            out[str(document["kotani"]["reference_id"])].add(message_id)
        return out


def replica_env(tmp_path: Path, port: int, database_url: str, sink_url: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    return {
        **base,
        "RECEIVER_DATABASE_URL": database_url,
        "RECEIVER_DATA_DIR": str(tmp_path / f"data-{port}"),
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_PORT": str(port),
        "RECEIVER_WEBHOOK_SECRETS": SECRET,
        "RECEIVER_INVOICE_TOKENS": TOKEN,
        "RECEIVER_WORKER_LEASE": "2",
        "RECEIVER_FORWARD_URL": sink_url,
        "RECEIVER_FORWARD_SECRET": FORWARD_SECRET,
        "RECEIVER_LOG_LEVEL": "warning",
    }


def start_replica(tmp_path: Path, env: dict[str, str], *args: str) -> subprocess.Popen[bytes]:
    with open(tmp_path / f"replica-{env['RECEIVER_PORT']}.log", "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def stop_replica(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def deliver(
    urls: list[str],
    numbers: list[int],
    acked: set[int],
    kill: asyncio.Event | None,
    first_acked: set[int] | None = None,
) -> None:
    """Post each event to every replica at once; an event is acknowledged by any 200
    (``first_acked``: the events the first replica answered 200)."""
    queue = list(numbers)

    async def post(client: httpx.AsyncClient, url: str, body: bytes, signature: str) -> bool:
        try:
            response = await client.post(
                f"{url}/webhooks/kotani", content=body, headers={"X-Kotani-Signature": signature}
            )
        except httpx.HTTPError:
            return False  # no answer (the killed replica): Kotani would retry
        return response.status_code == 200

    async def sender(client: httpx.AsyncClient) -> None:
        while queue:
            n = queue.pop()
            body, signature = body_for(n)
            answers = await asyncio.gather(*(post(client, u, body, signature) for u in urls))
            if answers[0] and first_acked is not None:
                first_acked.add(n)
            if any(answers):
                acked.add(n)
                if kill is not None and len(acked) >= KILL_AFTER:
                    kill.set()

    async with httpx.AsyncClient(timeout=10) as client:
        await asyncio.wait_for(asyncio.gather(*(sender(client) for _ in range(SENDERS))), 120)


async def effects(dsn: str) -> tuple[Counter[str], Counter[str], set[str]]:
    conn = await asyncpg.connect(dsn)
    try:
        stored = Counter(r[0] for r in await conn.fetch("SELECT reference_id FROM webhook_events"))
        completed = Counter(
            r[0]
            for r in await conn.fetch(
                "SELECT reference_id FROM refund_history WHERE action = 'refund.completed'"
            )
        )
        statuses = {r[0] for r in await conn.fetch("SELECT reference_id FROM transaction_status")}
    finally:
        await conn.close()
    return stored, completed, statuses


async def test_two_replicas_one_killed_lose_nothing_and_do_nothing_twice(
    tmp_path: Path, fresh_postgres_url: str
) -> None:
    dsn = fresh_postgres_url.replace("postgresql+asyncpg", "postgresql")
    sink = Sink()
    sink_app = Starlette(routes=[Route("/hook", sink.receive, methods=["POST"])])
    everything = set(range(EVENTS))
    references = {f"K9-{n}" for n in everything}
    async with serve_app(sink_app) as sink_url:
        ports = [free_port(), free_port()]
        urls = [f"http://127.0.0.1:{port}" for port in ports]
        envs = [replica_env(tmp_path, p, fresh_postgres_url, f"{sink_url}/hook") for p in ports]
        replicas = [start_replica(tmp_path, env) for env in envs]
        try:
            for url, replica in zip(urls, replicas, strict=True):
                await wait_healthy(url, replica)
            kill = asyncio.Event()
            acked: set[int] = set()
            acked_by_a: set[int] = set()

            async def killer() -> int:
                await kill.wait()
                os.kill(replicas[0].pid, signal.SIGKILL)
                return len(acked)

            killing = asyncio.create_task(killer())
            await deliver(urls, sorted(everything), acked, kill, acked_by_a)
            assert KILL_AFTER <= await killing < EVENTS  # the kill hit the flood mid-way
            assert await asyncio.to_thread(replicas[0].wait, 10) == -signal.SIGKILL

            stored, _, _ = await effects(dsn)
            missing = {f"K9-{n}" for n in acked} - set(stored)
            assert not missing, f"acknowledged but not stored: {sorted(missing)[:5]}"

            # Restart A; Kotani redelivers what A gave no 2xx for (here: to both, again).
            replicas[0] = start_replica(tmp_path, envs[0])
            await wait_healthy(urls[0], replicas[0])
            assert len(acked_by_a) < EVENTS
            await deliver(urls, sorted(everything - acked_by_a), acked, None)
            assert acked == everything

            deadline = time.monotonic() + SETTLE
            while True:
                stored, completed, statuses = await effects(dsn)
                forwarded = sink.references()
                done = set(completed) | statuses == references and set(forwarded) == references
                if done or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)

            # Stored once, each effect once.
            assert set(stored) == references and set(stored.values()) == {1}
            assert completed == Counter({f"K9-{n}": 1 for n in everything if n % 2})
            assert statuses == {f"K9-{n}" for n in everything if n % 2 == 0}
            # Forwarded: every event, under exactly one message id; repeats are identical.
            assert sink.bad_signatures == 0
            assert set(forwarded) == references
            assert {len(ids) for ids in forwarded.values()} == {1}
            repeats = {m: b for m, b in sink.bodies.items() if len(b) > 1}
            assert all(len(set(bodies)) == 1 for bodies in repeats.values())
            print(
                f"\nforwarded {len(sink.bodies)} messages, {len(repeats)} repeated after the kill"
            )

            await one_invoice_for_identical_requests(urls, dsn)
        finally:
            for replica in replicas:
                stop_replica(replica)


async def one_invoice_for_identical_requests(urls: list[str], dsn: str) -> None:
    request = {"amount_msat": 2_500_000, "reference_id": "REPLICA-INV-1"}
    async with httpx.AsyncClient(timeout=15) as client:
        answers = await asyncio.gather(
            *(client.post(f"{urls[i % 2]}/invoices/{TOKEN}", json=request) for i in range(40))
        )
    assert [a.status_code for a in answers] == [200] * 40, answers[0].text
    assert len({a.json()["payment_hash"] for a in answers}) == 1
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetchval(
            "SELECT count(*) FROM invoices WHERE reference_id = $1", request["reference_id"]
        )
    finally:
        await conn.close()
    assert rows == 1


def worker_pids(parent: int) -> list[int]:
    """uvicorn's worker processes under ``parent`` (multiprocessing spawn children)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"spawn_main" in cmdline:
            found.append(int(entry.name))
    return found


async def test_serve_workers_on_postgres(tmp_path: Path, fresh_postgres_url: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = replica_env(tmp_path, port, fresh_postgres_url, "http://127.0.0.1:9/unused")
    server = start_replica(tmp_path, env, "--workers", "2")
    try:
        await wait_healthy(url, server)
        deadline = time.monotonic() + 30
        while len(worker_pids(server.pid)) < 2:
            assert time.monotonic() < deadline, "two workers did not start"
            await asyncio.sleep(0.1)
        await one_invoice_for_identical_requests(
            [url, url], fresh_postgres_url.replace("postgresql+asyncpg", "postgresql")
        )
    finally:
        stop_replica(server)
    assert server.returncode == 0


def test_serve_workers_refused_on_sqlite(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    result = subprocess.run(
        [sys.executable, "-m", "receiver", "serve", "--workers", "2"],
        env={**env, "RECEIVER_DATA_DIR": str(tmp_path / "data")},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "--workers needs PostgreSQL" in lines[0], result.stderr
    assert not (tmp_path / "data" / "receiver.sqlite3").exists()  # refused before any work
