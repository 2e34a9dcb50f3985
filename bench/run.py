"""Run every benchmark, each figure beside its baseline from the same run; write the README table.

    python bench/run.py [--quick] [--only invoice,backends,webhooks,drain,resources]
                        [--readme README.md] [--png docs/bench.png] [--note TEXT]

Each bench runs as its own process (``python bench/<name>.py`` with the sizes below) and its
printed figures are read back; nothing is measured here. The Markdown table replaces what is
between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in the README, and one PNG of the
latency, throughput and memory figures against their baselines is drawn with matplotlib (the
optional extra ``pip install -e '.[bench]'``; without it the table is still written). A bench
that fails or prints nothing readable gets a row saying so; the others still run. ``--quick``
uses small counts (a smoke run of well under 3 minutes on a quiet box, not figures to quote).
The LNbits bench needs ``KOTANI_LNBITS_VENV`` (see tests/support).
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"


@dataclass
class Row:
    bench: str
    figure: str
    value: float
    baseline_name: str
    baseline: float
    unit: str  # "ms", "/s" or "MB"

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


NUM = r"([\d.]+)"
RESULT = re.compile(
    rf"^(?P<name>\S.*?)\s+{NUM} req/s\s+p50\s+{NUM} ms\s+p99\s+{NUM} ms\s+max\s+{NUM} ms", re.M
)


def results(out: str) -> dict[str, tuple[float, float, float, float]]:
    """The load generator's lines (bench/_load.py): name -> (rate, p50, p99, max)."""
    return {
        m["name"].strip(): (float(m[2]), float(m[3]), float(m[4]), float(m[5]))
        for m in RESULT.finditer(out)
    }


def find(pattern: str, out: str) -> float:
    match = re.search(pattern, out, re.M)
    if match is None:
        raise ValueError(f"no line matching {pattern!r}")
    return float(match[1])


def parse_invoice(out: str) -> list[Row]:
    got = results(out)
    floor = find(rf"bolt11 floor.*?{NUM} inv/s", out)
    bare, mint = got["bare starlette (canned JSON)"], got["service: mint (fake, SQLite)"]
    reuse = got["service: repeat (idempotent reuse)"]
    peers = []
    if "lnbits FakeWallet: create invoice" in got:  # P1, unless run with --no-lnbits
        lnbits, lnbits_1 = (
            got["lnbits FakeWallet: create invoice"],
            got["lnbits FakeWallet, concurrency 1"],
        )
        serial = got["service: mint, concurrency 1"]
        peers = [
            Row("invoice", "mint rate (P1)", mint[0], "LNbits FakeWallet", lnbits[0], "/s"),
            Row(
                "invoice",
                "mint p50, concurrency 1 (P1)",
                serial[1],
                "LNbits FakeWallet p50",
                lnbits_1[1],
                "ms",
            ),
        ]
    return [
        *peers,
        Row("invoice", "mint (fake, SQLite) rate", mint[0], "bolt11 floor", floor, "/s"),
        Row("invoice", "mint (fake, SQLite) rate", mint[0], "bare Starlette", bare[0], "/s"),
        Row("invoice", "mint p50", mint[1], "bare Starlette p50", bare[1], "ms"),
        Row("invoice", "repeat (reuse) rate", reuse[0], "bare Starlette", bare[0], "/s"),
    ]


def parse_backends(out: str) -> list[Row]:
    got = results(out)
    direct, via = got["lnbits direct (alternating)"], got["service via lnbits (alternating)"]
    hung, down = got["hung primary -> lnbits"], got["all backends down -> 503"]
    bare = got.get("bare proxy to lnbits (alternating)")
    floor = (
        [Row("backends", "bare proxy p50", bare[1], "LNbits direct p50", direct[1], "ms")]
        if bare
        else []
    )
    return [
        Row("backends", "service via LNbits p50", via[1], "LNbits direct p50", direct[1], "ms"),
        *floor,
        Row("backends", "service via LNbits p99", via[2], "LNbits direct p99", direct[2], "ms"),
        Row("backends", "hung primary p50", hung[1], "LNbits direct p50", direct[1], "ms"),
        Row("backends", "hung primary max", hung[3], "LNbits direct max", direct[3], "ms"),
        Row("backends", "all down (503) p50", down[1], "LNbits direct p50", direct[1], "ms"),
    ]


