"""The service in front of a real LNbits, against LNbits alone, in one run; and failover latency.

1. lnbits direct: ``POST /api/v1/payments`` on a real LNbits (FakeWallet funding source), the
   floor for anything minting through it;
2. service via lnbits: ``kotani-receiver serve`` with ``RECEIVER_BACKENDS=lnbits``, each request a
   new reference (HTTP in, LNbits call, bolt11 decode and checks, lease and store);
3. hung primary: ``RECEIVER_BACKENDS=lnd,lnbits`` where the LND node accepts connections and never
   answers: every request must still get a verified invoice from LNbits within the deadline (the
   breaker then skips the hung node);
4. all down: the same hung LND and an LNbits URL nobody listens on: 503 within the deadline.

LNbits is installed and started as in the test suite (``tests/lightning/lnbits_server.py``).
Usage: python bench/backends.py [--requests N] [--warmup N] [--concurrency C]

Bar: the service's p50 at most 5 ms over LNbits' own p50, in the same run (concurrency 1; every
backend call goes through httpx, ``receiver/outbound.py``). 3,000 pairs by default: each p50 of
1,500 requests moved by about ±0.3 ms from run to run on this project's benchmark machine; the
difference is also printed per third of the run, to show how much of it is noise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))
from _load import PY, Result, load, median, start_process, stop_process  # noqa: E402

from tests.lightning.lnbits_server import LnbitsServer  # noqa: E402
from tests.lightning.lnd_double import MACAROON, LndDouble  # noqa: E402
from tests.support.server import free_port  # noqa: E402

TOKEN = "bench-token-0123456789abcdef"


def direct_body(sats: int, reference: str) -> dict[str, Any]:
    """What the service's lnbits backend sends for the same invoice (memo and expiry included)."""
    return {
        "out": False,
        "amount": sats,
        "memo": f"Kotani Pay refund {reference}",
        "expiry": 3600,
    }


DEADLINE = 8.0


async def paired(
    lnbits_url: str,
    key: str,
    service_url: str,
    requests: int,
    concurrency: int,
    sats: int,
    warmup: int,
    proxy_url: str | None = None,
) -> tuple[Result, Result, Result | None]:
    """LNbits direct and the service via LNbits under the same conditions (and, at concurrency
    1 with ``proxy_url``, the bare proxy: ``bench/proxy_app.py``).

    At concurrency 1 they alternate request by request, so drift in the machine's load (other
    processes, LNbits' growing database) affects all alike; above 1, one load after the other.
    """
    if concurrency > 1:
        direct = await load(
            "lnbits direct (POST /api/v1/payments)",
            f"{lnbits_url}/api/v1/payments",
            lambda i: direct_body(sats + i, f"D-{i}"),
            headers={"X-Api-Key": key},
            requests=requests,
            concurrency=concurrency,
            expect=201,
            warmup=warmup,
        )
        via = await load(
            "service via lnbits (new reference)",
            service_url,
            lambda i: {"amount_msat": (sats + i) * 1000, "reference_id": f"S-{i}"},
            requests=requests,
            concurrency=concurrency,
            warmup=warmup,
        )
        return direct, via, None
    timings: dict[str, list[float]] = {"direct": [], "via": [], "proxy": []}
    errors = {"direct": 0, "via": 0, "proxy": 0}
    async with (
        httpx.AsyncClient(timeout=30, headers={"X-Api-Key": key}) as lnbits_client,
        httpx.AsyncClient(timeout=30) as service_client,
    ):

        async def direct_call(i: int) -> int:
            body = direct_body(sats + i, f"D-{i}")
            response = await lnbits_client.post(f"{lnbits_url}/api/v1/payments", json=body)
            return 0 if response.status_code == 201 else 1

        async def via_call(i: int) -> int:
            body = {"amount_msat": (sats + i) * 1000, "reference_id": f"S-{i}"}
            response = await service_client.post(service_url, json=body)
            return 0 if response.status_code == 200 else 1

        async def proxy_call(i: int) -> int:
            body = {"amount_msat": (sats + i) * 1000, "reference_id": f"P-{i}"}
            response = await service_client.post(f"{proxy_url}/invoices/x", json=body)
            return 0 if response.status_code == 200 else 1

        legs = [("direct", direct_call), ("via", via_call)]
        if proxy_url is not None:
            legs.append(("proxy", proxy_call))

        # Warm-up, alike for both: connections, caches, and the service's SQLite WAL grown to
        # the size a running service has (a commit then overwrites WAL pages instead of growing
        # the file: fdatasync 0.27 ms instead of 0.47 ms on this machine's disk).
        for i in range(warmup):
            for _, call in legs:
                await call(-1 - i)
        for i in range(requests):
            for name, call in legs:
                t0 = time.perf_counter()
                errors[name] += await call(i)
                timings[name].append(time.perf_counter() - t0)

    # Each side's rate is over its own time (they never overlap).
    def result(name: str, label: str) -> Result:
        return Result(label, requests, sum(timings[name]), timings[name], errors[name])

    return (
        result("direct", "lnbits direct (alternating)"),
        result("via", "service via lnbits (alternating)"),
        result("proxy", "bare proxy to lnbits (alternating)") if proxy_url else None,
    )


