"""Shared load generator for the benchmarks: N POSTs at concurrency C, latency percentiles."""

from __future__ import annotations

import asyncio
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies: list[float]
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

    def line(self) -> str:
        return (
            f"{self.name:<34} {self.rate:9.1f} req/s   p50 {self.pct(0.50):7.2f} ms   "
            f"p99 {self.pct(0.99):7.2f} ms   max {max(self.latencies) * 1000:8.2f} ms   "
            f"errors {self.errors}"
        )


async def load(
    name: str,
    url: str,
    body: Callable[[int], dict[str, Any]],
    *,
    requests: int,
    concurrency: int,
    expect: int = 200,
    headers: dict[str, str] | None = None,
    warmup: int = 20,
) -> Result:
    latencies: list[float] = []
    errors = 0
    counter = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits, headers=headers) as client:

        async def worker() -> None:
            nonlocal errors
            for i in counter:
                started = time.perf_counter()
                response = await client.post(url, json=body(i))
                latencies.append(time.perf_counter() - started)
                if response.status_code != expect:
                    errors += 1

        # warm-up: connections, caches, first migrations
        for i in range(min(warmup, requests)):
            await client.post(url, json=body(-1 - i))
        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return Result(name, requests, seconds, latencies, errors)


def start_process(
    args: list[str], env: dict[str, str], health: str, cwd: Path
) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        args,
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(health, timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"{args} did not start")


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()


def median(values: list[float]) -> float:
    return statistics.median(values)


PY = sys.executable