def parse_webhooks(out: str) -> list[Row]:
    bare = find(rf"^bare Starlette 200 .*?{NUM} req/s", out)
    ingest = find(rf"^signed durable ingest .*?{NUM} events/s", out)
    return [Row("webhooks", "signed durable ingest", ingest, "bare Starlette 200", bare, "/s")]


def parse_drain(out: str) -> list[Row]:
    line = re.compile(rf"^(?P<name>\S.*?)\s+ingest\s+{NUM}/s .*?forwarded\s+\d+\s+{NUM}/s", re.M)
    rows = [
        Row(
            "drain",
            f"{m['name'].strip()} end to end",
            float(m[3]),
            "its own ingest",
            float(m[2]),
            "/s",
        )
        for m in line.finditer(out)
    ]
    if not rows:
        raise ValueError("no setup line")
    return rows


def parse_resources(out: str) -> list[Row]:
    line = r"^{}\s+{}\s+ms\s+{}\s+MB"
    bare = re.search(line.format(r"bare uvicorn \+ Starlette", NUM, NUM), out, re.M)
    starts = {
        kind: re.search(line.format(rf"kotani-receiver serve, {kind}", NUM, NUM), out, re.M)
        for kind in ("fresh", "restart")
    }
    if bare is None or None in starts.values():
        raise ValueError("no start-up lines")
    rows = []
    for column, figure, unit in ((1, "start to ready", "ms"), (2, "idle RSS", "MB")):
        for kind, found in starts.items():
            assert found is not None
            rows.append(
                Row(
                    "resources",
                    f"serve ({kind}): {figure}",
                    float(found[column]),
                    "bare uvicorn",
                    float(bare[column]),
                    unit,
                )
            )
    return rows


# name -> (full-run arguments, --quick arguments, reader of its output)
BENCHES: dict[str, tuple[list[str], list[str], Callable[[str], list[Row]]]] = {
    "invoice": ([], ["--requests", "60", "--concurrency", "5"], parse_invoice),
    "backends": (
        [],
        ["--requests", "40", "--warmup", "10", "--failover-requests", "20"],
        parse_backends,
    ),
    "webhooks": (["--min-rate", "0"], ["--events", "200", "--min-rate", "0"], parse_webhooks),
    "drain": ([], ["--events", "200", "--only", "sqlite", "--limit", "60"], parse_drain),
    "resources": ([], ["--runs", "1", "--idle", "0.5"], parse_resources),
}


def run_bench(name: str, quick: bool, timeout: float) -> tuple[list[Row], str | None]:
    full, small, reader = BENCHES[name]
    command = [sys.executable, str(HERE / f"{name}.py"), *(small if quick else full)]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    started = time.monotonic()
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return [], f"did not finish in {timeout:.0f} s"
    sys.stdout.write(proc.stdout)
    took = time.monotonic() - started
    try:
        rows = reader(proc.stdout)
    except (KeyError, ValueError) as exc:
        tail = proc.stderr.strip().splitlines()[-3:]
        return [], f"exit {proc.returncode}, output not readable ({exc}): {' | '.join(tail)}"
    note = None if proc.returncode == 0 else f"exit {proc.returncode} (see its output)"
    print(f"   {name}: {len(rows)} figures in {took:.0f} s", flush=True)
    return rows, note


def fmt(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.1f}/s" if value < 100 else f"{value:,.0f}/s"
    return f"{value:,.1f} {unit}" if value < 1000 else f"{value:,.0f} {unit}"


