"""Starts the service the way the image does and probes it the way the deployments do.

``python deploy/smoke.py VENV_BIN WORKDIR`` (from .ci/validate-deploy, with the project's .venv):
runs ``deploy/docker/entrypoint.sh`` (``db upgrade``, then ``exec serve``) on a free loopback
port with SQLite in WORKDIR and the fake backend, then checks: the Dockerfile's HEALTHCHECK
command (taken from the Dockerfile) exits 0, the Kubernetes probe paths (taken from
deployment.yaml) answer 200, /metrics exposes every family the alerts and the dashboard use (once
the service serves /metrics), and SIGTERM ends the process with status 0 within
RECEIVER_SHUTDOWN_GRACE. What it cannot show: the image itself (no Docker daemon here).
"""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import yaml
from validate import FAMILIES, free_port  # deploy/ is on sys.path: run as deploy/smoke.py

DEPLOY = Path(__file__).resolve().parent

GRACE = 20


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=3) as response:  # noqa: S310  # loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def main(venv_bin: Path, work: Path) -> int:
    port = free_port()
    env = {
        "PATH": f"{venv_bin}:/usr/bin:/bin",
        "HOME": str(work),
        "TMPDIR": str(work),
        "RECEIVER_HOST": "127.0.0.1",
        "RECEIVER_PORT": str(port),
        "RECEIVER_DATA_DIR": str(work / "data"),
        "RECEIVER_LOG_FORMAT": "json",
        "RECEIVER_SHUTDOWN_GRACE": str(GRACE),
    }
    base = f"http://127.0.0.1:{port}"
    log = open(work / "service.log", "wb")
    server = subprocess.Popen(  # noqa: S603
        ["/bin/sh", str(DEPLOY / "docker" / "entrypoint.sh")], env=env, stdout=log, stderr=log
    )
    failures: list[str] = []

    def expect(what: str, ok: bool) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {what}")
        if not ok:
            failures.append(what)

    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if get(f"{base}/healthz")[0] == 200:
                    break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                print(
                    f"  FAIL the entrypoint did not bring the service up (see {work}/service.log)"
                )
                return 1
            time.sleep(0.2)
        database = work / "data" / "receiver.sqlite3"
        with sqlite3.connect(database) as db:
            versions = db.execute("SELECT version_num FROM alembic_version").fetchall()
        heads = ", ".join(sorted(v for (v,) in versions))
        expect(f"entrypoint: migrated (alembic heads {heads or 'none'}), then serving", bool(heads))

        dockerfile = (DEPLOY / "Dockerfile").read_text()
        match = re.search(r"^\s*CMD (\[.*\])\s*$", dockerfile.split("HEALTHCHECK", 1)[1], re.M)
        assert match, "no HEALTHCHECK CMD in the Dockerfile"
        command = [part.replace(":8000/", f":{port}/") for part in json.loads(match[1])]
        command[0] = str(venv_bin / "python")
        healthcheck = subprocess.run(command, capture_output=True, timeout=10)  # noqa: S603
        expect("the Dockerfile's HEALTHCHECK command passes", healthcheck.returncode == 0)

        deployment = yaml.safe_load((DEPLOY / "kubernetes" / "deployment.yaml").read_text())
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            path = container[probe]["httpGet"]["path"]
            expect(f"Kubernetes {probe} {path} answers 200", get(f"{base}{path}")[0] == 200)

        status, text = get(f"{base}/metrics")
        if status == 404:
            print("  skip /metrics: the service does not serve it yet")
        else:
            # A counter's TYPE line names it with or without "_total" (by client version).
            exposed = {re.sub(r"_total$", "", n) for n in re.findall(r"^# TYPE (\S+)", text, re.M)}
            names = {re.sub(r"_total$", "", n) for n in FAMILIES}
            missing = sorted(n for n in names if n not in exposed)
            expect(
                f"/metrics exposes every family used in deploy/ (missing: {missing or 'none'})",
                status == 200 and not missing,
            )

        started = time.monotonic()
        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=GRACE + 10)
        took = time.monotonic() - started
        # Exit status 0 on SIGTERM comes with the graceful-shutdown work (RECEIVER_SHUTDOWN_GRACE);
        # until receiver/ has it, uvicorn re-raises the signal (-15) and only the time is held.
        strict = any(
            "shutdown_grace" in p.read_text() for p in (DEPLOY.parent / "receiver").rglob("*.py")
        )
        line = f"SIGTERM: exit status {code} in {took:.1f} s (want 0 within {GRACE} s)"
        if strict or code == 0:
            expect(line, code == 0 and took <= GRACE)
        else:
            expect(
                f"{line}; status not yet required: no RECEIVER_SHUTDOWN_GRACE in receiver/",
                took <= GRACE,
            )
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve(), Path(sys.argv[2])))
