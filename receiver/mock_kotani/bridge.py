"""The crypto-bridge endpoints of the imitation (seeds 000, 001, 003, 004).

Rate quotes live 60 s and are single use. A Lightning deposit gets a refund invoice that Kotani
itself issues (here: signed by the imitation's own fake node, ``receiver.lightning.fake``), valid
15 minutes; ``POST .../refund-config`` regenerates it under Kotani's four rules
(``rules.check_regeneration`` -> ``receiver.kotani.bridge_rules``). Answers are built and then
validated with the client's models (``BridgeRate``, ``BridgeDeposit``, ``BridgeDepositStatus``,
``RefundConfig``), so they are the shapes the service parses.
"""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.routing import Route

from receiver.amounts import Msat
from receiver.kotani.bridge_rules import RegenerationState
from receiver.kotani.models import (
    BridgeDeposit,
    BridgeDepositRequest,
    BridgeDepositStatus,
    BridgeRate,
    BridgeRateRequest,
    Chain,
    DepositStatus,
    RefundConfig,
)
from receiver.mock_kotani.http import api, body_of
from receiver.mock_kotani.rules import Refusal, check_regeneration

if TYPE_CHECKING:
    from receiver.mock_kotani.app import MockKotani

RATE = "rate"
DEPOSIT = "deposit"
RATE_TTL = 60.0
INVOICE_TTL = 15 * 60
MSAT_PER_FIAT_UNIT = 10_000
"""The imitation's exchange rate: 1 unit of any fiat buys 10 sats."""


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _dump(model: Any, doc: dict[str, Any]) -> dict[str, Any]:
    data: dict[str, Any] = model.model_validate(doc).model_dump(mode="json", exclude_none=True)
    return data