def service_env(root: Path, port: int, **extra: str) -> dict[str, str]:
    return {
        "RECEIVER_DATA_DIR": str(root / f"data-{port}"),
        "RECEIVER_PORT": str(port),
        "RECEIVER_INVOICE_TOKENS": TOKEN,
        "RECEIVER_LOG_LEVEL": "error",
        "RECEIVER_NETWORK": "bitcoin",
        "RECEIVER_DEADLINE": str(DEADLINE),
        **extra,
    }


async def run_service(root: Path, env: dict[str, str], port: int, job: Callable[[str], Any]) -> Any:
    service = start_process(
        [PY, "-m", "receiver", "serve"], env, f"http://127.0.0.1:{port}/healthz", root
    )
    try:
        return await job(f"http://127.0.0.1:{port}/invoices/{TOKEN}")
    finally:
        stop_process(service)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--failover-requests", type=int, default=200)
    parser.add_argument("--failover-concurrency", type=int, default=10)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        lnbits = LnbitsServer(root / "lnbits")
        lnbits.workdir.mkdir()
        account = lnbits.start()
        try:
            sats = 1500

            backend_env = {
                "RECEIVER_LNBITS_URL": lnbits.url,
                "RECEIVER_LNBITS_KEY": account.inkey,
            }
            proxy_port = free_port()
            proxy = start_process(
                [
                    *(PY, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent)),
                    *("proxy_app:app", "--port", str(proxy_port), "--no-access-log"),
                    *("--log-level", "warning"),
                ],
                {"PROXY_LNBITS_URL": lnbits.url, "PROXY_LNBITS_KEY": account.inkey},
                f"http://127.0.0.1:{proxy_port}/healthz",
                root,
            )
            port = free_port()
            try:
                direct, via, bare = await run_service(
                    root,
                    service_env(root, port, RECEIVER_BACKENDS="lnbits", **backend_env),
                    port,
                    lambda url: paired(
                        lnbits.url,
                        account.inkey,
                        url,
                        args.requests,
                        args.concurrency,
                        sats,
                        args.warmup,
                        proxy_url=f"http://127.0.0.1:{proxy_port}",
                    ),
                )
            finally:
                stop_process(proxy)

            async with LndDouble("hang").running() as hung:
                lnd_env = {"RECEIVER_LND_URL": hung.url, "RECEIVER_LND_MACAROON": MACAROON}
                port = free_port()
                failover = await run_service(
                    root,
                    service_env(
                        root, port, RECEIVER_BACKENDS="lnd,lnbits", **lnd_env, **backend_env
                    ),
                    port,
                    lambda url: load(
                        "hung primary -> lnbits",
                        url,
                        lambda i: {"amount_msat": (sats + i) * 1000, "reference_id": f"F-{i}"},
                        requests=args.failover_requests,
                        concurrency=args.failover_concurrency,
                        warmup=0,
                    ),
                )
                port = free_port()
                down_env = {**backend_env, "RECEIVER_LNBITS_URL": f"http://127.0.0.1:{free_port()}"}
                all_down = await run_service(
                    root,
                    service_env(root, port, RECEIVER_BACKENDS="lnd,lnbits", **lnd_env, **down_env),
                    port,
                    lambda url: load(
                        "all backends down -> 503",
                        url,
                        lambda i: {"amount_msat": (sats + i) * 1000, "reference_id": f"X-{i}"},
                        requests=args.failover_requests,
                        concurrency=args.failover_concurrency,
                        expect=503,
                        warmup=0,
                    ),
                )
                hung_calls = hung.calls
        finally:
            lnbits.stop()

    for result in (direct, via, *([bare] if bare else []), failover, all_down):
        print(result.line())
    print()
    overhead = via.pct(0.50) - direct.pct(0.50)
    print(
        f"service p50 - lnbits p50          = {overhead:+6.2f} ms  (bar <= 5 ms), "
        f"concurrency {args.concurrency}, {args.requests} requests each"
    )
    if bare is not None:
        floor = bare.pct(0.50) - direct.pct(0.50)
        print(
            f"bare proxy p50 - lnbits p50       = {floor:+6.2f} ms  (the floor: one HTTP hop, "
            f"no checks, no record); service - bare proxy = {overhead - floor:+6.2f} ms"
        )
    if args.concurrency == 1:
        # The same difference over each third of the run: how much of it is noise.
        thirds = []
        for part in range(3):
            cut = slice(part * args.requests // 3, (part + 1) * args.requests // 3)
            thirds.append(median(via.latencies[cut]) - median(direct.latencies[cut]))
        print("  by thirds of the run: " + ", ".join(f"{d * 1000:+.2f} ms" for d in thirds))
    print(
        f"hung primary: max {max(failover.latencies):5.2f} s, {failover.errors} errors of "
        f"{failover.requests} (bar: all verified, < 9 s); the hung node was asked {hung_calls} "
        f"times (breaker)"
    )
    print(
        f"all down: max {max(all_down.latencies):5.2f} s, {all_down.errors} answers other than "
        f"503 of {all_down.requests} (bar: 503 < 9 s)"
    )


if __name__ == "__main__":
    asyncio.run(main())
