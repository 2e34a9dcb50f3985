"""Checks of deploy/ that no schema makes: what the issue's bar asks of each file.

Run by .ci/validate-deploy with the validators' venv (PyYAML): ``python deploy/validate.py
RULES_OUT``. Prints one line per file, exits 1 on any failure. ``RULES_OUT`` receives the
dashboard's queries as a Prometheus rules file, for ``promtool check rules`` to parse them.
"""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent

FAMILIES = {
    "receiver_invoice_requests_total",
    "receiver_mint_duration_seconds",
    "receiver_backend_failures_total",
    "receiver_backend_breaker_open",
    "receiver_webhooks_total",
    "receiver_queue_depth",
    "receiver_queue_oldest_pending_seconds",
    "receiver_refunds",
    "receiver_invoice_needed_oldest_pending_seconds",
    "receiver_kotani_api_calls_total",
    "receiver_http_responses_total",
}
"""The families GET /metrics exposes (the names the alerts and the dashboard may use)."""

failures: list[str] = []


def check(path: Path, what: str, problems: list[str]) -> None:
    name = path.relative_to(ROOT)
    if problems:
        failures.extend(f"{name}: {p}" for p in problems)
        for p in problems:
            print(f"FAIL {name}: {p}")
    else:
        print(f"ok   {name}: {what}")


def free_port() -> int:
    """A loopback port nobody listens on (for the scripts that start servers)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def family(name: str) -> str:
    """The family a sample name belongs to (histogram series carry a suffix)."""
    return re.sub(r"_(bucket|sum|count)$", "", name)


def metric_names(expr: str) -> set[str]:
    return {family(m) for m in re.findall(r"\breceiver_[a-z_]+", expr)}


def grace(env: dict[str, Any]) -> float:
    return float(env.get("RECEIVER_SHUTDOWN_GRACE", 20))


def seconds(text: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600}
    match = re.fullmatch(r"(\d+)([smh]?)", str(text).strip())
    assert match, text
    return int(match[1]) * units.get(match[2] or "s", 1)


# --- Prometheus rules and the Grafana dashboard ------------------------------------------------


def check_alerts() -> None:
    path = DEPLOY / "prometheus" / "alerts.yaml"
    rules = [r for g in yaml.safe_load(path.read_text())["groups"] for r in g["rules"]]
    used = set().union(*(metric_names(r["expr"]) for r in rules))
    problems = [f"unknown metric family {n}" for n in sorted(used - FAMILIES)]
    wanted = {
        "dead letters": "receiver_queue_depth",
        "invoice_needed pending": "receiver_invoice_needed_oldest_pending_seconds",
        "backend breaker open": "receiver_backend_breaker_open",
        "503 rate": "receiver_http_responses_total",
    }
    problems += [f"no alert on {what} ({n})" for what, n in wanted.items() if n not in used]
    tests = yaml.safe_load((DEPLOY / "prometheus" / "alerts.test.yaml").read_text())["tests"]
    tested = {
        case["alertname"]
        for test in tests
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    problems += [
        f"{r['alert']}: no test in alerts.test.yaml sees it fire"
        for r in rules
        if r["alert"] not in tested
    ]
    problems += [
        f"{r['alert']}: needs labels.severity and annotations.summary"
        for r in rules
        if "severity" not in r.get("labels", {}) or "summary" not in r.get("annotations", {})
    ]
    check(
        path,
        f"{len(rules)} alerts over known families, the 4 required present, each tested",
        problems,
    )


def check_dashboard(rules_out: Path) -> None:
    path = DEPLOY / "grafana" / "kotani-receiver.json"
    problems: list[str] = []
    try:
        dash = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        check(path, "", [f"not JSON: {exc}"])
        return
    panels = [p for p in dash.get("panels", []) if p.get("type") != "row"]
    ids = [p.get("id") for p in dash.get("panels", [])]
    if len(set(ids)) != len(ids):
        problems.append("panel ids are not unique")
    for key in ("uid", "title", "schemaVersion"):
        if key not in dash:
            problems.append(f"no {key}")
    exprs: list[str] = []
    for p in panels:
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"panel {p.get('title')!r} has no query")
        grid = p.get("gridPos", {})
        if grid.get("x", 0) + grid.get("w", 0) > 24:
            problems.append(f"panel {p.get('title')!r} is wider than the grid")
        exprs += [t["expr"] for t in targets]
    used = set().union(*(metric_names(e) for e in exprs))
    problems += [f"unknown metric family {n}" for n in sorted(used - FAMILIES)]
    problems += [f"no panel shows {n}" for n in sorted(FAMILIES - used)]
    # Grafana's variables replaced by what they stand for, so promtool parses real PromQL.
    concrete = [
        e.replace("$__rate_interval", "5m").replace("$job", "kotani-receiver") for e in exprs
    ]
    rules = {
        "groups": [
            {
                "name": "dashboard",
                "rules": [
                    {"record": f"dashboard:query{i}", "expr": e} for i, e in enumerate(concrete)
                ],
            }
        ]
    }
    rules_out.write_text(yaml.safe_dump(rules, sort_keys=False))
    check(
        path,
        f"JSON, {len(panels)} panels, every metric family shown (PromQL: promtool below)",
        problems,
    )


def check_service_exports() -> None:
    """Every family named here is defined by the service (once it exports metrics at all)."""
    sources = "\n".join(p.read_text() for p in (ROOT / "receiver").rglob("*.py"))
    path = DEPLOY / "prometheus" / "alerts.yaml"
    if "prometheus_client" not in sources:
        print(
            f"skip {path.relative_to(ROOT)}: receiver/ does not export metrics yet "
            "(no prometheus_client); names not cross-checked against the code"
        )
        return
    # A family is defined as a string literal, a counter with or without its "_total".
    missing = [
        n
        for n in sorted(FAMILIES)
        if not re.search(rf"""["']{re.sub(r"_total$", "", n)}(_total)?["']""", sources)
    ]
    check(
        path,
        "every metric family used here is defined in receiver/",
        [f"{n} is not defined in receiver/" for n in missing],
    )


