"""`kotani-receiver serve` as a real process: first-start token, masked logs, real requests."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.support.server import free_port


def start(tmp_path: Path, port: int, **env: str) -> subprocess.Popen[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    base.update({"RECEIVER_DATA_DIR": str(tmp_path / "data"), "RECEIVER_PORT": str(port), **env})
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve"],
        env=base,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.1)
        assert proc.poll() is None, proc.communicate()[0]
    proc.kill()
    raise AssertionError("serve did not start")


def stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGINT)
    output, _ = proc.communicate(timeout=20)
    return output


def test_first_start_creates_a_private_token_and_names_its_file(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port)
    token_file = tmp_path / "data" / "invoice-token"
    token = token_file.read_text().strip()
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    ok = httpx.post(
        f"http://127.0.0.1:{port}/invoices/{token}",
        json={"amount_msat": 1_500_000, "reference_id": "TXN-001"},
        timeout=15,
    )
    assert ok.status_code == 200, ok.text
    first = stop(proc)
    assert token not in first, "not on a terminal: the token is never printed nor logged"
    assert f"Created an invoice token in {token_file}" in first
    assert "urls --show-secrets" in first

    proc = start(tmp_path, port)
    httpx.post(
        f"http://127.0.0.1:{port}/invoices/{token}", json={"amount_msat": 1, "reference_id": "R"}
    )
    second = stop(proc)
    assert token not in second
    assert token_file.read_text().strip() == token


def test_configured_token_never_reaches_the_logs(tmp_path: Path) -> None:
    token = "configured-token-abcdef0123456789"
    port = free_port()
    proc = start(tmp_path, port, RECEIVER_INVOICE_TOKENS=f"{token},other-token-abcdef0123456789")
    url = f"http://127.0.0.1:{port}/invoices/"
    assert (
        httpx.post(url + token, json={"amount_msat": 2000, "reference_id": "R1"}).status_code == 200
    )
    assert httpx.post(url + token, content=b"{bad").status_code == 400
    assert httpx.post(url + token + "x", json={}).status_code == 404
    output = stop(proc)
    assert token not in output
    assert "/invoices/***" in output


def test_one_log_stream_in_json_with_request_ids(tmp_path: Path) -> None:
    port = free_port()
    proc = start(
        tmp_path,
        port,
        RECEIVER_LOG_FORMAT="json",
        RECEIVER_INVOICE_TOKENS="serve-token-0123456789abcdef",
        RECEIVER_TRUSTED_PROXIES="127.0.0.1/32",
    )
    url = f"http://127.0.0.1:{port}"
    mine = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "proxy-id-42"}, timeout=5)
    bad = httpx.get(f"{url}/healthz", headers={"X-Request-ID": "bad id\\n"}, timeout=5)
    output = stop(proc)
    import json

    lines = [line for line in output.splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line: uvicorn's, Alembic's, ours
    components = {r.get("component") for r in records}
    assert "uvicorn.error" in components and "http" in components
    assert any(str(c).startswith("alembic") for c in components)
    assert mine.headers["x-request-id"] == "proxy-id-42"  # from a trusted proxy
    assert bad.headers["x-request-id"] != "bad id\\n" and len(bad.headers["x-request-id"]) == 32
    access = [r for r in records if r.get("event") == "http.request"]
    assert {r["request_id"] for r in access} >= {"proxy-id-42", bad.headers["x-request-id"]}


def test_request_id_from_an_untrusted_peer_is_replaced(tmp_path: Path) -> None:
    port = free_port()
    proc = start(tmp_path, port, RECEIVER_INVOICE_TOKENS="serve-token-0123456789abcdef")
    answer = httpx.get(
        f"http://127.0.0.1:{port}/healthz", headers={"X-Request-ID": "forged-1"}, timeout=5
    )
    stop(proc)
    assert answer.headers["x-request-id"] != "forged-1"


def test_on_a_terminal_the_new_token_url_is_shown_once(tmp_path: Path) -> None:
    import pty

    port = free_port()
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(RECEIVER_DATA_DIR=str(tmp_path / "data"), RECEIVER_PORT=str(port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "receiver", "serve"],
        env=env, cwd=tmp_path, stdout=slave, stderr=subprocess.DEVNULL,
    )
    os.close(slave)
    try:
        seen = b""
        deadline = time.monotonic() + 30
        while b"/invoices/" not in seen and time.monotonic() < deadline:
            import select

            if select.select([master], [], [], 0.5)[0]:
                seen += os.read(master, 4096)
        token = (tmp_path / "data" / "invoice-token").read_text().strip()
        assert f"/invoices/{token}".encode() in seen
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
        os.close(master)


def test_sigterm_finishes_in_flight_requests_and_exits_0(tmp_path: Path) -> None:
    import json
    import socket

    port = free_port()
    token = "serve-token-0123456789abcdef"
    proc = start(tmp_path, port, RECEIVER_INVOICE_TOKENS=token, RECEIVER_SHUTDOWN_GRACE="10")
    body = json.dumps({"amount_msat": 1000, "reference_id": "T-SIGTERM"}).encode()
    # A request in flight: headers and half of the body sent when SIGTERM arrives.
    conn = socket.create_connection(("127.0.0.1", port), timeout=15)
    conn.sendall(
        f"POST /invoices/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10]
    )
    time.sleep(0.5)
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(httpx.ConnectError):  # no longer accepting
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    conn.sendall(body[10:])
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = conn.recv(65536)
        if not chunk:
            break
        answer += chunk
    conn.close()
    output, _ = proc.communicate(timeout=20)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert proc.returncode == 0, output
    assert time.monotonic() - started < 10
