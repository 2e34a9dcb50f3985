"""schemathesis against a live ``kotani-receiver serve``: every route of /openapi.json, all checks.

One real server (SQLite in a temp dir, the fake backend, Kotani and the forwarder on closed
loopback ports) with every secret configured; schemathesis runs as its CLI, authenticated by
``tests/fuzz/hooks.py`` (API key, metrics token, console cookie, webhook signatures) and the
path tokens of ``[[operations]]``. The bar (issues 13 and 14):

- at least 5,000 cases over all operations, not one answered with a 5xx;
- no failure of any check but the deliberate ones (``tests/fuzz/report.py``);
- none of the configured secrets in the server's captured output, plain or URL-encoded.

``KR_FUZZ_EXAMPLES`` (per operation), ``KR_FUZZ_SEED`` and ``KR_FUZZ_WORKERS`` change the run.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx

from tests.fuzz.report import read_report
from tests.support.server import free_port

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = int(os.environ.get("KR_FUZZ_EXAMPLES", "185"))
# The reference's exact character class (~700 ranges) makes each invoice body cost ~0.1 s to
# generate (Hypothesis enumerates the class per strategy); these two get fewer fuzzed examples
# (besides their ~70 coverage cases each) to keep the run near 3 minutes.
SLOW_EXAMPLES = max(1, EXAMPLES * 120 // 170)
SEED = os.environ.get("KR_FUZZ_SEED", "20261201")
MIN_CASES = 5000

SECRETS = {
    "RECEIVER_INVOICE_TOKENS": "fuzz-invoice-token-7Qm2Vx9LpR4s",
    "RECEIVER_DIRECT_TOKENS": "fuzz-direct-token-Hk3Nw8ZtY6cB",
    "RECEIVER_WEBHOOK_SECRETS": "fuzz-webhook-secret-Jd5Fq1XeU0a",
    "RECEIVER_API_KEY": "fuzz-api-key-Rb7Tz2MvK9gW",
    "RECEIVER_METRICS_TOKEN": "fuzz-metrics-token-Lp4Cs6YhN1d",
    "RECEIVER_KOTANI_API_KEY": "fuzz-kotani-key-Ve8Gm3QwS5j",
    "RECEIVER_FORWARD_SECRET": "whsec_ZnV6ei1mb3J3YXJkLXNlY3JldC1VeDBCbjdLaUQyZlE=",
}


def _start(tmp_path: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    port, closed = free_port(), free_port()  # nothing listens on `closed`: Kotani, forwarder
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECEIVER_")}
    env.update(SECRETS)
    env.update(
        RECEIVER_DATA_DIR=str(tmp_path / "data"),
        RECEIVER_PORT=str(port),
        RECEIVER_ALLOW_DIRECT_WITH_SECRETS="true",
        RECEIVER_KOTANI_BASE_URL=f"http://127.0.0.1:{closed}",
        RECEIVER_FORWARD_URL=f"http://127.0.0.1:{closed}/forward",
        # The fuzz is one client IP making thousands of refusals: keep it out of 429.
        RECEIVER_RATE_LIMIT_FAILURES="1000000/minute",
        RECEIVER_RATE_LIMIT_TOKEN="1000000/minute",
    )
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "receiver", "serve"],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError("serve did not start")


def _console_session(url: str) -> tuple[str, str]:
    """Log in as an operator: the session cookie, and the CSRF token its pages carry."""
    with httpx.Client(base_url=url, timeout=10) as client:
        login = client.post("/console/login", data={"api_key": SECRETS["RECEIVER_API_KEY"]})
        assert login.status_code == 303, login.text
        cookie = client.cookies["kr_console"]
        page = client.get("/console/events")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, page.text[:500]
    return cookie, found.group(1)


def _config(path: Path, csrf: str) -> None:
    """schemathesis.toml: the CSRF field of console forms, the path tokens, the console's 303."""
    invoice, direct = SECRETS["RECEIVER_INVOICE_TOKENS"], SECRETS["RECEIVER_DIRECT_TOKENS"]
    # The console sends a browser without a session to its login page: a 303 is its refusal.
    refusals = ["303", "400", "401", "403", "404", "405", "409", "415", "422", "429"]
    path.write_text(
        f"""
generation.max-examples = {EXAMPLES}

[cache]
directory = "{path.parent / "cache"}"

[parameters]
"body.csrf" = "{csrf}"

[[operations]]
include-operation-id = "generateInvoice"
parameters = {{ token = "{invoice}" }}
generation.max-examples = {SLOW_EXAMPLES}

[[operations]]
include-operation-id = "createRefundConfig"
generation.max-examples = {SLOW_EXAMPLES}

[[operations]]
include-operation-id = "receiveDirectWebhook"
parameters = {{ token = "{direct}" }}

[[operations]]
include-tag = "console"
checks.negative_data_rejection.expected-statuses = {refusals!r}
""".replace("'", '"')
    )


