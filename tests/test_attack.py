"""Bogus-signature floods and /readyz probes do not starve Kotani's generate_invoice_url calls.

16 attacker connections post 234 KiB bodies with well-formed but wrong signatures (and 60 KiB
ones, under the body cap) and probe /readyz, for 15 s, against a real `serve` process; a client
with the invoice token meanwhile asks for invoices one after another. Every one must be 200.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx

from tests.support.server import free_port

TOKEN = "attack-test-token-0123456789abcdef"
ATTACK_SECONDS = 15.0
ATTACKER = """
import asyncio, sys, time
import httpx

URL, SECONDS = sys.argv[1], float(sys.argv[2])
BOGUS = {"X-Kotani-Signature": "sha256=" + "ab" * 32, "Content-Type": "application/json"}


def body(size):
    values = ",".join(["0.1"] * (size // 4))
    return ('{"event":"refund.completed","data":{"v":[' + values + ']}}').encode()


BIG, UNDER_CAP = body(234 * 1024), body(60 * 1024)
done = 0


async def attacker(n, stop):
    global done
    async with httpx.AsyncClient(base_url=URL, timeout=10) as a:
        while time.monotonic() < stop:
            try:
                if n % 4 == 0:
                    await a.get("/readyz")
                else:
                    content = BIG if n % 2 else UNDER_CAP
                    await a.post("/webhooks/kotani", content=content, headers=BOGUS)
                done += 1
            except httpx.HTTPError:
                pass


async def main():
    stop = time.monotonic() + SECONDS
    await asyncio.gather(*(attacker(n, stop) for n in range(16)))
    print(done)


asyncio.run(main())
"""


async def test_invoices_stay_fast_under_a_bogus_signature_flood(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(
        RECEIVER_DATA_DIR=str(tmp_path / "data"),
        RECEIVER_PORT=str(port),
        RECEIVER_INVOICE_TOKENS=TOKEN,
        RECEIVER_WEBHOOK_SECRETS="whsec_attack_test_0123456789",
        RECEIVER_LOG_LEVEL="warning",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "receiver", "serve", env=env, cwd=tmp_path,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:
            for _ in range(300):
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
            stop = time.monotonic() + ATTACK_SECONDS
            # The attackers run in a process of their own: the client timing Kotani's calls
            # must not share its event loop (or its core) with 16 flooding connections.
            attack = await asyncio.create_subprocess_exec(
                sys.executable, "-c", ATTACKER, url, str(ATTACK_SECONDS),
                stdout=asyncio.subprocess.PIPE,
            )

            async def kotani() -> list[tuple[int, float]]:
                seen = []
                i = 0
                await asyncio.sleep(1.0)  # the flood is on
                while time.monotonic() < stop:
                    started = time.monotonic()
                    answer = await client.post(
                        f"/invoices/{TOKEN}",
                        json={"amount_msat": 1000 + i, "reference_id": f"ATTACK-{i}"},
                    )
                    seen.append((answer.status_code, time.monotonic() - started))
                    i += 1
                    await asyncio.sleep(0.1)
                return seen

            seen = await kotani()
            out, _ = await asyncio.wait_for(attack.communicate(), 60)
            attacks = int(out.decode().strip() or 0)
    finally:
        proc.send_signal(signal.SIGTERM)
        await asyncio.wait_for(proc.wait(), 30)
    assert attacks > 100
    assert len(seen) >= 20
    assert {status for status, _ in seen} == {200}
    latencies = sorted(t for _, t in seen)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]
    assert p99 < 1.0, f"p99 {p99:.3f} s over {len(seen)} requests"
