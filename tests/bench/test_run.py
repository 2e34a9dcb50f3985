"""bench/run.py end to end: a quick run of the cheap benches rewrites the README's table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_quick_run_replaces_the_table_between_the_markers(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n\nbefore\n<!-- bench:begin -->\nOLD TABLE\n<!-- bench:end -->\nafter\n"
    )
    png = tmp_path / "docs" / "bench.png"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--only", "resources",
         "--readme", str(readme), "--png", str(png)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    text = readme.read_text()
    assert "OLD TABLE" not in text
    assert text.startswith("# x\n\nbefore\n<!-- bench:begin -->\n")
    assert text.endswith("<!-- bench:end -->\nafter\n")
    block = text.split("<!-- bench:begin -->")[1].split("<!-- bench:end -->")[0]
    assert "quick smoke run" in block
    rows = [line for line in block.splitlines() if line.startswith("| resources |")]
    assert [r.split(" | ")[1] for r in rows] == [
        "serve (fresh): start to ready",
        "serve (restart): start to ready",
        "serve (fresh): idle RSS",
        "serve (restart): idle RSS",
    ]
    assert all("bare uvicorn: " in r and r.endswith("x |") for r in rows)
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        pytest.skip("matplotlib not installed (the bench extra): table checked, no PNG")
    assert png.read_bytes().startswith(b"\x89PNG")
    assert "](docs/bench.png)" in block


def test_unknown_bench_is_refused(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--only", "nope",
         "--readme", str(tmp_path / "R.md")],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 2
    assert "unknown benches: nope" in proc.stderr