def table(rows: list[Row], failures: dict[str, str], heading: str, png: str | None) -> str:
    lines = [
        heading,
        "",
        "| bench | figure | value | baseline (same run) | value / baseline |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r.bench} | {r.figure} | {fmt(r.value, r.unit)} | {r.baseline_name}: "
            f"{fmt(r.baseline, r.unit)} | {r.ratio:.2f}x |"
        )
    for name, why in failures.items():
        lines.append(f"| {name} | not measured: {why.replace('|', '/')} | | | |")
    if png:
        lines += ["", f"![Figures against their same-run baselines]({png})"]
    return "\n".join(lines)


def write_readme(readme: Path, block: str) -> None:
    text = readme.read_text()
    start, end = text.find(BEGIN), text.find(END)
    if start < 0 or end < start:
        raise SystemExit(f"{readme}: markers {BEGIN} ... {END} not found")
    readme.write_text(text[: start + len(BEGIN)] + "\n" + block + "\n" + text[end:])


def plot(rows: list[Row], path: Path, title: str) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): table written, no PNG")
        return False
    panels = [(u, [r for r in rows if r.unit == u]) for u in ("ms", "/s", "MB")]
    panels = [(u, rs) for u, rs in panels if rs]
    if not panels:
        return False
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(9, 1.2 + 0.55 * len(rows) + 0.6 * len(panels)), squeeze=False
    )
    labels = {"ms": "latency (ms)", "/s": "throughput (per second)", "MB": "memory (MB)"}
    for ax, (unit, rs) in zip(axes[:, 0], panels, strict=True):
        ys = range(len(rs))
        ax.barh([y + 0.2 for y in ys], [r.value for r in rs], 0.4, label="this service")
        ax.barh([y - 0.2 for y in ys], [r.baseline for r in rs], 0.4, label="baseline")
        ax.set_yticks(
            list(ys), [f"{r.bench}: {r.figure}\nvs {r.baseline_name}" for r in rs], fontsize=7
        )
        ax.invert_yaxis()
        ax.set_xlabel(labels[unit])
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--only", default=",".join(BENCHES), help="benches to run, comma-separated")
    parser.add_argument("--quick", action="store_true", help="small counts: a smoke run")
    parser.add_argument("--readme", type=Path, default=HERE.parent / "README.md")
    parser.add_argument("--png", type=Path, default=HERE.parent / "docs" / "bench.png")
    parser.add_argument("--timeout", type=float, default=None, help="seconds per bench")
    parser.add_argument("--note", default="", help="a sentence for the table's heading")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(BENCHES)
    if unknown:
        parser.error(f"unknown benches: {', '.join(sorted(unknown))}; known: {', '.join(BENCHES)}")
    timeout = args.timeout or (300.0 if args.quick else 3600.0)

    rows: list[Row] = []
    failures: dict[str, str] = {}
    for name in names:
        got, note = run_bench(name, args.quick, timeout)
        rows += got
        if note:
            failures[name] = note
            print(f"   {name}: {note}", flush=True)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    kind = "quick smoke run (small counts, not figures to quote)" if args.quick else "full run"
    heading = (
        f"Generated by `python bench/run.py{' --quick' if args.quick else ''}` on {stamp}, "
        f"{kind}, {os.cpu_count()} CPUs, load average {load:.1f} at the end."
    )
    if args.note:
        heading += " " + args.note
    print()
    for r in rows:
        print(
            f"{r.bench:<10} {r.figure:<34} {fmt(r.value, r.unit):>12}   {r.baseline_name:<22}"
            f" {fmt(r.baseline, r.unit):>12}   {r.ratio:6.2f}x"
        )
    drawn = plot(rows, args.png, f"kotani-receiver benchmarks, {stamp}, {kind}")
    link = None
    if drawn or args.png.exists():
        link = os.path.relpath(args.png.resolve(), args.readme.resolve().parent)
    write_readme(args.readme, table(rows, failures, heading, link))
    print(f"table written to {args.readme}" + (f", plot to {args.png}" if drawn else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
