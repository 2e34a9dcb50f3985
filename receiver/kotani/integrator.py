"""``kotani-receiver kotani webhook register|rotate``: the integrator's webhook at Kotani.

Kotani's ``PATCH /api/v3/integrator/webhook`` (``UpdateIntegratorWebhookDto``: ``webhook_url``,
``webhook_secret``, ``webhook_events``) sets where Kotani sends webhooks and the secret it signs
them with. Settings here are environment variables, so this command cannot change the running
receiver's secrets itself; a rotation is therefore two runs, and no delivery can fail in between:

1. ``rotate`` (no ``--new-secret``) makes a secret and prints the ``RECEIVER_WEBHOOK_SECRETS``
   line to set: the new secret first, the current ones after it (the receiver verifies with each).
   The operator sets it and restarts the receiver. Nothing is sent to Kotani.
2. ``rotate --new-secret S`` (run with the new environment) checks that ``S`` is configured and
   that the running receiver accepts a delivery signed with it (a signed ``system.event`` probe to
   its webhook URL), and only then PATCHes Kotani. It prints the line without the old secrets, to
   set after the grace period (default 24 h: Kotani redelivers for up to 24 h).
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import sys
from typing import Any

from receiver.settings import Settings

PATH = "/api/v3/integrator/webhook"
GRACE = 24 * 3600
DEFAULT_EVENTS = (
    "refund.lightning.invoice_needed",
    "refund.completed",
    "refund.failed",
    "transaction.offramp.status.updated",
    "transaction.deposit.status.updated",
)


async def update_webhook(settings: Settings, body: dict[str, Any]) -> Any:
    """PATCH the integrator webhook through the service's one Kotani client."""
    from receiver.kotani.client import KotaniClient

    async with KotaniClient.from_settings(settings) as kotani:
        # The client has no public method for this endpoint yet (its HTTP layer is being
        # rewritten): its one call path, with its auth, deadline and error mapping, is used.
        return (await kotani._call("PATCH", PATH, body)).data


def _mask(secret: str) -> str:
    return secret[:6] + "…" if len(secret) > 10 else "…"


def _secrets(settings: Settings) -> list[str]:
    return [s.get_secret_value() for s in settings.webhook_secrets]


def _events(text: str | None) -> list[str] | None:
    if text is None:
        return list(DEFAULT_EVENTS)
    return [e.strip() for e in text.split(",") if e.strip()] or None


def _webhook_url(args: argparse.Namespace, settings: Settings) -> str:
    from receiver.cli import base_url

    return str(args.url or f"{base_url(settings)}/webhooks/kotani")


async def _probe(url: str, secret: str) -> int:
    """Status the receiver answers to a ``system.event`` signed with ``secret``."""
    import httpx

    from receiver.mock_kotani.webhooks import envelope

    data = {"message": "kotani-receiver webhook rotation probe", "nonce": secrets.token_hex(8)}
    body, headers = envelope("system.event", data, secret)
    async with httpx.AsyncClient(timeout=10) as http:
        return (await http.post(url, content=body, headers=headers)).status_code


async def _register(args: argparse.Namespace, settings: Settings) -> int:
    current = _secrets(settings)
    secret = args.secret or (current[0] if current else None)
    if secret is None:
        print(
            "kotani webhook register: set RECEIVER_WEBHOOK_SECRETS first (or --secret)",
            file=sys.stderr,
        )
        return 2
    body: dict[str, Any] = {"webhook_url": _webhook_url(args, settings), "webhook_secret": secret}
    events = _events(args.events)
    if events:
        body["webhook_events"] = events
    data = await update_webhook(settings, body)
    print(f"Kotani now sends webhooks to {body['webhook_url']}, signed with {_mask(secret)}")
    if isinstance(data, dict) and data:
        shown = {k: v for k, v in data.items() if "secret" not in k}
        print(f"Kotani answered: {shown}")
    return 0


async def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    current = _secrets(settings)
    if args.new_secret is None:
        new = f"whsec_{secrets.token_hex(24)}"
        print("Step 1 of 2: make the receiver accept the new secret before Kotani uses it.")
        print("Set this and restart the receiver (the new secret first, the old ones kept):\n")
        print(f"RECEIVER_WEBHOOK_SECRETS={','.join([new, *current])}\n")
        print("Then, with that environment, run step 2 (it checks, then tells Kotani):\n")
        print(f"kotani-receiver kotani webhook rotate --new-secret {new}")
        return 0
    new = args.new_secret
    if new not in current:
        print(
            "kotani webhook rotate: the new secret is not in RECEIVER_WEBHOOK_SECRETS here; "
            "set it (step 1) and run this with the receiver's environment",
            file=sys.stderr,
        )
        return 2
    url = _webhook_url(args, settings)
    status = await _probe(url, new)
    if not 200 <= status < 300:
        print(
            f"kotani webhook rotate: {url} answered {status} to a delivery signed with the new "
            "secret: restart the receiver with the new RECEIVER_WEBHOOK_SECRETS first. "
            "Kotani was not changed.",
            file=sys.stderr,
        )
        return 1
    print(f"the receiver at {url} accepts the new secret (probe answered {status})")
    body: dict[str, Any] = {"webhook_url": url, "webhook_secret": new}
    events = _events(args.events)
    if events:
        body["webhook_events"] = events
    await update_webhook(settings, body)
    print(f"Kotani now signs with {_mask(new)}.")
    grace = args.grace
    print(
        f"\nStep 2 done. After the grace period ({grace / 3600:g} h; Kotani redelivers for up to "
        "24 h) drop the old secret(s):\n"
    )
    print(f"RECEIVER_WEBHOOK_SECRETS={new}")
    return 0


def _kotani_actions(sub: Any) -> Any:
    """The ``kotani`` command's own subcommands (registered by ``receiver.kotani.cli``)."""
    parser = sub.choices["kotani"]
    for action in parser._actions:  # argparse keeps no public handle on a parser's subparsers
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise RuntimeError("the kotani command has no subcommands")


def register(sub: Any) -> None:
    p = _kotani_actions(sub).add_parser(
        "webhook",
        help="register the webhook URL with Kotani, rotate its signing secret",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    wsub = p.add_subparsers(dest="webhook_command", required=True, metavar="ACTION")

    def common(q: argparse.ArgumentParser) -> None:
        q.add_argument("--url", help="webhook URL (default: RECEIVER_PUBLIC_URL/webhooks/kotani)")
        q.add_argument("--events", help=f"comma-separated (default: {','.join(DEFAULT_EVENTS)})")

    q = wsub.add_parser("register", help="PATCH Kotani with the URL and the current secret")
    q.add_argument("--secret", help="signing secret (default: the first RECEIVER_WEBHOOK_SECRETS)")
    common(q)
    q.set_defaults(func=lambda a, s: asyncio.run(_register(a, s)))
    q = wsub.add_parser("rotate", help="a new signing secret with no window of failed deliveries")
    q.add_argument("--new-secret", help="step 2: the secret printed by step 1")
    q.add_argument("--grace", type=float, default=GRACE, help="seconds to keep the old secret")
    common(q)
    q.set_defaults(func=lambda a, s: asyncio.run(_rotate(a, s)))
