"""``kotani-receiver mock-kotani``: run the Kotani imitation on loopback (also for other CI).

Imports stay inside the commands: building the parser must not load the server.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from receiver.settings import Settings

if TYPE_CHECKING:
    from receiver.mock_kotani.webhooks import Chaos

DEFAULT_PORT = 8100


def add_switches(p: argparse.ArgumentParser) -> None:
    """The imitation's switches (shared by ``mock-kotani`` and ``simulate refund``)."""
    p.add_argument(
        "--clock-scale",
        type=float,
        default=1.0,
        help="divide every webhook redelivery wait and the 24 h retry window by this "
        "(3600: a day of Kotani's retries in 24 s)",
    )
    p.add_argument("--duplicates", action="store_true", help="send every delivered webhook twice")
    p.add_argument(
        "--reorder",
        action="store_true",
        help="hold new webhooks briefly and send each batch newest first",
    )
    p.add_argument(
        "--drop-first",
        action="store_true",
        help="lose the first attempt of every webhook (then redelivered with backoff)",
    )


def chaos_of(args: argparse.Namespace) -> Chaos:
    from receiver.mock_kotani.webhooks import Chaos

    return Chaos(duplicates=args.duplicates, reorder=args.reorder, drop_first=args.drop_first)


async def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from receiver.cli import local_base_url
    from receiver.mock_kotani.app import create_mock_app
    from receiver.mock_kotani.runner import MockOptions, build

    secret = args.webhook_secret
    if secret is None and settings.webhook_secrets:
        secret = settings.webhook_secrets[0].get_secret_value()
    api_key = args.api_key
    if api_key is None and settings.kotani_api_key is not None:
        api_key = settings.kotani_api_key.get_secret_value()
    options = MockOptions(
        data_dir=Path(args.data_dir),
        api_key=api_key,
        webhook_url=args.webhook_url or f"{local_base_url(settings)}/webhooks/kotani",
        webhook_secret=secret,
        network=settings.network,
        clock_scale=args.clock_scale,
        chaos=chaos_of(args),
        pay_fake_node=settings.data_dir if args.pay_fake_node else None,
    )
    mock = await build(options, Path(args.data_dir))
    print(
        f"mock-kotani on http://{args.host}:{args.port} (RECEIVER_KOTANI_BASE_URL for the "
        f"receiver); webhooks to {options.webhook_url} "
        f"({'signed' if secret else 'direct mode, unsigned'}); API key "
        f"{'required' if api_key else 'any Bearer accepted'}",
        file=sys.stderr,
        flush=True,
    )
    config = uvicorn.Config(
        create_mock_app(mock),
        host=args.host,
        port=args.port,
        log_level="warning",
        access_log=False,
        log_config=None,
    )
    await uvicorn.Server(config).serve()
    return 0


def cmd_mock_kotani(args: argparse.Namespace, settings: Settings) -> int:
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("mock-kotani: listens on loopback only (--host 127.0.0.1)", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_serve(args, settings))
    except KeyboardInterrupt:
        return 0


def register(sub: Any) -> None:
    p = sub.add_parser(
        "mock-kotani",
        help="a loopback imitation of Kotani's API and webhooks (a sandbox for CI)",
        description=(
            "Serves Kotani's v3 paths this service uses (offramp create with refund_config, "
            "submit-refund-invoice, retry-refund(s), refund-status, crypto-bridge rate/create/"
            "status/refund-config, PATCH integrator/webhook) with Kotani's envelope and error "
            "bodies, and sends signed webhooks with redelivery. Control endpoints under /_mock: "
            "POST /_mock/offramps/REF/fail-payout {stored_invoice_expired}, POST "
            "/_mock/offramps/REF/paid, POST /_mock/deposits/REF {status, expire_invoice}, "
            "GET /_mock/timeline, GET /_mock/deliveries. State in DATA_DIR/mock-kotani.sqlite3."
        ),
    )
    p.add_argument("--host", default="127.0.0.1", help="loopback address (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"default {DEFAULT_PORT}")
    p.add_argument(
        "--data-dir", default="var/mock-kotani", help="state directory (default var/mock-kotani)"
    )
    p.add_argument(
        "--api-key",
        help="the Bearer key to require (default RECEIVER_KOTANI_API_KEY; unset: any key)",
    )
    p.add_argument(
        "--webhook-url",
        help="where webhooks go until PATCH /api/v3/integrator/webhook changes it "
        "(default: this receiver's /webhooks/kotani)",
    )
    p.add_argument(
        "--webhook-secret",
        help="signing secret (default: the first RECEIVER_WEBHOOK_SECRETS; none: direct mode)",
    )
    p.add_argument(
        "--pay-fake-node",
        action="store_true",
        help="pay refund invoices on the fake node in RECEIVER_DATA_DIR (else wait for "
        "POST /_mock/offramps/REF/paid)",
    )
    add_switches(p)
    p.set_defaults(func=cmd_mock_kotani)
