"""Idle memory and start-up time of `kotani-receiver serve`, beside a bare uvicorn + Starlette.

Each of ``--runs`` rounds starts, one after another:
- the bare app (``bench/bare_app.py`` under ``python -m uvicorn``), the baseline;
- the floor: the bare app after importing the third-party packages the service has loaded at
  idle (``bench/libs_app.py``: SQLAlchemy, pydantic-settings, httpx, structlog...), none of the
  service's own code;
- the service on a new data directory (**fresh**: SQLite file created, every migration applied,
  invoice token and fake node key written), with the embedded defaults (SQLite, fake backend);
- the service again on that same data directory (**restart**: the database already at head).

For each start it measures:
- start to ready: from spawning the process to the first 200 of ``/readyz`` (the service) or
  ``/healthz`` (the bare app), polled every 5 ms;
- idle RSS: ``VmRSS`` of the server process after ``--idle`` seconds with no traffic.

Prints the medians of both, the load average before and after, then the import cost: the
modules the service has loaded at idle (restart) that the bare app has not, the 15 biggest
top-level packages by module count.

Bytecode: the children may write ``__pycache__`` (``PYTHONDONTWRITEBYTECODE`` is dropped from
their environment) and one unmeasured start of each kind comes first, so every measured start
reads compiled bytecode from a warm page cache, as an installed package does.

Run it with the interpreter of the install to measure: the test venv has packages (rich,
pygments) that the service's libraries load when present; it says so when they are.

    python bench/resources.py [--runs 5] [--idle 2]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
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
EXTRAS = ("rich", "pygments")
"""Not dependencies of the service; schemathesis and pytest bring them into the test venv."""
KINDS = ("bare", "libs", "fresh", "restart")
LABELS = {
    "bare": "bare uvicorn + Starlette",
    "libs": "bare + the service's libraries",
    "fresh": "kotani-receiver serve, fresh",
    "restart": "kotani-receiver serve, restart",
}


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


def one_start(kind: str, data: Path, idle: float, dump: Path | None) -> tuple[float, float]:
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("RECEIVER_") and k != "PYTHONDONTWRITEBYTECODE"
    }
    env.update(RECEIVER_DATA_DIR=str(data), RECEIVER_INVOICE_TOKENS=TOKEN,
               RECEIVER_LOG_LEVEL="warning")
    if kind in ("bare", "libs"):
        args = [PY, "-m", "uvicorn", "--app-dir", str(ROOT / "bench"), f"{kind}_app:app",
                "--port", str(port), "--log-level", "warning"]
        ready = f"http://127.0.0.1:{port}/healthz"
    else:
        args = [PY, "-m", "receiver", "serve", "--port", str(port)]
        ready = f"http://127.0.0.1:{port}/readyz"
    if dump is not None:  # the same command under a wrapper that lists sys.modules at exit
        env["DUMP_MODULES"] = str(dump)
        args = [PY, str(ROOT / "bench" / "_dump_modules.py"), *args[2:]]
    errors = tempfile.TemporaryFile()
    started = time.perf_counter()
    proc = subprocess.Popen(args, env=env, cwd=data, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        with httpx.Client(timeout=1) as client:
            while True:
                if proc.poll() is not None:
                    errors.seek(0)
                    said = errors.read().decode(errors="replace")[-2000:]
                    raise SystemExit(f"{kind} exited during start (status {proc.returncode}):"
                                     f"\n{said}")
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
        errors.close()


def one_round(idle: float, dumps: dict[str, Path] | None = None) -> dict[str, tuple[float, float]]:
    """Each kind once; ``dumps``: where each writes its module list."""
    out = {}
    data = Path(tempfile.mkdtemp(prefix="bench-res-"))
    try:
        for kind in KINDS:
            dump = dumps[kind] if dumps is not None else None
            out[kind] = one_start(kind, data, idle, dump)  # fresh creates what restart reuses
    finally:
        shutil.rmtree(data, ignore_errors=True)
    return out


def top_packages(names: set[str], n: int = 15) -> list[tuple[str, int]]:
    return Counter(name.split(".")[0] for name in names).most_common(n)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--idle", type=float, default=2.0)
    args = parser.parse_args()
    before = load()
    one_round(0.0)  # warm-up, not counted: bytecode written, files in the page cache
    figures: dict[str, list[tuple[float, float]]] = {kind: [] for kind in KINDS}
    for _ in range(args.runs):
        for kind, figure in one_round(args.idle).items():
            figures[kind].append(figure)
    after = load()
    print(f"{os.cpu_count()} CPUs, load average (1/5/15 min) {before} before, {after} after; "
          f"medians of {args.runs} runs")
    extras = [name for name in EXTRAS if importlib.util.find_spec(name) is not None]
    if extras:
        print(f"note: {', '.join(extras)} installed (the test extras): `import httpx` loads its"
              " command-line client's modules with them, in every process here, the floor too;"
              " a production install (`pip install .`) has neither")
    print(f"{'':<34} {'start to ready':>15} {'idle RSS':>10}")
    for kind in KINDS:
        ready = statistics.median(r for r, _ in figures[kind])
        rss = statistics.median(m for _, m in figures[kind])
        print(f"{LABELS[kind]:<34} {ready * 1000:12.0f} ms {rss:8.1f} MB")
    folder = Path(tempfile.mkdtemp())
    paths = {kind: folder / f"{kind}.txt" for kind in KINDS}
    one_round(0.2, paths)
    modules = {k: set(p.read_text().split()) if p.exists() else set() for k, p in paths.items()}
    shutil.rmtree(folder, ignore_errors=True)
    extra = modules["restart"] - modules["bare"]
    print(f"\nmodules loaded at idle: bare {len(modules['bare'])}, fresh {len(modules['fresh'])},"
          f" restart {len(modules['restart'])} ({len(extra)} more than bare); the restart's"
          " extra modules by top-level package:")
    for package, count in top_packages(extra):
        print(f"  {package:<24} {count:5d}")
    only_fresh = modules["fresh"] - modules["restart"]
    print(f"loaded by the fresh start only: {len(only_fresh)} modules, "
          + ", ".join(f"{p} {c}" for p, c in top_packages(only_fresh, 6)))


if __name__ == "__main__":
    main()
