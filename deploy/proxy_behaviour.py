"""Runs the nginx site or the Caddyfile on loopback and checks what their validators cannot.

``python deploy/proxy_behaviour.py nginx|caddy WORKDIR`` (from .ci/validate-deploy; WORKDIR
holds a throwaway ``cert.pem``/``key.pem`` for nginx). The shipped file is rewritten only to
listen on free loopback ports (and, for Caddy, to use its internal CA); a stub upstream records
what reaches the service. Checked: a client-sent X-Forwarded-For is replaced by the client's
address, X-Real-IP and a fresh X-Request-ID are set, bodies over 16 KiB on /invoices and over
64 KiB on /webhooks never reach the service, /metrics is 404, http redirects to https, and
nginx's access log never holds the invoice token. Exit 1 on any failure.
"""

from __future__ import annotations

import http.client
import http.server
import json
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

from validate import free_port  # deploy/ is on sys.path: run as deploy/proxy_behaviour.py

DEPLOY = Path(__file__).resolve().parent
TOKEN = "tok_" + "s" * 40
KIB = 1024


class Upstream(http.server.ThreadingHTTPServer):
    """Stands in for the service: answers 200 with the headers it got; records body sizes."""

    received: list[tuple[str, int]]

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a proxy cutting a request short is one of the cases under test


