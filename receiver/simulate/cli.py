"""``kotani-receiver simulate invoice|webhook|refund|replay``."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from receiver.mock_kotani.cli import add_switches, chaos_of
from receiver.settings import Settings

EVENTS = (
    "refund.completed",
    "refund.failed",
    "refund.lightning.invoice_needed",
    "transaction.offramp.status.updated",
    "transaction.deposit.status.updated",
    "transaction.withdrawal.status.updated",
    "transaction.onramp.status.updated",
    "transaction.status.updated",
    "payment.confirmed",
    "kyc.status.changed",
    "settlement.approved",
    "settlement.processed",
    "settlement.batch.processed",
    "system.event",
)
"""The events ``simulate webhook`` knows data for (CONTRACT.md §3)."""


def _run(play: Coroutine[Any, Any, int], url: str) -> int:
    """Run one play; a receiver that does not answer is one line, not a traceback."""
    import httpx

    try:
        return asyncio.run(play)
    except httpx.HTTPError as exc:
        print(
            f"simulate: no answer from {url} ({type(exc).__name__}): is `kotani-receiver serve` "
            "running there, with this environment?",
            file=sys.stderr,
        )
        return 1


def _amount(text: str) -> int:
    if not text.isdigit() or int(text) <= 0:
        raise argparse.ArgumentTypeError("a positive integer number of msat, e.g. 1500000")
    return int(text)


def _invoice(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.simulate.plays import play_invoice
    from receiver.simulate.target import target_of

    target = target_of(settings, args.url)
    return _run(play_invoice(target, args.amount_msat, args.reference), target.base_url)


def _webhook(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.simulate.plays import play_webhook
    from receiver.simulate.target import target_of

    target = target_of(settings, args.url)
    play = play_webhook(
        target, args.event, args.reference, args.amount_msat, unsigned=args.unsigned
    )
    return _run(play, target.base_url)


def _refund(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.simulate.refund import RefundPlay, play_refund
    from receiver.simulate.target import target_of

    target = target_of(settings, args.url)
    play = RefundPlay(
        amount_msat=args.amount_msat,
        option=args.option,
        chaos=chaos_of(args),
        clock_scale=args.clock_scale,
        timeout=args.timeout,
        reference=args.reference,
    )
    return _run(play_refund(settings, target, play), target.base_url)


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    from receiver.simulate.plays import play_replay
    from receiver.simulate.target import target_of

    target = target_of(settings, args.url)
    return _run(play_replay(target, Path(args.file)), target.base_url)


def register(sub: Any) -> None:
    p = sub.add_parser(
        "simulate",
        help="play Kotani against a running receiver (invoice, webhook, refund, replay)",
        description="Reads the receiver's own settings (token, RECEIVER_WEBHOOK_SECRETS, "
        "RECEIVER_API_KEY): run it with the receiver's environment.",
    )
    ssub = p.add_subparsers(dest="simulate_command", required=True, metavar="PLAY")

    def url_flag(q: argparse.ArgumentParser) -> None:
        q.add_argument(
            "--url", help="the receiver's base URL (default: its local address; or a tunnel's)"
        )

    q = ssub.add_parser(
        "invoice", help="call the generate_invoice_url and judge the answer as Kotani would"
    )
    q.add_argument("--amount-msat", type=_amount, required=True)
    q.add_argument("--reference", help="reference_id (default: a random SIM-…)")
    url_flag(q)
    q.set_defaults(func=_invoice)

    q = ssub.add_parser("webhook", help="send one documented event with realistic data, signed")
    q.add_argument("event", choices=EVENTS, metavar="EVENT", help=", ".join(EVENTS))
    q.add_argument("--reference", required=True, help="the referenceId in the data")
    q.add_argument("--amount-msat", type=_amount, default=1_500_000, help="default 1500000")
    q.add_argument(
        "--unsigned",
        action="store_true",
        help="direct mode: the bare data object, no signature, to /webhooks/kotani/<token>",
    )
    url_flag(q)
    q.set_defaults(func=_webhook)

    q = ssub.add_parser(
        "refund",
        help="a whole refund against the Kotani imitation (Option A or B), then the timeline",
        description="Starts the Kotani imitation in this process (on the port of "
        "RECEIVER_KOTANI_BASE_URL when it is loopback: the receiver must have been started with "
        "that URL for Option B), creates an offramp whose payout fails, lets the refund run, "
        "pays the invoice on the receiver's fake node, and prints both sides' timeline.",
    )
    q.add_argument("--amount-msat", type=_amount, required=True)
    q.add_argument(
        "--option",
        choices=("a", "b"),
        default="b",
        help="a: Kotani calls the generate_invoice_url; b: invoice_needed, the receiver "
        "submits (default)",
    )
    q.add_argument("--reference", help="the offramp's referenceId (default: a random SIM-…)")
    q.add_argument(
        "--timeout", type=float, default=60.0, help="seconds to wait for completion (default 60)"
    )
    add_switches(q)
    url_flag(q)
    q.set_defaults(func=_refund)

    q = ssub.add_parser(
        "replay", help="resend deliveries captured with `events show` (a file, - for stdin)"
    )
    q.add_argument("file", metavar="FILE")
    url_flag(q)
    q.set_defaults(func=_replay)
