"""`serve` loads what its configuration uses, and no more (issue 14: idle RSS and start time).

Each test runs the real `kotani-receiver serve` in a process that writes, at exit, the modules
it had imported: Alembic only on the start that migrates, Apprise only with alert URLs, Jinja2
only once a console page or /docs is shown, never the bolt11 package (the fake node writes its
invoices with ``receiver.bolt11_reader.write``), and the Kotani client's connection pool only
once it calls Kotani.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from receiver.kotani.client import KotaniClient
from tests.support.server import free_port

TOKEN = "lazy-imports-token-0123456789abcdef"
KEY = "console-key-0123456789abcdef0123456789"
# Run the CLI as `python -m receiver` does, and list sys.modules when it exits.
WRAPPER = """
import atexit, os, runpy, sys
atexit.register(lambda: open(os.environ["MODULES_OUT"], "w").write("\\n".join(sys.modules)))
sys.argv = ["receiver", *sys.argv[1:]]
runpy.run_module("receiver", run_name="__main__", alter_sys=True)
"""
ON_DEMAND = {
    "alembic": "migrations",
    "mako": "migrations (Alembic's templates)",
    "apprise": "alerts",
    "jinja2": "console pages and /docs",
    "qrcode": "console pages",
    "bolt11": "nothing: the fake node writes invoices with bolt11_reader.write",
    "websockets": "WebSocket routes (there are none)",
    "httpcore": "outbound HTTP (none with the fake backend and no Kotani key)",
}


def serve(tmp_path: Path, calls: tuple[tuple[str, str], ...] = (), **env: str) -> set[str]:
    """Start serve on ``tmp_path/data``, make ``calls`` (method, path), stop it; its modules."""
    port = free_port()
    out = tmp_path / "modules.txt"
    out.unlink(missing_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    base.update(
        RECEIVER_DATA_DIR=str(tmp_path / "data"),
        RECEIVER_PORT=str(port),
        RECEIVER_INVOICE_TOKENS=TOKEN,
        MODULES_OUT=str(out),
        **env,
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", WRAPPER, "serve"],
        env=base,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        root = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "serve did not get ready"
            try:
                if httpx.get(f"{root}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.05)
        for method, path in calls:
            body = {"amount_msat": 1_500_000, "reference_id": "LAZY-1"}
            answer = httpx.request(method, root + path, json=body, timeout=15)
            assert answer.status_code == 200, answer.text
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0, output
    return set(out.read_text().split())


def loaded(modules: set[str]) -> set[str]:
    return {name for name in ON_DEMAND if name in modules}


def test_a_restart_at_head_loads_none_of_the_on_demand_packages(tmp_path: Path) -> None:
    fresh = serve(tmp_path)
    assert loaded(fresh) == {"alembic", "mako"}, "the first start migrates"
    with sqlite3.connect(tmp_path / "data" / "receiver.sqlite3") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master")}
    assert {"invoices", "webhook_events", "alembic_version"} <= tables

    restart = loaded(serve(tmp_path))
    assert restart == set(), {name: ON_DEMAND[name] for name in restart}


def test_each_package_is_loaded_once_its_feature_is_used(tmp_path: Path) -> None:
    serve(tmp_path)  # migrated: this test is about the others
    modules = serve(
        tmp_path,
        (("GET", "/console/login"), ("POST", f"/invoices/{TOKEN}")),
        RECEIVER_ALERT_URLS="json://127.0.0.1:9/",
        RECEIVER_API_KEY=KEY,
    )
    assert loaded(modules) == {"apprise", "jinja2", "qrcode"}  # a mint, and no bolt11


def test_the_api_page_loads_jinja2_and_nothing_else(tmp_path: Path) -> None:
    serve(tmp_path)
    assert loaded(serve(tmp_path, (("GET", "/docs"),))) == {"jinja2"}


async def test_the_kotani_pool_opened_by_the_first_call_is_never_reopened_after_close() -> None:
    sent: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={"success": True, "message": "ok", "data": {}})

    transport = httpx.MockTransport(answer)
    client = KotaniClient("https://kotani.invalid", SecretStr("key"), 5.0, transport)
    await client.aclose()  # no call yet: no pool to close
    with pytest.raises(RuntimeError, match="closed"):
        await client.retry_refund("REF-1")
    assert sent == []

    client = KotaniClient("https://kotani.invalid", SecretStr("key"), 5.0, transport)
    await client.retry_refund("REF-1")
    await client.aclose()
    with pytest.raises(RuntimeError, match="closed"):
        await client.retry_refund("REF-2")
    assert sent == ["/api/v3/offramp/retry-refund/REF-1"]