class Echo(http.server.BaseHTTPRequestHandler):
    server: Upstream

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        size = len(self.rfile.read(length))
        self.server.received.append((self.path, size))
        body = json.dumps({k.lower(): v for k, v in self.headers.items()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST

    def log_message(self, *args: object) -> None:
        pass


def start_nginx(
    work: Path, http_port: int, https_port: int, upstream: int
) -> subprocess.Popen[bytes]:
    site = (DEPLOY / "nginx" / "kotani-receiver.conf").read_text()
    live = "/etc/letsencrypt/live/receiver.example.com"
    site = site.replace(f"{live}/fullchain.pem", f"{work}/cert.pem")
    site = site.replace(f"{live}/privkey.pem", f"{work}/key.pem")
    site = site.replace("/var/log/nginx/", f"{work}/")
    site = re.sub(r"listen \[::\]:\d+[^;]*;", "", site)
    site = site.replace("listen 80;", f"listen 127.0.0.1:{http_port};")
    site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{https_port} ssl http2;")
    site = site.replace("server 127.0.0.1:8000;", f"server 127.0.0.1:{upstream};")
    (work / "run-site.conf").write_text(site)
    (work / "run.conf").write_text(
        f"pid {work}/run.pid;\nerror_log {work}/run-error.log;\ndaemon off;\nevents {{}}\n"
        f"http {{\n client_body_temp_path {work}/body;\n proxy_temp_path {work}/proxy;\n"
        f" include {work}/run-site.conf;\n}}\n"
    )
    return subprocess.Popen(["nginx", "-c", f"{work}/run.conf"])  # noqa: S603, S607


def start_caddy(
    work: Path, http_port: int, https_port: int, upstream: int
) -> subprocess.Popen[bytes]:
    caddyfile = (DEPLOY / "caddy" / "Caddyfile").read_text()
    test_options = (
        f"\thttp_port {http_port}\n\thttps_port {https_port}\n\tdefault_bind 127.0.0.1\n"
        "\tlocal_certs\n\tskip_install_trust\n\tadmin off\n\tservers {"
    )
    caddyfile = caddyfile.replace("\tservers {", test_options, 1)
    (work / "Caddyfile").write_text(caddyfile)
    env = os.environ | {
        "RECEIVER_DOMAIN": "localhost",
        "UPSTREAM": f"127.0.0.1:{upstream}",
        "HOME": str(work),
        "XDG_DATA_HOME": str(work / "data"),
        "XDG_CONFIG_HOME": str(work / "config"),
    }
    command = ["caddy", "run", "--adapter", "caddyfile", "--config", str(work / "Caddyfile")]
    return subprocess.Popen(  # noqa: S603
        command, env=env, stdout=subprocess.DEVNULL, stderr=open(work / "caddy.log", "wb")
    )


def main(proxy: str, work: Path) -> int:
    http_port, https_port, upstream_port = free_port(), free_port(), free_port()
    upstream = Upstream(("127.0.0.1", upstream_port), Echo)
    upstream.received = []
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    start = {"nginx": start_nginx, "caddy": start_caddy}[proxy]
    server = start(work, http_port, https_port, upstream_port)
    # The test talks to 127.0.0.1 with a throwaway (nginx) or internal-CA (Caddy) certificate.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    host = "receiver.example.com" if proxy == "nginx" else "localhost"
    failures: list[str] = []

    def request(
        path: str, size: int = 0, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes]:
        # Caddy picks its site by SNI: connect by name there (localhost is its site's name).
        address = "localhost" if proxy == "caddy" else "127.0.0.1"
        conn = http.client.HTTPSConnection(address, https_port, context=context, timeout=5)
        try:
            conn.request("POST", path, body=b"x" * size, headers={"Host": host} | (headers or {}))
            response = conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            return 0, b""  # not up yet, or the proxy cut the connection (the body did not pass)
        finally:
            conn.close()

    def expect(what: str, ok: bool) -> None:
        print(f"  {'ok  ' if ok else 'FAIL'} {proxy}: {what}")
        if not ok:
            failures.append(what)

    def reaches(path: str, size: int) -> bool:
        before = len(upstream.received)
        status, _ = request(path, size)
        return status == 200 and upstream.received[before:] == [(path, size)]

    def refused(path: str, size: int) -> bool:
        """413 from the proxy, and the service saw no part of the request."""
        before = len(upstream.received)
        status, _ = request(path, size)
        time.sleep(0.05)
        return status == 413 and upstream.received[before:] == []

    try:
        deadline = time.monotonic() + 20
        while request("/webhooks/kotani", 1)[0] != 200:
            if server.poll() is not None or time.monotonic() > deadline:
                print(f"  FAIL {proxy}: did not start (see {work})")
                return 1
            time.sleep(0.2)
        status, body = request(
            f"/invoices/{TOKEN}", 100, {"X-Forwarded-For": "6.6.6.6", "X-Request-ID": "forged"}
        )
        seen = json.loads(body) if status == 200 else {}
        expect(
            "a forged X-Forwarded-For is replaced by the client address",
            seen.get("x-forwarded-for") == "127.0.0.1",
        )
        expect("X-Real-IP is the client address", seen.get("x-real-ip") == "127.0.0.1")
        expect(
            "X-Request-ID is the proxy's own",
            seen.get("x-request-id", "forged") not in ("", "forged"),
        )
        expect("X-Forwarded-Proto is https", seen.get("x-forwarded-proto") == "https")
        invoice = f"/invoices/{TOKEN}"
        expect("a 16 KiB invoice request reaches the service", reaches(invoice, 16 * KIB))
        expect(
            "16 KiB + 1 on /invoices: 413, the service sees none of it",
            refused(invoice, 16 * KIB + 1),
        )
        expect("a 64 KiB webhook reaches the service", reaches("/webhooks/kotani", 64 * KIB))
        expect(
            "64 KiB + 1 on /webhooks: 413, the service sees none of it",
            refused("/webhooks/kotani", 64 * KIB + 1),
        )
        expect("/metrics is 404 from outside", request("/metrics")[0] == 404)
        conn = http.client.HTTPConnection("127.0.0.1", http_port, timeout=5)
        conn.request("POST", invoice, headers={"Host": host})
        expect("http is redirected to https", conn.getresponse().status in (301, 308))
        if proxy == "nginx":
            time.sleep(0.2)
            log = (work / "kotani-receiver.access.log").read_text()
            expect(
                "the access log is written, never with the token",
                "/invoices/***" in log and TOKEN not in log,
            )
    finally:
        server.terminate()
        server.wait(timeout=10)
        upstream.shutdown()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], Path(sys.argv[2])))
