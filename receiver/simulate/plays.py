"""``simulate invoice``, ``simulate webhook`` and ``simulate replay``: one request each, as Kotani.

``invoice`` POSTs ``{amount_msat, reference_id}`` to the generate_invoice_url and judges the answer
with the imitation's own rule (``mock_kotani.rules.judge_invoice_answer``: 200 within 10 s, exact
amount, decodable, unexpired). ``webhook`` sends any documented event with realistic data, signed
as Kotani signs (``mock_kotani.webhooks.envelope``) or bare (``--unsigned``, direct mode).
``replay`` resends deliveries captured by ``events show`` (their stored body and Kotani headers).
"""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from receiver.errors import ValidationFailed
from receiver.mock_kotani.rules import KOTANI_CALLBACK_TIMEOUT, judge_invoice_answer
from receiver.mock_kotani.webhooks import envelope
from receiver.simulate.target import Target
from receiver.webhooks import jsjson


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def play_invoice(target: Target, amount_msat: int, reference: str | None) -> int:
    ref = reference or f"SIM-{secrets.token_hex(4)}"
    started = time.monotonic()
    try:
        async with httpx.AsyncClient(timeout=KOTANI_CALLBACK_TIMEOUT + 1) as http:
            response = await http.post(
                target.invoice_url, json={"amount_msat": amount_msat, "reference_id": ref}
            )
    except httpx.HTTPError as exc:
        print(f"REFUSED  no answer from the generate_invoice_url ({type(exc).__name__})")
        return 1
    elapsed = time.monotonic() - started
    try:
        body: Any = response.json()
    except ValueError:
        body = None
    verdict = judge_invoice_answer(response.status_code, body, amount_msat, elapsed, time.time())
    print(f"{'ACCEPTED' if verdict.ok else 'REFUSED '}  {elapsed * 1000:.0f} ms  reference {ref}")
    if verdict.invoice is not None:
        left = verdict.invoice.seconds_left(time.time())
        print(
            f"  invoice {verdict.invoice.payment_hash}  {verdict.invoice.amount_msat} msat  "
            f"{left:.0f} s left"
        )
    for problem in verdict.problems:
        print(f"  - {problem}")
    return 0 if verdict.ok else 1