async def create_rate(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    quote = BridgeRateRequest.model_validate(await body_of(request))
    crypto = int(quote.source_amount * MSAT_PER_FIAT_UNIT)
    now = time.time()
    doc = {
        "rate_id": f"rate-{secrets.token_hex(8)}",
        "source_amount": str(quote.source_amount),
        "source_currency": quote.source_currency,
        "crypto_amount": crypto,
        "crypto_unit": "MSAT"
        if quote.crypto_chain is Chain.LIGHTNING
        else quote.crypto_token.value,
        "chain": quote.crypto_chain.value,
        "token": quote.crypto_token.value,
        "exchange_rate": {"msat_per_unit": MSAT_PER_FIAT_UNIT},
        "fees": {"total": 0},
        "total_cost": str(quote.source_amount),
        "net_crypto_amount": crypto,
        "expires_at": _iso(now + RATE_TTL),
        "created_at": _iso(now),
        "_used": False,
        "_expires": now + RATE_TTL,
    }
    await mock.store.put(RATE, str(doc["rate_id"]), doc)
    return _dump(BridgeRate, {k: v for k, v in doc.items() if not k.startswith("_")})


async def _mint_refund_invoice(mock: MockKotani, amount_msat: int, ref: str) -> tuple[str, str]:
    minter = mock.minter()
    minted = await minter.create_invoice(Msat(amount_msat), f"Kotani refund {ref}", INVOICE_TTL)
    return minted.bolt11, minted.payment_hash


async def create_deposit(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    body = await body_of(request)
    deposit = BridgeDepositRequest.model_validate(body)
    if deposit.rate_id is not None:
        rate = await mock.store.get(RATE, deposit.rate_id)
        if rate is None:
            raise Refusal(400, "Invalid rate_id")
        if rate["_used"]:
            raise Refusal(400, "Rate has already been used")
        if time.time() > float(rate["_expires"]):
            raise Refusal(400, "Rate has expired")
        rate["_used"] = True
        await mock.store.put(RATE, deposit.rate_id, rate)
    ref = f"KOTANI-BR-{int(time.time())}-{secrets.token_hex(3).upper()}"
    now = time.time()
    config: dict[str, Any]
    payment_hash = deposit.crypto_payment.payment_hash or secrets.token_hex(32)
    if deposit.chain is Chain.LIGHTNING:
        amount = deposit.crypto_payment.amount_msat
        if amount is None or amount <= 0:
            raise Refusal(400, "Bad Request: crypto_payment.amount_msat is required on Lightning")
        bolt11, refund_hash = await _mint_refund_invoice(mock, int(amount), ref)
        config = {
            "primary_method": "CRYPTO_INVOICE",
            "chain": "LIGHTNING",
            "token": "MSAT",
            "refund_invoice": bolt11,
            "refund_payment_hash": refund_hash,
            "refund_amount_msat": int(amount),
            "expires_at": _iso(now + INVOICE_TTL),
        }
    else:
        config = {
            "primary_method": "CRYPTO_ADDRESS",
            "chain": deposit.chain.value,
            "token": deposit.token.value,
            "fallback_address": deposit.crypto_payment.address or "mock-address",
            "refund_crypto_amount": str(deposit.crypto_payment.crypto_amount or Decimal(0)),
        }
    doc = {
        "kotani_reference_id": ref,
        "provider_reference_id": deposit.provider_reference_id,
        "status": DepositStatus.DEPOSIT_INITIATED.value,
        "transaction_type": deposit.transaction_type.value,
        "chain": deposit.chain.value,
        "token": deposit.token.value,
        "payment_hash": payment_hash,
        "amount": str(deposit.amount),
        "currency": deposit.source_currency,
        "refund_config": config,
        "regeneration_count": 0,
        "last_regenerated_at": None,
        "created_at": _iso(now),
    }
    await mock.store.put(DEPOSIT, ref, doc)
    await mock.store.note(ref, "kotani: crypto-bridge deposit created")
    return _dump(
        BridgeDeposit,
        {
            **{k: doc[k] for k in ("kotani_reference_id", "provider_reference_id", "status")},
            **{k: doc[k] for k in ("chain", "token", "payment_hash", "created_at")},
            "refund_config": config,
            "estimated_completion": _iso(now + 300),
        },
    )


async def _deposit(mock: MockKotani, ref: str) -> dict[str, Any]:
    doc = await mock.store.get(DEPOSIT, ref)
    if doc is None:
        raise Refusal(404, "Transaction not found")
    return doc


def _config_view(doc: dict[str, Any]) -> dict[str, Any]:
    count = int(doc["regeneration_count"])
    return {
        **doc["refund_config"],
        "regeneration_count": count,
        "regenerations_remaining": max(0, 3 - count),
    }


async def deposit_status(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    doc = await _deposit(mock, request.path_params["ref"])
    stage = {
        "status": doc["status"],
        "timestamp": doc["created_at"],
        "amount": doc["amount"],
        "currency": doc["currency"],
        "chain": doc["chain"],
        "token": doc["token"],
    }
    view = {
        **{k: doc[k] for k in ("kotani_reference_id", "provider_reference_id", "status")},
        **{k: doc[k] for k in ("transaction_type", "chain", "token")},
        "stages": {"deposit": stage, "crypto_payment": stage, "settlement": stage},
    }
    if doc["status"] in ("FAILED", "PAYMENT_SENT"):
        view["refund_config"] = _config_view(doc)
    return _dump(BridgeDepositStatus, view)


async def get_refund_config(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    return _dump(RefundConfig, _config_view(await _deposit(mock, request.path_params["ref"])))


def _when(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.replace("Z", "+00:00"))


async def regenerate_refund_config(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    ref = request.path_params["ref"]
    doc = await _deposit(mock, ref)
    config = doc["refund_config"]
    now = datetime.now(UTC)
    state = RegenerationState(
        reference=ref,
        chain=Chain(doc["chain"]),
        status=DepositStatus(doc["status"]),
        expires_at=_when(config.get("expires_at")),
        regeneration_count=int(doc["regeneration_count"]),
        last_regenerated_at=_when(doc["last_regenerated_at"]),
    )
    try:
        check_regeneration(state, now)
    except Refusal as exc:
        await mock.store.note(ref, f"kotani: regeneration refused: {exc.message}")
        raise
    bolt11, payment_hash = await _mint_refund_invoice(mock, int(config["refund_amount_msat"]), ref)
    config.update(
        refund_invoice=bolt11,
        refund_payment_hash=payment_hash,
        expires_at=_iso(now.timestamp() + INVOICE_TTL),
    )
    doc["regeneration_count"] = int(doc["regeneration_count"]) + 1
    doc["last_regenerated_at"] = now.isoformat()
    await mock.store.put(DEPOSIT, ref, doc)
    await mock.store.note(
        ref, f"kotani: refund invoice regenerated ({doc['regeneration_count']}/3)"
    )
    return _dump(RefundConfig, _config_view(doc))


async def mock_deposit(request: Request) -> Any:
    """``POST /_mock/deposits/{ref}``: ``status``, ``expire_invoice``, ``last_regenerated_ago``."""
    mock: MockKotani = request.app.state.mock
    ref = request.path_params["ref"]
    doc = await _deposit(mock, ref)
    body = await body_of(request)
    if "status" in body:
        try:
            doc["status"] = DepositStatus(body["status"]).value
        except ValueError:
            raise Refusal(400, f"unknown status {body['status']!r}") from None
    if body.get("expire_invoice") and "expires_at" in doc["refund_config"]:
        doc["refund_config"]["expires_at"] = _iso(time.time() - 1)
    ago = body.get("last_regenerated_ago")
    if isinstance(ago, int | float) and doc["last_regenerated_at"] is not None:
        doc["last_regenerated_at"] = (datetime.now(UTC) - timedelta(seconds=ago)).isoformat()
    await mock.store.put(DEPOSIT, ref, doc)
    return _config_view(doc)


def routes() -> list[Route]:
    base = "/api/v3/deposit/crypto-bridge"
    return [
        Route("/api/v3/rate/crypto-bridge", api(create_rate), methods=["POST"]),
        Route(base, api(create_deposit), methods=["POST"]),
        Route(f"{base}/status/{{ref}}", api(deposit_status), methods=["GET"]),
        Route(f"{base}/{{ref}}/refund-config", api(get_refund_config), methods=["GET"]),
        Route(f"{base}/{{ref}}/refund-config", api(regenerate_refund_config), methods=["POST"]),
        Route("/_mock/deposits/{ref}", api(mock_deposit, auth=False), methods=["POST"]),
    ]
