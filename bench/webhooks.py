"""Benchmark: durable signed webhook ingest on SQLite, beside a bare Starlette 200 endpoint.

    python bench/webhooks.py [--events 6000] [--connections 32]

Both servers run the same way (uvicorn, one process, ``python -m ...`` in a subprocess) and are
driven by the same small keep-alive HTTP/1.1 client (raw asyncio streams, so the client is not
the bottleneck). The webhook server is the real service (``kotani-receiver serve``): every 2xx
follows the verification (JS-exact rebuild + HMAC) and a durable commit (SQLite WAL,
``synchronous=FULL``); its worker handles the events meanwhile. Each event is distinct (no dedup
shortcut). Prints requests/s for both and the ratio; exits 1 below ``--min-rate``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from receiver.webhooks.signature import sign, signed_bytes

SECRET = "whsec_bench_secret"
BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def hook(request):
    await request.body()
    return JSONResponse({"ok": True})

app = Starlette(routes=[Route("/webhooks/kotani", hook, methods=["POST"]),
                        Route("/healthz", hook, methods=["GET"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, server_header=False)
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def requests_for(count: int, port: int, prefix: str = "BENCH") -> list[bytes]:
    """Distinct, signed offramp status updates (references ``<prefix>-<n>``), as raw HTTP/1.1
    requests."""
    out = []
    for n in range(count):
        data = {
            "referenceId": f"{prefix}-{n}",
            "status": "SUCCESSFUL",
            "onchainStatus": "SUCCESSFUL",
            "fiatAmount": 1000,
            "cryptoAmount": 7.66 + n / 1000,
            "fiatCurrency": "KES",
            "updated_at": "2024-11-22T14:05:00.000Z",
        }
        message = signed_bytes("transaction.offramp.status.updated", data)
        signature = sign(SECRET, message)
        body = message[:-1] + b',"signature":' + json.dumps(signature).encode() + b"}"
        head = (
            f"POST /webhooks/kotani HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nX-Kotani-Signature: {signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


async def drive(port: int, requests: list[bytes], connections: int) -> tuple[float, int]:
    """Send every request over ``connections`` keep-alive connections; (seconds, 2xx count)."""
    queue = list(reversed(requests))
    ok = 0

    async def connection() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while queue:
                writer.write(queue.pop())
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                ok += status_line.split(b" ")[1].startswith(b"2")
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    return time.perf_counter() - started, ok


async def wait_ready(port: int, process: subprocess.Popen[bytes]) -> None:
    for _ in range(400):
        if process.poll() is not None:
            raise SystemExit("a benchmark server exited during start-up")
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        except OSError:
            await asyncio.sleep(0.05)
            continue
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        line = await reader.readline()
        writer.close()
        if b" 200 " in line:
            return
        await asyncio.sleep(0.05)
    raise SystemExit("a benchmark server did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def measure(
    port: int, requests: list[bytes], connections: int, pid: int | None = None
) -> tuple[float, int]:
    """Warm up with the first 500 requests, then time the rest (and print the CPU time of the
    server ``pid``'s threads meanwhile: is it bound by CPU or by waiting?)."""
    asyncio.run(drive(port, requests[:500], connections))
    before = thread_cpu(pid)
    took, ok = asyncio.run(drive(port, requests[500:], connections))
    if pid is not None and ok:
        spent = {name: cpu - before.get(name, 0.0) for name, cpu in thread_cpu(pid).items()}
        busiest = sorted(spent.items(), key=lambda item: -item[1])[:3]
        threads = ", ".join(f"{name} {cpu / took:.0%}" for name, cpu in busiest)
        print(f"server CPU per event {sum(spent.values()) / ok * 1000:.2f} ms; busy: {threads}")
    return took, ok


def thread_cpu(pid: int | None) -> dict[str, float]:
    """CPU seconds (user + system) per thread of ``pid`` (Linux /proc; empty elsewhere)."""
    found: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    for stat in Path(f"/proc/{pid}/task").glob("*/stat") if pid else []:
        with contextlib.suppress(OSError, ValueError, IndexError):
            text = stat.read_text()
            name = text[text.index("(") + 1 : text.rindex(")")] + "/" + stat.parent.name
            fields = text[text.rindex(")") + 2 :].split()
            found[name] = (int(fields[11]) + int(fields[12])) / tick
    return found


def wait_drained(database: Path, limit: float = 120.0) -> tuple[int, int, float]:
    """(stored, handled, seconds) once the worker has handled every stored event."""
    started = time.perf_counter()
    while True:
        with sqlite3.connect(database) as conn:
            stored, done = conn.execute(
                "SELECT count(*), coalesce(sum(status = 'done'), 0) FROM webhook_events"
            ).fetchone()
        if done == stored or time.perf_counter() - started > limit:
            return stored, done, time.perf_counter() - started
        time.sleep(0.2)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--events", type=int, default=6000)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--min-rate", type=float, default=1000.0)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}

    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as tmp:
        bare_port = free_port()
        bare = subprocess.Popen([sys.executable, "-c", BARE_APP, str(bare_port)], env=env)
        try:
            asyncio.run(wait_ready(bare_port, bare))
            bare_requests = requests_for(args.events + 500, bare_port)
            bare_time, bare_ok = measure(bare_port, bare_requests, args.connections)
        finally:
            stop(bare)

        port = free_port()
        service_env = {
            **env,
            "RECEIVER_DATA_DIR": str(Path(tmp) / "data"),
            "RECEIVER_PORT": str(port),
            "RECEIVER_WEBHOOK_SECRETS": SECRET,
            "RECEIVER_INVOICE_TOKENS": "bench-token-0123456789abcdef",
            "RECEIVER_LOG_LEVEL": "warning",
        }
        service = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve"], env=service_env, cwd=tmp
        )
        try:
            asyncio.run(wait_ready(port, service))
            requests = requests_for(args.events + 500, port)
            took, ok = measure(port, requests, args.connections, service.pid)
            stored, done, drain = wait_drained(Path(tmp) / "data" / "receiver.sqlite3")
        finally:
            stop(service)

    bare_rate, rate = bare_ok / bare_time, ok / took
    print(f"connections: {args.connections}, events: {args.events} (after 500 warm-up)")
    print(
        f"bare Starlette 200      {bare_ok:>6} requests {bare_time:6.2f} s {bare_rate:7.0f} req/s"
    )
    print(
        f"signed durable ingest   {ok:>6} events   {took:6.2f} s {rate:7.0f} events/s"
        f"  ({rate / bare_rate:.2f}x of bare)"
    )
    print(f"stored {stored} events, {done} handled; the worker finished {drain:.1f} s later")
    if ok != args.events or bare_ok != args.events:
        print("some requests did not get a 2xx", file=sys.stderr)
        return 1
    return 0 if rate >= args.min_rate else 1


if __name__ == "__main__":
    raise SystemExit(main())
