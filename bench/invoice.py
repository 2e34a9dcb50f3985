"""Minting throughput through HTTP on the fake backend, beside two baselines from the same run.

1. floor: what the bolt11 library itself costs, per core: encode (sign) + decode (verify) of one
   invoice, in a loop. A service that mints and verifies cannot beat it.
2. bare: a bare Starlette endpoint answering canned JSON under the same uvicorn and load.
3. service: `kotani-receiver serve` (SQLite, fake backend), each request a new reference (a real
   mint: sign, verify, lease, store).

Usage: python bench/invoice.py [--requests N] [--concurrency C]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path

import bolt11
import coincurve
from bolt11.models.tags import TagChar, Tags

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import PY, load, start_process, stop_process

TOKEN = "bench-token-0123456789abcdef"


def floor(iterations: int) -> float:
    """bolt11 encode + decode per second on one core."""
    key = coincurve.PrivateKey(os.urandom(32)).secret.hex()
    started = time.perf_counter()
    for i in range(iterations):
        tags = Tags()
        tags.add(TagChar.payment_hash, hashlib.sha256(os.urandom(32)).hexdigest())
        tags.add(TagChar.payment_secret, os.urandom(32).hex())
        tags.add(TagChar.description, f"Kotani Pay refund BENCH-{i}")
        tags.add(TagChar.expire_time, 3600)
        tags.add(TagChar.min_final_cltv_expiry, 18)
        invoice = bolt11.Bolt11(
            currency="bcrt",
            amount_msat=bolt11.MilliSatoshi(1_500_000 + i),
            date=int(time.time()),
            tags=tags,
        )
        bolt11.decode(bolt11.encode(invoice, key))
    return iterations / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=10)
    args = parser.parse_args()

    floor_rate = floor(300)
    print(f"{'bolt11 floor (encode+decode, 1 core)':<34} {floor_rate:9.1f} inv/s")

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        port_bare, port_service = 18431, 18432
        bare = start_process(
            [
                PY,
                "-m",
                "uvicorn",
                "--app-dir",
                str(Path(__file__).parent),
                "bare_app:app",
                "--port",
                str(port_bare),
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            {},
            f"http://127.0.0.1:{port_bare}/healthz",
            root,
        )
        try:
            bare_result = await load(
                "bare starlette (canned JSON)",
                f"http://127.0.0.1:{port_bare}/invoices/x",
                lambda i: {"amount_msat": 1_500_000, "reference_id": f"B-{i}"},
                requests=args.requests,
                concurrency=args.concurrency,
            )
        finally:
            stop_process(bare)

        env = {
            "RECEIVER_DATA_DIR": str(root / "data"),
            "RECEIVER_PORT": str(port_service),
            "RECEIVER_INVOICE_TOKENS": TOKEN,
            "RECEIVER_LOG_LEVEL": "warning",
        }
        service = start_process(
            [PY, "-m", "receiver", "serve"], env, f"http://127.0.0.1:{port_service}/healthz", root
        )
        try:
            service_result = await load(
                "service: mint (fake, SQLite)",
                f"http://127.0.0.1:{port_service}/invoices/{TOKEN}",
                lambda i: {"amount_msat": 1_500_000 + i, "reference_id": f"S-{i}"},
                requests=args.requests,
                concurrency=args.concurrency,
            )
            reuse_result = await load(
                "service: repeat (idempotent reuse)",
                f"http://127.0.0.1:{port_service}/invoices/{TOKEN}",
                lambda i: {"amount_msat": 1_500_000 + (i % 50), "reference_id": f"S-{i % 50}"},
                requests=args.requests,
                concurrency=args.concurrency,
            )
        finally:
            stop_process(service)

    print(bare_result.line())
    print(service_result.line())
    print(reuse_result.line())
    print()
    print(
        f"service mint / bolt11 floor     = {service_result.rate / floor_rate:6.2f}x  (bar >= 0.60)"
    )
    print(f"service mint / bare starlette   = {service_result.rate / bare_result.rate:6.2f}x")
    print(f"concurrency {args.concurrency}, {args.requests} requests each, one worker process")


if __name__ == "__main__":
    asyncio.run(main())
