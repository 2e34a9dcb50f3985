"""Idle memory and start-up time of `kotani-receiver serve`, beside a bare uvicorn + Starlette.

For each of ``--runs`` fresh starts (new data directory: migrations included), measures:
- start to ready: from spawning the process to the first 200 of ``/readyz`` (the service) or
  ``/healthz`` (the bare app), polled every 5 ms;
- idle RSS: ``VmRSS`` of the server process after ``--idle`` seconds with no traffic.
Prints the medians of both, then the import cost: the modules the service has loaded at idle
that the bare app has not, the 15 biggest top-level packages by module count.

    python bench/resources.py [--runs 5] [--idle 2]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _load import PY

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789abcdef0123456789"


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def one_start(kind: str, idle: float, dump: Path | None) -> tuple[float, float]:
    port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-res-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(RECEIVER_DATA_DIR=str(data), RECEIVER_INVOICE_TOKENS=TOKEN,
               RECEIVER_LOG_LEVEL="warning")
    if kind == "service":
        args = [PY, "-m", "receiver", "serve", "--port", str(port)]
        ready = f"http://127.0.0.1:{port}/readyz"
    else:
        args = [PY, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), "bare_app:app",
                "--port", str(port), "--log-level", "warning"]
        ready = f"http://127.0.0.1:{port}/healthz"
    if dump is not None:  # the same command under a wrapper that lists sys.modules at exit
        env["DUMP_MODULES"] = str(dump)
        args = [PY, str(ROOT / "bench" / "_dump_modules.py"), *args[2:]]
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=data, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        with httpx.Client(timeout=1) as client:
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"{kind} exited during start")
                try:
                    if client.get(ready).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.perf_counter() - started > 30:
                    raise SystemExit(f"{kind} not ready after 30 s")
                time.sleep(0.005)
        to_ready = time.perf_counter() - started
        time.sleep(idle)
        return to_ready, rss_mb(proc.pid)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def top_packages(names: set[str], n: int = 15) -> list[tuple[str, int]]:
    return Counter(name.split(".")[0] for name in names).most_common(n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=2.0)
    args = parser.parse_args()
    figures: dict[str, list[tuple[float, float]]] = {"bare": [], "service": []}
    for _ in range(args.runs):
        for kind in ("bare", "service"):
            figures[kind].append(one_start(kind, args.idle, None))
    print(f"{'':<34} {'start to ready':>15} {'idle RSS':>10}")
    for kind, label in (("bare", "bare uvicorn + Starlette"), ("service", "kotani-receiver serve")):
        ready = statistics.median(r for r, _ in figures[kind])
        rss = statistics.median(m for _, m in figures[kind])
        print(f"{label:<34} {ready * 1000:12.0f} ms {rss:8.1f} MB")
    dumps = {}
    for kind in ("bare", "service"):
        path = Path(tempfile.mkdtemp()) / "modules.txt"
        one_start(kind, 0.2, path)
        dumps[kind] = set(path.read_text().split()) if path.exists() else set()
    extra = dumps["service"] - dumps["bare"]
    print(f"\nmodules loaded at idle: bare {len(dumps['bare'])}, service {len(dumps['service'])}"
          f" ({len(extra)} more); the service's extra modules by top-level package:")
    for package, count in top_packages(extra):
        print(f"  {package:<24} {count:5d}")


if __name__ == "__main__":
    main()
