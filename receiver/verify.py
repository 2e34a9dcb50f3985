"""Decode a bolt11 invoice and check it before it leaves the service.

Nothing a backend returns is trusted. ``verify_invoice`` decodes the string and checks, in order:
it decodes and its signature recovers (or matches) a node key; the network prefix matches
``RECEIVER_NETWORK``; the amount in the human-readable part equals the request *exactly* (parsed
here with integer arithmetic, not the library's); the payment hash is 32 bytes and equals what the
backend reported; the node key equals the backend's, where it reported one; the description hash
is the one asked for; at least ``MIN_VALIDITY`` seconds remain. A failure raises ``InvalidInvoice``
whose ``reason`` names the check (``backend.invalid_invoice.amount``...).

Decoding uses ``receiver.bolt11_reader`` (a strict reader written from the spec and
differential-tested against the ``bolt11`` package, which is 10-20x slower): about 0.12 ms of
CPU per invoice when warm (0.3-0.4 ms in the running service), cheap enough to run on the event
loop.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from receiver import bolt11_reader
from receiver.amounts import Msat
from receiver.bolt11_reader import amount_from_hrp
from receiver.errors import InvalidInvoice
from receiver.lightning.base import Network

_HEX64 = re.compile(r"[0-9a-f]{64}")
_CURRENCY_NETWORK = {net.bolt11_currency: net for net in Network}
MAX_CLOCK_SKEW = 600
"""An invoice may be dated at most this many seconds in the future."""


@dataclass(frozen=True)
class DecodedInvoice:
    """The fields of a bolt11 invoice that the service relies on."""

    bolt11: str
    network: Network
    amount_msat: Msat | None
    payment_hash: str
    payee: str
    created_at: int
    expiry: int
    description: str | None
    description_hash: str | None

    @property
    def expires_at_ts(self) -> int:
        return self.created_at + self.expiry

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires_at_ts, UTC)

    def seconds_left(self, now: float) -> float:
        return self.expires_at_ts - now


@dataclass(frozen=True)
class Expectation:
    """What the invoice must be. ``None`` fields are not checked."""

    network: Network
    amount_msat: Msat | None = None
    payment_hash: str | None = None
    node_id: str | None = None
    description_hash: str | None = None
    min_validity: int = 0


@dataclass(frozen=True)
class Check:
    """One named check and its outcome, for ``kotani-receiver decode``."""

    name: str
    ok: bool
    detail: str


def hrp_amount_msat(invoice: str) -> Msat | None:
    """The amount in the human-readable part, exactly, or None for an amountless invoice."""
    text = invoice.strip().lower()
    try:
        _, amount = amount_from_hrp(text[: text.rfind("1")] if "1" in text else "")
    except ValueError as exc:
        raise InvalidInvoice("amount", f"the invoice's amount does not parse: {exc}") from None
    return None if amount is None else Msat(amount)


def decode_invoice(invoice: str) -> DecodedInvoice:
    """Decode a bolt11 string, verifying its signature; any malformed input is InvalidInvoice."""
    if not isinstance(invoice, str) or not invoice.strip():
        raise InvalidInvoice("undecodable", "no invoice")
    text = invoice.strip()
    try:
        fields = bolt11_reader.read(text)
    except ValueError as exc:
        raise InvalidInvoice(
            "undecodable", f"the invoice does not decode as BOLT11: {exc}"
        ) from None
    network = _CURRENCY_NETWORK.get(fields.currency)
    if network is None:  # unreachable with the reader's prefixes; kept as a guard
        raise InvalidInvoice("network", f"unknown invoice currency {fields.currency!r}")
    return DecodedInvoice(
        bolt11=text,
        network=network,
        amount_msat=None if fields.amount_msat is None else Msat(fields.amount_msat),
        payment_hash=fields.payment_hash,
        payee=fields.payee,
        created_at=fields.timestamp,
        expiry=fields.expiry,
        description=fields.description,
        description_hash=fields.description_hash,
    )


def run_checks(invoice: DecodedInvoice, expect: Expectation, now: float) -> list[Check]:
    """Every check, passed or not, in a fixed order (the first failure is the reported one)."""
    checks = [
        Check(
            "network",
            invoice.network == expect.network,
            f"{invoice.network.value} (expected {expect.network.value})",
        ),
        Check(
            "signature",
            len(invoice.payee) == 66 and invoice.payee[:2] in ("02", "03"),
            f"signed by node {invoice.payee}",
        ),
    ]
    if expect.amount_msat is not None:
        checks.append(
            Check(
                "amount",
                invoice.amount_msat == expect.amount_msat,
                f"{invoice.amount_msat} msat (expected {expect.amount_msat})",
            )
        )
    checks.append(
        Check(
            "payment_hash",
            bool(_HEX64.fullmatch(invoice.payment_hash))
            and (
                expect.payment_hash is None
                or invoice.payment_hash == expect.payment_hash.strip().lower()
            ),
            invoice.payment_hash
            + ("" if expect.payment_hash is None else f" (backend said {expect.payment_hash})"),
        )
    )
    if expect.node_id is not None:
        checks.append(
            Check(
                "node_id",
                invoice.payee == expect.node_id.lower(),
                f"{invoice.payee} (backend is {expect.node_id})",
            )
        )
    if expect.description_hash is not None:
        checks.append(
            Check(
                "description_hash",
                invoice.description_hash == expect.description_hash.lower(),
                f"{invoice.description_hash} (expected {expect.description_hash})",
            )
        )
    left = invoice.seconds_left(now)
    checks.append(
        Check(
            "timestamp",
            invoice.created_at <= now + MAX_CLOCK_SKEW,
            f"created {datetime.fromtimestamp(invoice.created_at, UTC).isoformat()}",
        )
    )
    checks.append(
        Check(
            "expiry",
            left >= expect.min_validity,
            f"{int(left)} s left (at least {expect.min_validity} s required)",
        )
    )
    return checks


def verify_invoice(invoice: str, expect: Expectation, now: float) -> DecodedInvoice:
    """Decode and check; raise ``InvalidInvoice`` naming the first failed check."""
    decoded = decode_invoice(invoice)
    for check in run_checks(decoded, expect, now):
        if not check.ok:
            raise InvalidInvoice(
                check.name, f"invoice failed the {check.name} check: {check.detail}"
            )
    return decoded
