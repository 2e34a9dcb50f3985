"""``kotani-receiver check``: is this installation able to mint? One table, a fix per failure.

For each backend in ``RECEIVER_BACKENDS``: its settings load, it is reachable, it accepts our
credentials, its network is ``RECEIVER_NETWORK``, its node id; with ``--mint``, a real 1-sat
invoice minted and verified like any other (``receiver.verify``). Then the database answers and,
when ``RECEIVER_PUBLIC_URL`` is set, ``/healthz`` answers through the public address (what Kotani
will call). Exit status 0 when everything passed, 1 otherwise. Nothing printed carries a secret:
backend messages come from ``receiver.errors`` (scrubbed at the HTTP boundary).
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from pydantic import SecretStr

from receiver.amounts import Msat
from receiver.errors import (
    BackendAuthError,
    BackendError,
    BackendHostile,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    ConfigError,
    InvalidInvoice,
)
from receiver.lightning.base import BackendContext, LightningBackend, Network, NodeInfo
from receiver.lightning.registry import backend_class, load_backend
from receiver.outbound import OutboundError, classify, exchange, outbound_client
from receiver.settings import Settings

PROBE_SECONDS = 6.0
"""Each backend gets this long for ``info`` and again for the test mint."""
TEST_AMOUNT = Msat(1000)
"""``--mint`` mints 1 sat: representable by every backend, sats-only ones included."""


@dataclass(frozen=True)
class Row:
    """One line of the table; ``ok`` None means not applicable / not checked."""

    component: str
    check: str
    ok: bool | None
    detail: str
    fix: str = ""


def _prefix(name: str) -> str:
    try:
        prefix = backend_class(name).Config.model_config.get("env_prefix", "")
    except ConfigError:
        return f"RECEIVER_{name.upper()}_"
    return str(prefix)


def _url_var(name: str) -> str:
    prefix = _prefix(name)
    return f"{prefix}LNADDRESS" if prefix == "RECEIVER_" else f"{prefix}URL"


def _credential_vars(name: str) -> str:
    try:
        config = backend_class(name).Config
    except ConfigError:
        return f"RECEIVER_{name.upper()}_*"
    prefix = str(config.model_config.get("env_prefix", ""))
    names = [
        f"{prefix}{field.upper()}"
        for field, info in config.model_fields.items()
        if info.annotation is SecretStr or info.annotation == SecretStr | None
    ]
    return " / ".join(names) or "its credentials"


def fix_for(name: str, exc: BackendError, network: Network) -> str:
    """The one-line fix for a backend failure."""
    url = _url_var(name)
    if isinstance(exc, InvalidInvoice):
        return {
            "network": f"the node mints for another network: set RECEIVER_NETWORK or use a "
            f"{network.value} node",
            "amount": f"{name} does not mint exact amounts: list an msat-exact backend first",
            "node_id": f"the invoice is not signed by {name}'s node: check {url}",
            "expiry": "the invoice expires too soon or is dated wrongly: check the node's clock "
            "and RECEIVER_MIN_VALIDITY",
            "description_hash": f"{name} does not commit to the requested description",
        }.get(exc.reason, f"{name} returned an invoice that fails verification: check {url}")
    if isinstance(exc, BackendAuthError):
        return f"check {_credential_vars(name)} (the node refused them)"
    if isinstance(exc, BackendTimeout):
        return f"{name} did not answer in time: check {url}, firewalls and the node's load"
    if isinstance(exc, BackendHostile):
        return f"{url} answered in a way refused unread (see above): check that it is {name}"
    if isinstance(exc, BackendProtocolError):
        return f"{url} does not answer like {name}'s API: check the scheme, host and port"
    if isinstance(exc, BackendRejected):
        return f"{name} refused the request: see its message above"
    if "TLS" in exc.message and name == "lnd":
        return "set RECEIVER_LND_CERT to LND's tls.cert (or use a certificate the system trusts)"
    if "TLS" in exc.message:
        return f"the node's TLS certificate is not trusted for the host in {url}"
    return f"check {url} and that {name} is running and reachable from here"


async def _check_backend(
    name: str, settings: Settings, mint: bool, given: LightningBackend | None
) -> list[Row]:
    component = f"backend {name}"
    rows: list[Row] = []
    backend = given
    if backend is None:
        try:
            backend = load_backend(name, _context(settings))
        except ConfigError as exc:
            return [
                Row(
                    component,
                    "configured",
                    False,
                    exc.message,
                    "set the variables named above (environment or .env; see .env.example)",
                )
            ]
    rows.append(Row(component, "configured", True, repr(backend)))
    try:
        info = await _info(backend)
    except BackendError as exc:
        reached = isinstance(exc, BackendAuthError | BackendRejected)
        rows.append(Row(component, "reachable", reached, "yes" if reached else exc.message))
        if reached:
            rows.append(
                Row(
                    component,
                    "authenticated",
                    False,
                    exc.message,
                    fix_for(name, exc, settings.network),
                )
            )
        else:
            rows[-1] = Row(
                component, "reachable", False, exc.message, fix_for(name, exc, settings.network)
            )
        await _close(backend, given)
        return rows
    rows.append(Row(component, "reachable", True, "yes"))
    rows.append(Row(component, "authenticated", True, "yes"))
    rows.append(_network_row(component, name, info, settings.network))
    rows.append(
        Row(
            component,
            "node id",
            None if info.node_id is None else True,
            info.node_id or "not reported by this backend",
        )
    )
    if mint:
        rows.append(await _mint_row(component, name, backend, info, settings))
    await _close(backend, given)
    return rows


def _network_row(component: str, name: str, info: NodeInfo, network: Network) -> Row:
    if info.network is None:
        return Row(component, "network", None, "not reported (checked by --mint)")
    if info.network != network:
        return Row(
            component,
            "network",
            False,
            f"{info.network.value}, but RECEIVER_NETWORK is {network.value}",
            f"set RECEIVER_NETWORK={info.network.value} or point {name} at a {network.value} node",
        )
    return Row(component, "network", True, info.network.value)


async def _info(backend: LightningBackend) -> NodeInfo:
    try:
        async with asyncio.timeout(PROBE_SECONDS):
            return await backend.info()
    except TimeoutError as exc:
        raise BackendTimeout(f"{backend.name}: no answer within {PROBE_SECONDS:.0f} s") from exc


async def _mint_row(
    component: str, name: str, backend: LightningBackend, info: NodeInfo, settings: Settings
) -> Row:
    from receiver.verify import Expectation, verify_invoice

    try:
        async with asyncio.timeout(PROBE_SECONDS):
            minted = await backend.create_invoice(
                TEST_AMOUNT, "kotani-receiver check", settings.invoice_expiry
            )
        expect = Expectation(
            network=settings.network,
            amount_msat=TEST_AMOUNT,
            payment_hash=minted.payment_hash,
            node_id=minted.node_id or info.node_id,
            min_validity=settings.min_validity,
        )
        decoded = await asyncio.to_thread(verify_invoice, minted.bolt11, expect, time.time())
    except TimeoutError:
        exc: BackendError = BackendTimeout(f"{name}: no invoice within {PROBE_SECONDS:.0f} s")
        return Row(
            component, "test invoice", False, exc.message, fix_for(name, exc, settings.network)
        )
    except BackendError as exc:
        return Row(
            component, "test invoice", False, exc.message, fix_for(name, exc, settings.network)
        )
    return Row(
        component,
        "test invoice",
        True,
        f"1 sat, verified ({decoded.network.value}, signed by {decoded.payee[:16]}…)",
    )


async def _close(backend: LightningBackend, given: LightningBackend | None) -> None:
    if given is None:
        await backend.aclose()


def _context(settings: Settings) -> BackendContext:
    from receiver.services import backend_context

    return backend_context(settings)


async def _check_database(settings: Settings) -> Row:
    from receiver.db import Database

    db = Database(settings.database_url)
    shown = db.url.render_as_string(hide_password=True)
    try:
        ok = await db.ping()
    finally:
        await db.dispose()
    if ok:
        return Row("database", "reachable", True, shown)
    return Row(
        "database",
        "reachable",
        False,
        f"cannot query {shown}",
        "check RECEIVER_DATABASE_URL (and that the database server is up)",
    )


async def _check_public_url(settings: Settings) -> Row:
    if settings.public_url is None:
        return Row("public url", "/healthz", None, "RECEIVER_PUBLIC_URL not set")
    url = str(settings.public_url).rstrip("/") + "/healthz"
    fix = (
        "Kotani calls RECEIVER_PUBLIC_URL: check DNS, TLS and that the proxy forwards to a "
        "running `kotani-receiver serve`"
    )
    try:
        async with outbound_client(timeout=10.0) as client:
            answer = await exchange(client, "GET", url, timeout=10.0)
    except (httpx.HTTPError, TimeoutError, OutboundError) as exc:
        return Row("public url", "/healthz", False, f"{url}: {classify(exc)[1]}", fix)
    if answer.status != 200:
        return Row("public url", "/healthz", False, f"{url}: HTTP {answer.status}", fix)
    return Row("public url", "/healthz", True, url)


async def run_checks(
    settings: Settings,
    *,
    mint: bool = False,
    backends: Sequence[LightningBackend] | None = None,
) -> list[Row]:
    """Every check, in table order. ``backends`` replaces ``RECEIVER_BACKENDS`` (tests)."""
    if backends is not None:
        jobs = [_check_backend(b.name, settings, mint, b) for b in backends]
    else:
        jobs = [_check_backend(name, settings, mint, None) for name in settings.backends]
    per_backend = await asyncio.gather(*jobs)
    rows = [row for rows in per_backend for row in rows]
    rows.append(await _check_database(settings))
    rows.append(await _check_public_url(settings))
    return rows


def render(rows: Sequence[Row]) -> str:
    """The table: one row per check; a failure is followed by its fix."""
    result = {True: "ok", False: "FAIL", None: "-"}
    width_c = max(len("COMPONENT"), *(len(r.component) for r in rows))
    width_k = max(len("CHECK"), *(len(r.check) for r in rows))
    lines = [f"{'COMPONENT':<{width_c}}  {'CHECK':<{width_k}}  RESULT  DETAIL"]
    for row in rows:
        lines.append(
            f"{row.component:<{width_c}}  {row.check:<{width_k}}  {result[row.ok]:<6}  {row.detail}"
        )
        if row.ok is False and row.fix:
            lines.append(f"{'':<{width_c}}  {'':<{width_k}}  {'':<6}  fix: {row.fix}")
    failed = sum(1 for r in rows if r.ok is False)
    lines.append(f"{failed} check(s) failed" if failed else "all checks passed")
    return "\n".join(lines)


def cmd_check(args: argparse.Namespace, settings: Settings) -> int:
    rows = asyncio.run(run_checks(settings, mint=args.mint))
    print(render(rows))
    failed = any(r.ok is False for r in rows)
    if not failed:
        from receiver.inbox.stats import anything_arrived

        if not asyncio.run(anything_arrived(settings.database_url)):
            print(
                "\nNothing has reached this receiver yet. Play Kotani against it: "
                "`kotani-receiver simulate invoice --amount-msat 1500000`, then "
                "`kotani-receiver simulate refund --amount-msat 1500000`."
            )
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    """Add ``check`` to the ``kotani-receiver`` command line."""
    parser = subparsers.add_parser(
        "check", help="check backends, network, database and PUBLIC_URL (exit 1 on failure)"
    )
    parser.add_argument(
        "--mint", action="store_true", help="also mint and verify a real 1-sat invoice per backend"
    )
    parser.set_defaults(func=cmd_check)