# --- Kubernetes, compose, systemd --------------------------------------------------------------


def load_k8s() -> dict[str, dict[str, Any]]:
    docs: dict[str, dict[str, Any]] = {}
    for path in sorted((DEPLOY / "kubernetes").glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            docs[doc["kind"]] = doc
    return docs


def pod_problems(pod: dict[str, Any], what: str) -> list[str]:
    problems = []
    if pod.get("securityContext", {}).get("runAsNonRoot") is not True:
        problems.append(f"{what}: runAsNonRoot is not true")
    for c in pod["containers"]:
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{what}/{c['name']}: root filesystem not read-only")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{what}/{c['name']}: privilege escalation not off")
        if sc.get("capabilities", {}).get("drop") != ["ALL"]:
            problems.append(f"{what}/{c['name']}: capabilities not all dropped")
        if "limits" not in c.get("resources", {}) or "requests" not in c.get("resources", {}):
            problems.append(f"{what}/{c['name']}: no resource requests and limits")
        mounts = {m["mountPath"] for m in c.get("volumeMounts", [])}
        if "/var/lib/kotani-receiver" not in mounts:
            problems.append(f"{what}/{c['name']}: RECEIVER_DATA_DIR is not a writable volume")
    return problems


def check_kubernetes() -> None:
    docs = load_k8s()
    path = DEPLOY / "kubernetes"
    problems = [
        f"no {k}" for k in ("Deployment", "Service", "Secret", "ConfigMap", "Job") if k not in docs
    ]
    if problems:
        check(path, "", problems)
        return
    dep, job, env = docs["Deployment"], docs["Job"], docs["ConfigMap"]["data"]
    pod = dep["spec"]["template"]["spec"]
    main = pod["containers"][0]
    if dep["spec"]["replicas"] != 2:
        problems.append("Deployment: replicas is not 2")
    if main.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/healthz":
        problems.append("Deployment: liveness probe is not /healthz")
    if main.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/readyz":
        problems.append("Deployment: readiness probe is not /readyz")
    if pod.get("terminationGracePeriodSeconds", 30) <= grace(env):
        problems.append("Deployment: terminationGracePeriodSeconds not above the shutdown grace")
    problems += pod_problems(pod, "Deployment")
    jpod = job["spec"]["template"]["spec"]
    if jpod["containers"][0].get("args") != ["db", "upgrade"]:
        problems.append("Job: does not run `db upgrade`")
    problems += pod_problems(jpod, "Job")
    sources = [
        (src.get("configMapRef") or src.get("secretRef") or {}).get("name")
        for c in (main, jpod["containers"][0])
        for src in c.get("envFrom", [])
    ]
    if sources != ["kotani-receiver"] * 4:
        problems.append("the pods do not take their env from the ConfigMap and the Secret")
    check(
        path, "2 replicas, probes, non-root read-only pods, migration Job, grace ordering", problems
    )


