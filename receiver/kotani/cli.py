"""CLI commands of the Kotani area, registered by ``receiver.cli`` (``EXTENSIONS``).

    kotani-receiver refund-config AMOUNT_MSAT --reference R       Option A refund_config (JSON)
    kotani-receiver kotani submit-invoice|retry-refund|refund-status|retry-refunds ...
    kotani-receiver bridge rate|create|status|refund-config|regenerate|watch ...

Human-readable output by default, ``--json`` for scripts. Errors are ``ReceiverError``s, printed
by ``receiver.cli.main`` as one line (exit status 1; configuration errors 2).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from receiver.db.engine import Database
from receiver.errors import ValidationFailed
from receiver.kotani.bridge import BridgeService
from receiver.kotani.client import KotaniClient
from receiver.kotani.models import (
    BridgeDepositRequest,
    BridgeDepositStatus,
    BridgeRateRequest,
    Chain,
    Token,
)
from receiver.kotani.refund_invoice import VerifiedRefundConfig
from receiver.kotani.store import BridgeStore
from receiver.kotani.wiring import expected_refund_network
from receiver.settings import Settings

Handler = Callable[[argparse.Namespace, Settings], Coroutine[Any, Any, int | None]]


def _command(handler: Handler) -> Callable[[argparse.Namespace, Settings], int]:
    def run(args: argparse.Namespace, settings: Settings) -> int:
        result = asyncio.run(handler(args, settings))
        return 0 if result is None else result

    return run


def _emit(args: argparse.Namespace, data: Any, human: Callable[[], None] | None = None) -> None:
    if getattr(args, "json", False) or human is None:
        print(json.dumps(data, indent=2, default=str))
    else:
        human()


def _pairs(data: dict[str, Any], indent: str = "") -> None:
    for key, value in data.items():
        if isinstance(value, dict):
            print(f"{indent}{key}:")
            _pairs(value, indent + "  ")
        else:
            print(f"{indent}{key + ':':<26}{'' if value is None else value}")


def _dump(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


# --- refund-config (Option A) ---------------------------------------------------------------


async def _refund_config(args: argparse.Namespace, settings: Settings) -> None:
    from receiver.kotani.refund_config import contract_json, refund_config
    from receiver.services import open_services

    async with open_services(settings) as services:
        config = await refund_config(services, args.reference, args.amount_msat)
    if settings.public_url is None:
        print(
            "# RECEIVER_PUBLIC_URL is not set: generate_invoice_url is a local address that "
            "Kotani cannot reach.",
            file=sys.stderr,
        )
    print(json.dumps(contract_json(config), indent=2))


# --- kotani (offramp refunds) ---------------------------------------------------------------


@asynccontextmanager
async def _client(settings: Settings) -> AsyncIterator[KotaniClient]:
    async with KotaniClient.from_settings(settings) as client:
        yield client


async def _submit_invoice(args: argparse.Namespace, settings: Settings) -> None:
    from receiver.verify import decode_invoice

    # Decode before it leaves: a typo'd or amountless invoice is refused here, not by Kotani.
    decoded = await asyncio.to_thread(decode_invoice, args.bolt11)
    if decoded.amount_msat is None:
        raise ValidationFailed("the invoice has no amount; Kotani needs the exact refund amount")
    if args.amount_msat is not None and decoded.amount_msat != args.amount_msat:
        raise ValidationFailed(
            f"the invoice is for {decoded.amount_msat} msat, not {args.amount_msat}"
        )
    async with _client(settings) as client:
        ack = await client.submit_refund_invoice(args.reference, decoded.bolt11)
    _emit(args, _dump(ack), lambda: print(f"submitted ({decoded.amount_msat} msat): {ack.message}"))


async def _retry_refund(args: argparse.Namespace, settings: Settings) -> None:
    async with _client(settings) as client:
        ack = await client.retry_refund(args.reference)
    _emit(args, _dump(ack), lambda: print(ack.message or "retry requested"))


async def _refund_status(args: argparse.Namespace, settings: Settings) -> None:
    async with _client(settings) as client:
        status = await client.refund_status(args.reference)
    _emit(args, _dump(status), lambda: _pairs(_dump(status)))


async def _retry_refunds(args: argparse.Namespace, settings: Settings) -> None:
    async with _client(settings) as client:
        ack = await client.retry_refunds(list(args.references))

    def human() -> None:
        print(ack.message or "retries requested")
        if ack.data not in (None, {}, []):
            print(json.dumps(ack.data, indent=2))

    _emit(args, _dump(ack), human)


# --- bridge ---------------------------------------------------------------------------------


@asynccontextmanager
async def _bridge(settings: Settings) -> AsyncIterator[BridgeService]:
    db = Database(settings.database_url)
    try:
        await db.upgrade()
        async with _client(settings) as client:
            yield BridgeService(client, BridgeStore(db), network=expected_refund_network(settings))
    finally:
        await db.dispose()


def _decimal(text: str) -> Decimal:
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError("a decimal number, e.g. 1000 or 150.5") from None
    if not value.is_finite() or value <= 0:
        raise argparse.ArgumentTypeError("a positive amount")
    return value


def _config_view(verified: VerifiedRefundConfig) -> dict[str, Any]:
    return verified.public()


def _show_config(verified: VerifiedRefundConfig) -> None:
    _pairs(_config_view(verified))


def _status_view(status: BridgeDepositStatus, verified: VerifiedRefundConfig | None) -> Any:
    data = _dump(status)
    if verified is not None:
        data["refund_config"] = _config_view(verified)
    return data


async def _bridge_rate(args: argparse.Namespace, settings: Settings) -> None:
    try:
        request = BridgeRateRequest(
            source_currency=args.currency.upper(),
            source_amount=args.amount,
            crypto_chain=args.chain,
            crypto_token=args.token,
            requested_crypto_amount=args.crypto_amount,
        )
    except ValidationError as exc:
        raise ValidationFailed(_first_error(exc)) from exc
    async with _client(settings) as client:
        rate = await client.bridge_rate(request)
    _emit(
        args,
        _dump(rate),
        lambda: _pairs(
            {
                "rate_id": rate.rate_id,
                "source": f"{rate.source_amount} {rate.source_currency}",
                "crypto": f"{rate.crypto_amount} {rate.crypto_unit} ({rate.chain}/{rate.token})",
                "net_crypto": f"{rate.net_crypto_amount} {rate.crypto_unit}",
                "total_cost": f"{rate.total_cost} {rate.source_currency}",
                "expires_at": rate.expires_at.isoformat(),
            }
        ),
    )


async def _bridge_create(args: argparse.Namespace, settings: Settings) -> None:
    if args.file == "-":
        text = sys.stdin.read()
    else:
        text = await asyncio.to_thread(Path(args.file).read_text)
    try:
        request = BridgeDepositRequest.model_validate_json(text)
    except ValidationError as exc:
        raise ValidationFailed(f"{args.file}: {_first_error(exc)}") from exc
    async with _bridge(settings) as bridge:
        deposit, verified = await bridge.create_deposit(request)
    data = _dump(deposit) | {"refund_config": _config_view(verified)}
    _emit(args, data, lambda: _pairs(data))


async def _bridge_status(args: argparse.Namespace, settings: Settings) -> None:
    async with _bridge(settings) as bridge:
        status, verified = await bridge.status(args.reference)
    data = _status_view(status, verified)
    _emit(args, data, lambda: _pairs(data))


async def _bridge_refund_config(args: argparse.Namespace, settings: Settings) -> int:
    async with _bridge(settings) as bridge:
        verified = await bridge.refund_config(args.reference)
    _emit(args, _config_view(verified), lambda: _show_config(verified))
    return 0 if verified.problem is None else 1


async def _bridge_regenerate(args: argparse.Namespace, settings: Settings) -> None:
    async with _bridge(settings) as bridge:
        verified = await bridge.regenerate(args.reference)
    if verified is None:
        _emit(args, {"regenerated": True}, lambda: print("regenerated; config not yet readable"))
        return
    _emit(args, {"regenerated": True, **_config_view(verified)}, lambda: _show_config(verified))


async def _bridge_watch(args: argparse.Namespace, settings: Settings) -> int:
    async with _bridge(settings) as bridge:
        status = await bridge.watch(args.reference)
        if args.register_only:
            data = {"watching": args.reference, "status": status.status.value}
            _emit(args, data, lambda: print(f"{args.reference} is watched by the keeper"))
            return 0
        interval = args.interval or settings.bridge_poll_interval
        seen = 0
        while True:
            outcome = await bridge.sync(args.reference)
            events = await bridge.store.events(args.reference)
            for event in events[seen:]:
                if args.json:
                    print(json.dumps(event.payload()), flush=True)
                else:
                    when = event.at.isoformat()
                    print(f"{when}  {event.kind.value:<30} {json.dumps(event.detail)}", flush=True)
            seen = len(events)
            if outcome.status.status.is_terminal or args.once:
                return 0
            await asyncio.sleep(interval)


def _first_error(exc: ValidationError) -> str:
    error = exc.errors(include_input=False, include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg']}"


# --- registration ---------------------------------------------------------------------------


def _amount(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError("an integer number of msat, e.g. 1500000")
    return int(text)


def _json_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def register(sub: Any) -> None:
    """Add ``refund-config``, ``kotani`` and ``bridge`` to the root parser's subcommands."""
    p = sub.add_parser(
        "refund-config", help="Option A: a refund_config for POST /api/v3/offramp (JSON)"
    )
    p.add_argument("amount_msat", type=_amount, metavar="AMOUNT_MSAT")
    p.add_argument("--reference", required=True, help="the offramp's referenceId")
    p.set_defaults(func=_command(_refund_config))

    p = sub.add_parser("kotani", help="Kotani's offramp refund API")
    ksub = p.add_subparsers(dest="kotani_command", required=True, metavar="ACTION")
    k = ksub.add_parser("submit-invoice", help="submit a refund invoice (Option B)")
    k.add_argument("reference", metavar="REFERENCE_ID")
    k.add_argument("bolt11", metavar="BOLT11")
    k.add_argument("--amount-msat", type=_amount, help="refuse unless the invoice is for this")
    k.set_defaults(func=_command(_submit_invoice))
    k = ksub.add_parser("retry-refund", help="retry a FAILED refund")
    k.add_argument("reference", metavar="REFERENCE_ID")
    k.set_defaults(func=_command(_retry_refund))
    k = ksub.add_parser("refund-status", help="a refund's status")
    k.add_argument("reference", metavar="REFERENCE_ID")
    k.set_defaults(func=_command(_refund_status))
    k = ksub.add_parser("retry-refunds", help="retry several FAILED refunds")
    k.add_argument("references", nargs="+", metavar="REFERENCE_ID")
    k.set_defaults(func=_command(_retry_refunds))
    for action in ksub.choices.values():
        _json_flag(action)

    p = sub.add_parser("bridge", help="Kotani crypto-bridge deposits and their refund configs")
    bsub = p.add_subparsers(dest="bridge_command", required=True, metavar="ACTION")
    b = bsub.add_parser("rate", help="a rate quote (rate_id valid 60 s, single use)")
    b.add_argument("--currency", required=True, help="source fiat currency, e.g. KES")
    b.add_argument("--amount", required=True, type=_decimal, help="source fiat amount")
    b.add_argument("--chain", type=Chain, default=Chain.LIGHTNING, choices=list(Chain))
    b.add_argument("--token", type=Token, default=Token.MSAT, choices=list(Token))
    b.add_argument("--crypto-amount", type=_amount, help="requested crypto amount (validation)")
    b.set_defaults(func=_command(_bridge_rate))
    b = bsub.add_parser("create", help="create a deposit from a JSON body (seed 004 shape)")
    b.add_argument("file", metavar="FILE", help="JSON file with the request body, - for stdin")
    b.set_defaults(func=_command(_bridge_create))
    b = bsub.add_parser("status", help="a deposit's status (its refund invoice checked)")
    b.add_argument("reference", metavar="KOTANI_REFERENCE_ID")
    b.set_defaults(func=_command(_bridge_status))
    b = bsub.add_parser("refund-config", help="the current refund config, invoice checked")
    b.add_argument("reference", metavar="KOTANI_REFERENCE_ID")
    b.set_defaults(func=_command(_bridge_refund_config))
    b = bsub.add_parser("regenerate", help="regenerate an expired refund invoice (rules apply)")
    b.add_argument("reference", metavar="KOTANI_REFERENCE_ID")
    b.set_defaults(func=_command(_bridge_regenerate))
    b = bsub.add_parser("watch", help="follow a deposit, regenerating its refund invoice")
    b.add_argument("reference", metavar="KOTANI_REFERENCE_ID")
    b.add_argument(
        "--interval", type=float, help="seconds between polls (RECEIVER_BRIDGE_POLL_INTERVAL)"
    )
    b.add_argument("--once", action="store_true", help="one poll, then exit")
    b.add_argument(
        "--register-only", action="store_true", help="only register it for the service's keeper"
    )
    b.set_defaults(func=_command(_bridge_watch))
    for action in bsub.choices.values():
        _json_flag(action)


__all__ = ["register"]
