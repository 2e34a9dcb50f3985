"""What Kotani refuses, as pure functions: the imitation's rules, each with Kotani's message.

- ``submit-refund-invoice`` (CONTRACT.md §4): the invoice must decode (signature included), be for
  the exact refund amount, be unexpired and unpaid; else 400 "Invalid invoice or not eligible for
  Lightning refund" (the imitation appends which check failed). Decoding is the service's own
  ``receiver.verify`` (the strict BOLT #11 reader).
- a generate_invoice_url answer (CONTRACT.md §1): 200 within 10 s, ``bolt11`` and an integer
  ``amount_msat`` equal to the request, the invoice itself for that amount and unexpired, its
  payment hash equal to ``payment_hash`` when given. ``simulate invoice`` judges with the same
  function.
- crypto-bridge regeneration (seed 000): ``receiver.kotani.bridge_rules.regeneration_refusal``
  (Lightning only, expired first, at most 3, 30 s apart, never COMPLETED/REFUNDED), with
  Kotani's 400 wording per rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from receiver.errors import InvalidInvoice
from receiver.kotani.bridge_rules import (
    DepositTerminal,
    InvoiceNotExpired,
    NotLightning,
    RegeneratedTooRecently,
    RegenerationLimitReached,
    RegenerationRefused,
    RegenerationState,
    regeneration_refusal,
)
from receiver.verify import DecodedInvoice, decode_invoice

KOTANI_CALLBACK_TIMEOUT = 10.0
INVALID_INVOICE = "Invalid invoice or not eligible for Lightning refund"


class Refusal(Exception):
    """A Kotani error answer: HTTP status and Kotani's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_refund_invoice(
    invoice: object, amount_msat: int, paid_hashes: set[str], now: float
) -> DecodedInvoice:
    """The submitted invoice, decoded, or ``Refusal(400)`` naming the broken rule."""
    if not isinstance(invoice, str) or not invoice.strip():
        raise Refusal(400, "invoice must be a non-empty string")
    try:
        decoded = decode_invoice(invoice)
    except InvalidInvoice as exc:
        raise Refusal(400, f"{INVALID_INVOICE}: {exc.message}") from None
    if decoded.amount_msat != amount_msat:
        raise Refusal(
            400,
            f"{INVALID_INVOICE}: amount {decoded.amount_msat} msat, the refund is {amount_msat}",
        )
    if decoded.seconds_left(now) <= 0:
        raise Refusal(400, f"{INVALID_INVOICE}: the invoice has expired")
    if decoded.payment_hash in paid_hashes:
        raise Refusal(400, f"{INVALID_INVOICE}: the invoice is already paid")
    return decoded


@dataclass
class Verdict:
    """Kotani's judgement of one generate_invoice_url answer."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    invoice: DecodedInvoice | None = None


def judge_invoice_answer(
    status: int, body: Any, amount_msat: int, elapsed: float, now: float
) -> Verdict:
    """Would Kotani accept this answer to ``{amount_msat, reference_id}``? Every problem listed."""
    problems: list[str] = []
    if elapsed > KOTANI_CALLBACK_TIMEOUT:
        problems.append(
            f"answered after {elapsed:.2f} s (Kotani waits {KOTANI_CALLBACK_TIMEOUT:g} s)"
        )
    if status != 200:
        problems.append(f"HTTP {status}, not 200")
        return Verdict(False, problems)
    if not isinstance(body, dict):
        return Verdict(False, [*problems, "the body is not a JSON object"])
    answered = body.get("amount_msat")
    if isinstance(answered, bool) or not isinstance(answered, int):
        problems.append("amount_msat is missing or not a JSON integer")
    elif answered != amount_msat:
        problems.append(f"amount_msat {answered}, asked for {amount_msat}")
    bolt11 = body.get("bolt11")
    decoded: DecodedInvoice | None = None
    if not isinstance(bolt11, str) or not bolt11.strip():
        problems.append("bolt11 is missing")
    else:
        try:
            decoded = decode_invoice(bolt11)
        except InvalidInvoice as exc:
            problems.append(f"bolt11 does not decode: {exc.message}")
    if decoded is not None:
        if decoded.amount_msat != amount_msat:
            problems.append(f"the invoice is for {decoded.amount_msat} msat, not {amount_msat}")
        if decoded.seconds_left(now) <= 0:
            problems.append("the invoice has expired")
        given = body.get("payment_hash")
        if given is not None and str(given).lower() != decoded.payment_hash:
            problems.append("payment_hash differs from the invoice's")
    return Verdict(not problems, problems, decoded)


_REGENERATION_MESSAGES: dict[type[RegenerationRefused], str] = {
    NotLightning: "Refund invoice regeneration is only available for Lightning transactions",
    DepositTerminal: "Cannot regenerate: transaction is already COMPLETED or REFUNDED",
    RegenerationLimitReached: "Invoice not yet expired or max regenerations reached",
    RegeneratedTooRecently: "Please wait 30 seconds between regeneration requests",
    InvoiceNotExpired: "Invoice not yet expired or max regenerations reached",
}


def check_regeneration(state: RegenerationState, now: datetime) -> None:
    """``Refusal(400)`` with Kotani's wording when a regeneration breaks one of its rules."""
    refusal = regeneration_refusal(state, now)
    if refusal is not None:
        raise Refusal(400, _REGENERATION_MESSAGES.get(type(refusal), refusal.message))
