"""Runs nginx with kotani-receiver.conf on loopback and checks what `nginx -t` cannot.

``python deploy/nginx/behaviour.py WORKDIR`` (WORKDIR from .ci/validate-deploy: the site
rewritten to listen on free loopback ports, with a throwaway certificate). A stub upstream
echoes the headers nginx forwards. Checked: a client-sent X-Forwarded-For is replaced by the
client's address, X-Real-IP and X-Request-ID are set, bodies over 16 KiB on /invoices and over
64 KiB on /webhooks get 413 before the service sees them, /metrics is 404, http redirects to
https, and the access log never holds the invoice token. Exit 1 on the first failure.
"""

from __future__ import annotations

import http.client
import http.server
import json
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

TOKEN = "tok_" + "s" * 40


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Echo(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        body = json.dumps({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


def main(work: Path) -> int:
    site = Path(__file__).with_name("kotani-receiver.conf").read_text()
    http_port, https_port, upstream_port = free_port(), free_port(), free_port()
    site = site.replace(
        "/etc/letsencrypt/live/receiver.example.com/fullchain.pem", f"{work}/cert.pem"
    )
    site = site.replace("/etc/letsencrypt/live/receiver.example.com/privkey.pem", f"{work}/key.pem")
    site = site.replace("/var/log/nginx/", f"{work}/")
    site = re.sub(r"listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream_port};")
    (work / "run-site.conf").write_text(site)
    (work / "run.conf").write_text(
        f"pid {work}/run.pid;\nerror_log {work}/run-error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n client_body_temp_path {work}/body;\n proxy_temp_path {work}/proxy;\n"
        f" include {work}/run-site.conf;\n}}\n"
    )
    upstream = http.server.ThreadingHTTPServer(("127.0.0.1", upstream_port), Echo)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    nginx = subprocess.Popen(["nginx", "-c", f"{work}/run.conf"])  # noqa: S603, S607  # CI tool on PATH
    failures: list[str] = []
    try:
        context = ssl.create_default_context(cafile=f"{work}/cert.pem")
        context.check_hostname = False

        def post(path: str, size: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
            conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=context, timeout=5)
            conn.request("POST", path, body=b"x" * size, headers=headers or {})
            response = conn.getresponse()
            return response.status, response.read()

        for _ in range(50):
            try:
                post("/webhooks/kotani", 1)
                break
            except OSError:
                time.sleep(0.1)

        def expect(what: str, ok: bool) -> None:
            print(f"  {'ok  ' if ok else 'FAIL'} {what}")
            if not ok:
                failures.append(what)

        status, body = post(
            f"/invoices/{TOKEN}", 100, {"X-Forwarded-For": "6.6.6.6", "X-Request-ID": "forged"}
        )
        seen = json.loads(body) if status == 200 else {}
        expect(
            "client-sent X-Forwarded-For replaced by the client address",
            seen.get("x-forwarded-for") == "127.0.0.1",
        )
        expect("X-Real-IP set", seen.get("x-real-ip") == "127.0.0.1")
        expect(
            "X-Request-ID set by nginx",
            re.fullmatch(r"[0-9a-f]{32}", seen.get("x-request-id", "")) is not None,
        )
        expect("X-Forwarded-Proto https", seen.get("x-forwarded-proto") == "https")
        expect("16 KiB invoice body passes", post(f"/invoices/{TOKEN}", 16 * 1024)[0] == 200)
        expect(
            "16 KiB + 1 invoice body is 413", post(f"/invoices/{TOKEN}", 16 * 1024 + 1)[0] == 413
        )
        expect("64 KiB webhook passes", post("/webhooks/kotani", 64 * 1024)[0] == 200)
        expect("64 KiB + 1 webhook is 413", post("/webhooks/kotani", 64 * 1024 + 1)[0] == 413)
        conn = http.client.HTTPSConnection("127.0.0.1", https_port, context=context, timeout=5)
        conn.request("GET", "/metrics")
        expect("/metrics is 404 from outside", conn.getresponse().status == 404)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        conn.request("POST", f"/invoices/{TOKEN}")
        expect("http is redirected to https", conn.getresponse().status == 301)
        time.sleep(0.2)
        log = (work / "kotani-receiver.access.log").read_text()
        expect(
            "access log written, the token never in it", "/invoices/***" in log and TOKEN not in log
        )
    finally:
        nginx.terminate()
        nginx.wait(timeout=10)
        upstream.shutdown()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1])))
