"""The ``kotani-receiver`` command line.

Core commands live here (serve, invoice, decode, urls, token new, db upgrade, fake pay). Feature
areas add theirs from their own modules: each module in ``EXTENSIONS`` has
``register(subparsers)`` and sets ``func`` (``(args, settings) -> int``) on its parsers.

Exit status: 0 ok, 1 the operation failed (a check, a mint), 2 bad usage or configuration.
Configuration errors are one line naming the variable, never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine
from typing import Any

from receiver import __version__
from receiver.errors import ConfigError, ReceiverError
from receiver.logs import configure, redact_secrets
from receiver.settings import Settings, load_settings

Command = Callable[[argparse.Namespace, Settings], int]

EXTENSIONS: tuple[str, ...] = (
    "receiver.kotani.cli",
    "receiver.inbox.cli",
    "receiver.check",
    "receiver.console.export",
    "receiver.mock_kotani.cli",
    "receiver.simulate.cli",
    "receiver.tunnel",
    "receiver.kotani.integrator",
)
"""Modules that add subcommands (``register(subparsers)``)."""


def run(coro: Coroutine[Any, Any, int]) -> int:
    """Run an async command to completion."""
    return asyncio.run(coro)


def fail(message: str, status: int = 1) -> int:
    print(f"kotani-receiver: {message}", file=sys.stderr)
    return status


# --- serve ------------------------------------------------------------------------------------


def local_base_url(settings: Settings) -> str:
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{settings.port}"


def base_url(settings: Settings) -> str:
    """PUBLIC_URL when set (what Kotani reaches), else the local listening address."""
    if settings.public_url is not None:
        return str(settings.public_url).rstrip("/")
    return local_base_url(settings)


def _backend_urls(settings: Settings) -> list[tuple[str, str]]:
    """``(RECEIVER_<NAME>_URL, url)`` of each configured backend that has a URL setting."""
    from receiver.lightning.registry import backend_class

    found = []
    for name in settings.backends:
        config = backend_class(name).Config()
        url = getattr(config, "url", None)
        if isinstance(url, str) and url:
            prefix = str(config.model_config.get("env_prefix", ""))
            found.append((f"{prefix}URL", url))
    return found


async def _preflight(settings: Settings) -> int:
    from receiver import production
    from receiver.lightning.registry import load_backends
    from receiver.services import backend_context

    unsafe = production.problems(settings) + production.backend_problems(
        settings, _backend_urls(settings)
    )
    if unsafe:
        for line in unsafe:
            print(f"production: {line}", file=sys.stderr)
        return 2

    for backend in load_backends(settings.backends, backend_context(settings)):
        await backend.aclose()
    return await _db_upgrade(settings, quiet=True)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.app import create_app, freeze_startup_objects
    from receiver.tokens import resolve_tokens, token_path

    overrides = {k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    if overrides:
        settings = settings.model_copy(update=overrides)
    if args.workers > 1 and settings.is_sqlite:
        # SQLite has one writer; several processes on one file would only queue on its lock.
        raise ConfigError(
            "--workers needs PostgreSQL (RECEIVER_DATABASE_URL=postgresql+asyncpg://...); "
            "on SQLite run one process"
        )
    # Pre-flight outside the server: a bad backend setting or an unreachable database is one
    # clear line here, not a traceback from the server's lifespan.
    status = run(_preflight(settings))
    if status:
        return status
    _, created = resolve_tokens(settings, create=True)
    if created is not None:
        # Shown once, on the start that created it, and only to a person at a terminal: a
        # service manager or container runtime would keep it in its logs. Afterwards (or
        # when not on a terminal) `urls --show-secrets` prints it.
        if sys.stdout.isatty():
            print(
                "Created an invoice token. Give Kotani this generate_invoice_url "
                f"(shown once):\n  {base_url(settings)}/invoices/{created}\n",
                flush=True,
            )
        else:
            print(
                f"Created an invoice token in {token_path(settings)} (mode 0600); "
                "`kotani-receiver urls --show-secrets` prints the generate_invoice_url.",
                file=sys.stderr,
                flush=True,
            )
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "access_log": False,  # Observe writes a masked one: the path holds the token
        "log_config": None,  # uvicorn's lines go through the one stream of receiver.logs
        "proxy_headers": False,  # forwarded headers count only from RECEIVER_TRUSTED_PROXIES
        "server_header": False,
        "ws": "none",  # no WebSocket route: uvicorn need not load the websockets package
        "log_level": settings.log_level.lower(),
        # SIGTERM: stop accepting, finish requests in flight within the grace period, then
        # the lifespan stops the workers (events in hand finished or their leases released).
        "timeout_graceful_shutdown": settings.shutdown_grace / 2,  # the rest: the workers
    }
    # uvicorn re-raises the SIGTERM it handled once it has shut down, under whatever handler
    # was there before it: with this no-op one, a graceful stop exits 0 (a service manager
    # reads -15 as a failure and would restart or alert).
    signal.signal(signal.SIGTERM, lambda _sig, _frame: None)
    if args.workers == 1:
        # The pre-flight applied the migrations: the lifespan does not run them again.
        app = create_app(settings, migrate=False)
        freeze_startup_objects()
        uvicorn.run(app, **options)
        return 0
    # Worker processes read their settings from the environment, as this one did, and count
    # their metrics in one shared directory (prometheus-client's multiprocess mode).
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="receiver-metrics-"))
    os.environ.update({f"RECEIVER_{k.upper()}": str(v) for k, v in overrides.items()})
    uvicorn.run("receiver.app:create_app_from_env", factory=True, workers=args.workers, **options)
    return 0


# --- invoice / decode -------------------------------------------------------------------------


async def _invoice(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.handlers.invoice_url import validate_amount, validate_reference
    from receiver.services import open_services

    amount = validate_amount(args.amount_msat, settings.max_amount_msat)
    reference = validate_reference(args.reference or f"cli-{secrets.token_hex(6)}")
    async with open_services(settings) as services:
        issued = await services.invoices.get_or_mint(reference, amount, fresh=args.fresh)
    print(
        json.dumps(
            {
                **issued.contract_json(),
                "reference_id": reference,
                "backend": issued.backend,
                "reused": issued.reused,
            },
            indent=2,
        )
    )
    return 0


def cmd_invoice(args: argparse.Namespace, settings: Settings) -> int:
    return run(_invoice(args, settings))


def cmd_decode(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.verify import Expectation, decode_invoice, run_checks

    invoice = decode_invoice(args.bolt11)
    expect = Expectation(
        network=settings.network,
        amount_msat=args.amount_msat,
        payment_hash=args.payment_hash,
        node_id=args.node_id,
        min_validity=settings.min_validity,
    )
    checks = run_checks(invoice, expect, time.time())
    fields = {
        "network": invoice.network.value,
        "amount_msat": invoice.amount_msat,
        "payment_hash": invoice.payment_hash,
        "payee": invoice.payee,
        "description": invoice.description,
        "description_hash": invoice.description_hash,
        "created_at": invoice.created_at,
        "expires_at": invoice.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if args.json:
        out = {
            **fields,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in checks],
        }
        print(json.dumps(out, indent=2))
    else:
        for name, value in fields.items():
            print(f"{name:>16}  {value}")
        print()
        for check in checks:
            print(f"{'ok' if check.ok else 'FAIL':>6}  {check.name:<16} {check.detail}")
    return 0 if all(c.ok for c in checks) else 1


# --- urls / token -----------------------------------------------------------------------------


def cmd_urls(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.inbox.stats import anything_arrived
    from receiver.tokens import mask, resolve_tokens

    tokens, _ = resolve_tokens(settings, create=False)
    if not tokens:
        return fail(
            "no invoice token yet: start `kotani-receiver serve` once, or set "
            "RECEIVER_INVOICE_TOKENS (`kotani-receiver token new` makes one)"
        )
    if settings.public_url is None:
        print(
            "# RECEIVER_PUBLIC_URL is not set: these are local addresses, Kotani cannot reach "
            "them. Set it to your public https URL (or tunnel).",
            file=sys.stderr,
        )
    root = base_url(settings)
    for token in tokens:
        secret = token.get_secret_value()
        shown = secret if args.show_secrets else mask(secret)
        print(f"generate_invoice_url  {root}/invoices/{shown}")
    print(f"webhook_url           {root}/webhooks/kotani")
    for token in settings.direct_tokens:
        secret = token.get_secret_value()
        shown = secret if args.show_secrets else mask(secret)
        print(f"direct webhook_url    {root}/webhooks/kotani/{shown}")
    if not asyncio.run(anything_arrived(settings.database_url)):
        print(
            "# nothing has arrived yet: play Kotani against the running receiver with\n"
            "#   kotani-receiver simulate invoice --amount-msat 1500000\n"
            "#   kotani-receiver simulate refund --amount-msat 1500000",
            file=sys.stderr,
        )
    return 0


def cmd_token_new(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.tokens import new_token

    print(new_token())
    print(
        "# add it to RECEIVER_INVOICE_TOKENS (comma-separated; keep the old one until Kotani "
        "has the new URL)",
        file=sys.stderr,
    )
    return 0


# --- db / fake --------------------------------------------------------------------------------


async def _db_upgrade(settings: Settings, *, quiet: bool = False) -> int:
    from sqlalchemy.exc import SQLAlchemyError

    from receiver.db import Database

    db = Database(settings.database_url, **settings.pool_options)
    try:
        migrated = await db.upgrade()
    except (SQLAlchemyError, OSError) as exc:
        # The driver's message names the host or file, never the password (URL not echoed).
        reason = str(getattr(exc, "orig", None) or exc).splitlines()[0][:200]
        raise ConfigError(f"RECEIVER_DATABASE_URL: the database is unreachable ({reason})") from exc
    finally:
        await db.dispose()
    if not quiet:
        print("database migrated" if migrated else "database is up to date")
    return 0


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    return run(_db_upgrade(settings))


async def _fake_pay(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.amounts import Msat
    from receiver.lightning.fake import FakeBackend, FakeConfig
    from receiver.services import backend_context, open_services
    from receiver.verify import decode_invoice

    invoice = decode_invoice(args.bolt11)
    amount = args.amount_msat if args.amount_msat is not None else invoice.amount_msat
    if amount is None:
        return fail("the invoice has no amount: pass --amount-msat")
    fake = FakeBackend(FakeConfig(), backend_context(settings))
    try:
        preimage = await fake.pay(invoice.payment_hash, Msat(amount))
    finally:
        await fake.aclose()
    if "fake" in settings.backends:
        async with open_services(settings) as services:
            await services.invoices.refresh_status(invoice.payment_hash)
    print(
        json.dumps(
            {"payment_hash": invoice.payment_hash, "paid_msat": amount, "preimage": preimage},
            indent=2,
        )
    )
    return 0


def cmd_fake_pay(args: argparse.Namespace, settings: Settings) -> int:
    return run(_fake_pay(args, settings))


# --- parser -----------------------------------------------------------------------------------


def _amount(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("an integer number of msat, e.g. 1500000")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError("a number of processes from 1 to 64")
    return int(text)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kotani-receiver",
        description="The integrator's side of Kotani Pay's Lightning refunds.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("serve", help="run the HTTP service (applies migrations first)")
    p.add_argument("--host", help="listen address (RECEIVER_HOST)")
    p.add_argument("--port", type=int, help="listen port (RECEIVER_PORT)")
    p.add_argument(
        "--workers",
        type=_workers,
        default=1,
        help="worker processes on one port (PostgreSQL only; default 1)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("invoice", help="mint an invoice through the configured backends")
    p.add_argument("amount_msat", type=_amount, metavar="AMOUNT_MSAT")
    p.add_argument("--reference", help="reference id (default: a random cli-… id)")
    p.add_argument("--fresh", action="store_true", help="never reuse an earlier invoice")
    p.set_defaults(func=cmd_invoice)

    p = sub.add_parser("decode", help="decode a bolt11 invoice and run the service's checks")
    p.add_argument("bolt11", metavar="BOLT11")
    p.add_argument("--amount-msat", type=_amount, help="also check this exact amount")
    p.add_argument("--payment-hash", help="also check this payment hash")
    p.add_argument("--node-id", help="also check the signing node")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_decode)

    p = sub.add_parser("urls", help="the URLs to give Kotani (tokens masked)")
    p.add_argument("--show-secrets", action="store_true", help="print tokens in full")
    p.set_defaults(func=cmd_urls)

    p = sub.add_parser("token", help="invoice URL tokens")
    token_sub = p.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    t = token_sub.add_parser("new", help="print a new random token")
    t.set_defaults(func=cmd_token_new)

    p = sub.add_parser("db", help="database schema")
    db_sub = p.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    d = db_sub.add_parser("upgrade", help="apply pending migrations")
    d.set_defaults(func=cmd_db_upgrade)

    p = sub.add_parser("fake", help="the fake development backend")
    fake_sub = p.add_subparsers(dest="fake_command", required=True, metavar="ACTION")
    f = fake_sub.add_parser("pay", help="mark an invoice of the fake node paid")
    f.add_argument("bolt11", metavar="BOLT11")
    f.add_argument("--amount-msat", type=_amount, help="amount paid (default: the invoice's)")
    f.set_defaults(func=cmd_fake_pay)

    for module in EXTENSIONS:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        # Logs go to stderr; one-shot commands keep stdout for their answer and log only problems.
        level = settings.log_level if args.command == "serve" else "warning"
        configure(level, settings.log_format)
        redact_secrets(settings.secret_values())
        func: Command = args.func
        return func(args, settings)
    except ConfigError as exc:
        return fail(f"configuration: {exc.message}", 2)
    except ReceiverError as exc:
        return fail(f"{exc.error_code}: {exc.message}")
    except KeyboardInterrupt:
        return 130
