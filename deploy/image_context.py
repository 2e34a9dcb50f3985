"""What `docker build -f deploy/Dockerfile .` would see and build, without a Docker daemon.

``python deploy/image_context.py WORKDIR``: copies the repository as ../.dockerignore filters it
(an allow-list: ``*``, then ``!path`` entries, then ``**/`` exclusions) into WORKDIR/context,
checks that every ``COPY`` source of the Dockerfile is in it and that no secret-bearing path
(.env, var/, venvs, .git) is, then builds the wheel there as the builder stage does
(``pip wheel --no-deps .``) and checks it carries what ``db upgrade`` and ``serve`` load from an
installed (not editable) package: the migrations and the console script.
"""

from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FORBIDDEN = (".env", "var", ".venv", ".venv-deploy", ".git")


def allowed(rel: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last matching pattern decides (``!`` re-includes)."""
    keep = True
    for include, pattern in rules:
        pattern = pattern.rstrip("/")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in rel.split("/"))
        else:
            hit = fnmatch.fnmatch(rel, pattern) or rel.startswith(pattern + "/")
        if hit:
            keep = include
    return keep


def main(work: Path) -> int:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    rules = [
        (line.startswith("!"), line.lstrip("!"))
        for line in (raw.strip() for raw in lines)
        if line and not line.startswith("#")
    ]
    context = work / "context"
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT).as_posix()
        if path.is_file() and not rel.startswith((".git/", ".venv")) and allowed(rel, rules):
            target = context / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, target)
    problems: list[str] = []
    dockerfile = (ROOT / "deploy" / "Dockerfile").read_text()
    for match in re.finditer(r"^COPY (?!--from)(.+)$", dockerfile, re.M):
        for source in match[1].split()[:-1]:
            if not (context / source).exists():
                problems.append(f"COPY {source}: not in the build context (.dockerignore)")
    for name in FORBIDDEN:
        if (context / name).exists():
            problems.append(f"{name} would be sent to the build context")
    wheels = work / "wheels"
    build = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(wheels), "."],
        cwd=context,
        capture_output=True,
        text=True,
    )
    if build.returncode:
        problems.append(f"pip wheel failed in the build context:\n{build.stderr}")
    else:
        (wheel,) = wheels.glob("*.whl")
        names = zipfile.ZipFile(wheel).namelist()
        wanted = {
            "migrations env": r"^receiver/db/migrations/env\.py$",
            "migration versions": r"^receiver/db/migrations/versions/0001_.*\.py$",
            "console script": r"\.dist-info/entry_points\.txt$",
        }
        problems += [
            f"the wheel has no {what}"
            for what, pattern in wanted.items()
            if not any(re.search(pattern, n) for n in names)
        ]
    for p in problems:
        print(f"FAIL {p}")
    if not problems:
        files = sum(1 for p in context.rglob("*") if p.is_file())
        print(f"context: {files} files; wheel {wheel.name}: {len(names)} entries")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
