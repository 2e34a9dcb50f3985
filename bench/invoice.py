"""Minting throughput through HTTP on the fake backend, beside two baselines from the same run.

1. floor: what the bolt11 library itself costs, per core: encode (sign) + decode (verify) of one
   invoice, in a loop. A service that mints and verifies cannot beat it.
2. bare: a bare Starlette endpoint answering canned JSON under the same uvicorn and load.
3. service: `kotani-receiver serve` (SQLite, fake backend), each request a new reference (a real
   mint: sign, verify, lease, store);
4. the peer: a real LNbits (FakeWallet funding source, `POST /api/v1/payments`), the same load,
   at ``--concurrency`` and at concurrency 1: the P1 bar is the service's mint throughput at
   concurrency 10 at least 3x LNbits' and its p50 at concurrency 1 at most 1/3 of LNbits'.
   Skipped with ``--no-lnbits`` (LNbits lives in its own venv, ``$KOTANI_LNBITS_VENV``).

Usage: python bench/invoice.py [--requests N] [--concurrency C] [--no-lnbits]
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
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _load import PY, Result, load, start_process, stop_process

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
    parser.add_argument("--no-lnbits", action="store_true", help="skip the LNbits peer rows")
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
            serial_result = await load(
                "service: mint, concurrency 1",
                f"http://127.0.0.1:{port_service}/invoices/{TOKEN}",
                lambda i: {"amount_msat": 2_500_000 + i, "reference_id": f"C-{i}"},
                requests=args.requests // 2,
                concurrency=1,
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
        peers = () if args.no_lnbits else await lnbits_peer(root, args.requests, args.concurrency)

    for result in (bare_result, service_result, serial_result, reuse_result, *peers):
        print(result.line())
    print()
    if peers:
        lnbits_load, lnbits_serial = peers
        print(
            f"service mint / lnbits rate      = {service_result.rate / lnbits_load.rate:6.2f}x"
            f"  (bar >= 3, concurrency {args.concurrency})"
        )
        print(
            f"service p50 / lnbits p50        = "
            f"{serial_result.pct(0.5) / lnbits_serial.pct(0.5):6.2f}x  (bar <= 0.33, concurrency 1)"
        )
    print(
        f"service mint / bolt11 floor     = {service_result.rate / floor_rate:6.2f}x  (bar >= 0.60)"
    )
    print(f"service mint / bare starlette   = {service_result.rate / bare_result.rate:6.2f}x")
    print(f"concurrency {args.concurrency}, {args.requests} requests each, one worker process")


async def lnbits_peer(root: Path, requests: int, concurrency: int) -> tuple[Result, Result]:
    """LNbits' own invoice endpoint (FakeWallet) under the same load, then at concurrency 1."""
    from tests.lightning.lnbits_server import LnbitsServer

    lnbits = LnbitsServer(root / "lnbits")
    lnbits.workdir.mkdir()
    account = lnbits.start()
    try:
        url = f"{lnbits.url}/api/v1/payments"
        headers = {"X-Api-Key": account.inkey}

        def body(i: int) -> dict[str, object]:
            return {"out": False, "amount": 1500 + i, "memo": f"Kotani Pay refund L-{i}"}

        loaded = await load(
            "lnbits FakeWallet: create invoice",
            url,
            body,
            requests=requests,
            concurrency=concurrency,
            expect=201,
            headers=headers,
        )
        serial = await load(
            "lnbits FakeWallet, concurrency 1",
            url,
            lambda i: body(10_000 + i),
            requests=requests // 2,
            concurrency=1,
            expect=201,
            headers=headers,
        )
        return loaded, serial
    finally:
        lnbits.stop()


if __name__ == "__main__":
    asyncio.run(main())