def sample_data(event: str, reference: str, amount_msat: int) -> dict[str, Any]:
    """Realistic ``data`` for a documented event (CONTRACT.md §3 field names)."""
    sats = amount_msat // 1000 if amount_msat % 1000 == 0 else amount_msat / 1000
    if event == "refund.completed":
        return {
            "referenceId": reference,
            "status": "REVERSED",
            "refundStatus": "SUCCESSFUL",
            "refundTransactionHash": secrets.token_hex(32),
            "refundAmount": amount_msat,
            "chain": "LIGHTNING",
            "token": "MSAT",
            "currency": "KES",
            "timestamp": _now(),
        }
    if event == "refund.failed":
        return {
            "referenceId": reference,
            "refundStatus": "FAILED",
            "refundAmount": amount_msat,
            "chain": "LIGHTNING",
            "token": "MSAT",
            "currency": "KES",
            "error": "Lightning payment failed: no route",
            "totalRetries": 5,
            "timestamp": _now(),
        }
    if event == "refund.lightning.invoice_needed":
        return {
            "referenceId": reference,
            "status": "REFUND_PENDING",
            "onchainStatus": "SUCCESSFUL",
            "refundStatus": "INVOICE_NEEDED",
            "refundAmount": amount_msat,
            "refundAmountSats": sats,
            "chain": "LIGHTNING",
            "currency": "KES",
            "requiresAction": True,
            "timestamp": _now(),
            "action": {
                "type": "SUBMIT_LIGHTNING_INVOICE",
                "method": "POST",
                "submitUrl": "https://sandbox-api.kotanipay.com/api/v3/offramp/"
                f"submit-refund-invoice/{reference}",
                "body": {"invoice": "lnbc..."},
                "invoiceRequirements": {
                    "amount": sats,
                    "currency": "SATS",
                    "format": "bolt11",
                    "mustNotExpire": True,
                    "mustNotBePaid": True,
                    "mustMatchExactAmount": True,
                },
            },
        }
    if event.startswith("transaction.") and event.endswith(".status.updated"):
        if event == "transaction.deposit.status.updated":
            return {
                "reference_id": reference,
                "status": "SUCCESSFUL",
                "amount": 1000,
                "currency": "KES",
                "updated_at": _now(),
            }
        return {
            "referenceId": reference,
            "status": "FAILED",
            "onchainStatus": "SUCCESSFUL",
            "fiatAmount": 1000,
            "fiatTransactionAmount": 1000,
            "cryptoAmount": amount_msat,
            "fiatCurrency": "KES",
            "customerKey": "cus_sim",
            "senderAddress": "sim-sender",
            "escrowAddress": "sim-escrow",
            "transactionError": "simulated payout failure",
            "updated_at": _now(),
        }
    if event == "payment.confirmed":
        return {
            "referenceId": reference,
            "status": "SUCCESSFUL",
            "amount": 1000,
            "currency": "KES",
            "timestamp": _now(),
        }
    if event == "kyc.status.changed":
        return {"customerKey": "cus_sim", "status": "APPROVED", "timestamp": _now()}
    if event.startswith("settlement.") or event == "system.event":
        return {
            "referenceId": reference,
            "status": event.rsplit(".", 1)[-1].upper(),
            "timestamp": _now(),
        }
    raise ValidationFailed(f"{event} is not a documented Kotani event")


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    async with httpx.AsyncClient(timeout=KOTANI_CALLBACK_TIMEOUT) as http:
        response = await http.post(url, content=body, headers=headers)
    return response.status_code, response.text[:300]


async def play_webhook(
    target: Target, event: str, reference: str, amount_msat: int, *, unsigned: bool
) -> int:
    data = sample_data(event, reference, amount_msat)
    secret = None if unsigned else target.webhook_secret
    if not unsigned and secret is None:
        raise ValidationFailed(
            "RECEIVER_WEBHOOK_SECRETS is not set: sign with it, or pass --unsigned (direct mode)"
        )
    body, headers = envelope(event, data, secret)
    url = target.webhook_url
    if unsigned and target.token is not None:
        url = f"{target.webhook_url}/{target.token}"  # direct mode: the token is the credential
    status, text = await _post(url, body, headers)
    print(f"{event} {reference}: HTTP {status} {text}")
    return 0 if 200 <= status < 300 else 1


def read_captures(path: Path) -> list[dict[str, Any]]:
    """``events show`` output: one object, a list of them, or one per line."""
    text = path.read_text() if str(path) != "-" else __import__("sys").stdin.read()
    try:
        loaded = json.loads(text)
        items = loaded if isinstance(loaded, list) else [loaded]
    except ValueError:
        items = [json.loads(line) for line in text.splitlines() if line.strip()]
    if not all(isinstance(i, dict) and "body" in i for i in items):
        raise ValidationFailed(f"{path}: expected `events show` output (objects with a body)")
    return items


async def play_replay(target: Target, path: Path) -> int:
    failures = 0
    for item in read_captures(path):
        body = item["body"]
        raw = body.encode() if isinstance(body, str) else jsjson.dumps(body).encode()
        stored = {str(k).lower(): str(v) for k, v in (item.get("headers") or {}).items()}
        headers = {"content-type": "application/json"}
        headers.update({k: v for k, v in stored.items() if k.startswith("x-kotani-")})
        status, text = await _post(target.webhook_url, raw, headers)
        failures += not 200 <= status < 300
        print(f"event {item.get('id', '?')} {item.get('type', '')}: HTTP {status} {text}")
    return 1 if failures else 0