def _schemathesis(url: str, tmp_path: Path, cookie: str) -> subprocess.CompletedProcess[str]:
    config = tmp_path / "schemathesis.toml"
    env = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": "tests.fuzz.hooks",
        "FUZZ_API_KEY": SECRETS["RECEIVER_API_KEY"],
        "FUZZ_METRICS_TOKEN": SECRETS["RECEIVER_METRICS_TOKEN"],
        "FUZZ_WEBHOOK_SECRET": SECRETS["RECEIVER_WEBHOOK_SECRETS"],
        "FUZZ_CONSOLE_COOKIE": cookie,
    }
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(config),
        "run",
        f"{url}/openapi.json",
        "--checks",
        "all",
        "--seed",
        SEED,
        "--generation-database",
        "none",
        # A deliberate failure must not end an operation's fuzzing (schemathesis's default).
        "--continue-on-failure",
        "--workers",
        os.environ.get("KR_FUZZ_WORKERS", "2"),
        "--no-color",
        "--report",
        "ndjson",
        "--report-dir",
        str(tmp_path / "report"),
    ]
    return subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, check=False
    )


def test_schemathesis_all_checks_against_a_live_server(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    proc, url = _start(tmp_path, log)
    try:
        cookie, csrf = _console_session(url)
        _config(tmp_path / "schemathesis.toml", csrf)
        run = _schemathesis(url, tmp_path, cookie)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    output = log.read_text(errors="replace")
    summary = run.stdout[-6000:]
    report = read_report(tmp_path / "report")
    print(summary)
    served = [int(s) for s in re.findall(r"status=(\d{3})", output)]
    print(f"cases={report.cases} statuses={dict(sorted(report.statuses.items()))}")
    print(f"server: {len(served)} requests, {sum(s >= 500 for s in served)} answered 5xx")
    for failure in report.failures:
        print(f"failure: {failure.operation} {failure.check}: {failure.deliberate()}")

    assert report.cases >= MIN_CASES, summary
    assert len(report.operations) >= 25, sorted(report.operations)
    assert report.server_errors == 0, summary
    assert len(served) >= MIN_CASES
    assert not [s for s in served if s >= 500], "a 5xx in the server's own access log"
    assert "Traceback" not in output, output[output.find("Traceback") :][:3000]
    unexpected = report.unexpected()
    assert not unexpected, "\n".join(f"{f.operation} {f.check} {f.title}" for f in unexpected)
    assert run.returncode in (0, 1), run.stderr[-3000:]  # 1: the deliberate failures

    secrets = {**SECRETS, "console cookie": cookie}
    secrets["forward key"] = SECRETS["RECEIVER_FORWARD_SECRET"].removeprefix("whsec_")
    for name, secret in secrets.items():
        for form in {secret, quote(secret, safe=""), quote_plus(secret)}:
            assert form not in output, f"{name} in the server log"