def check_compose() -> None:
    path = DEPLOY / "compose.yaml"
    doc = yaml.safe_load(path.read_text())
    svc = doc["services"]
    problems = []
    rec, pg = svc.get("receiver", {}), svc.get("postgres", {})
    if not str(pg.get("image", "")).startswith("postgres:15"):
        problems.append("postgres is not PostgreSQL 15")
    if "healthcheck" not in pg or "volumes" not in pg:
        problems.append("postgres has no healthcheck or no volume")
    if rec.get("depends_on", {}).get("postgres", {}).get("condition") != "service_healthy":
        problems.append("receiver does not wait for a healthy postgres")
    if seconds(rec.get("stop_grace_period", "10s")) <= grace(rec.get("environment", {})):
        problems.append("receiver: stop_grace_period not above RECEIVER_SHUTDOWN_GRACE")
    if "prometheus" not in svc.get("prometheus", {}).get("profiles", []):
        problems.append("no optional prometheus profile")
    if any(not str(p).startswith("127.0.0.1:") for p in rec.get("ports", [])):
        problems.append("receiver publishes a port beyond loopback")
    check(
        path, "PostgreSQL 15 with healthcheck+volume, prometheus profile, grace ordering", problems
    )


SYSTEMD_REQUIRED = {
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "NoNewPrivileges": "yes",
    "PrivateTmp": "yes",
    "UMask": "0077",
    "CapabilityBoundingSet": "",
    "SystemCallFilter": "@system-service",
    "KillSignal": "SIGTERM",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
}


def check_systemd() -> None:
    path = DEPLOY / "systemd" / "kotani-receiver.service"
    settings: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, _, value = line.partition("=")
            settings.setdefault(key.strip(), []).append(value.strip())
    problems = [
        f"{k}={v} missing" for k, v in SYSTEMD_REQUIRED.items() if v not in settings.get(k, [])
    ]
    if not ({"DynamicUser"} & settings.keys() or {"User"} & settings.keys()):
        problems.append("no DynamicUser= or User=: it would run as root")
    if "StateDirectory" not in settings:
        problems.append("no StateDirectory=")
    env = dict(v.partition("=")[::2] for v in settings.get("Environment", []))
    if seconds(settings.get("TimeoutStopSec", ["90"])[-1]) <= grace(env):
        problems.append("TimeoutStopSec not above RECEIVER_SHUTDOWN_GRACE")
    check(path, "hardening settings present, TimeoutStopSec above the shutdown grace", problems)


def check_readme() -> None:
    """deploy/README.md names every file shipped here (the table of what validates what)."""
    path = DEPLOY / "README.md"
    text = path.read_text()
    files = sorted(
        str(p.relative_to(DEPLOY))
        for p in DEPLOY.rglob("*")
        if p.is_file()
        and p.name not in ("README.md", ".gitignore")
        and "__pycache__" not in p.parts
    )
    globbed = {"kubernetes": "kubernetes/*.yaml"}
    missing = [f for f in files if f not in text and globbed.get(f.split("/")[0], f) not in text]
    check(path, f"names all {len(files)} files of deploy/", [f"{f} not described" for f in missing])


def main() -> int:
    check_alerts()
    check_dashboard(Path(sys.argv[1]))
    check_service_exports()
    check_kubernetes()
    check_compose()
    check_systemd()
    check_readme()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
