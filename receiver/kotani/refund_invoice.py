"""Check a refund invoice Kotani gives us before anyone sees or uses it.

A crypto-bridge refund config (``RefundConfigDto``) names a bolt11 ``refund_invoice`` together with
``refund_amount_msat`` and ``refund_payment_hash``. The invoice is decoded with the service's own
decoder (``receiver.verify.decode_invoice``: signature recovered, amount read exactly from the
human-readable part) and must carry exactly that amount and that payment hash, and, when known,
the expected network. Anything else is a ``RefundInvoiceInvalid`` naming the failed check; the
invoice is then withheld (``VerifiedRefundConfig.bolt11`` is None).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from receiver.amounts import Msat
from receiver.errors import InvalidInvoice
from receiver.kotani.bridge_rules import BridgeError
from receiver.kotani.models import RefundConfig
from receiver.lightning.base import Network
from receiver.verify import decode_invoice


class RefundInvoiceInvalid(BridgeError):
    """Kotani's refund invoice does not match its refund config; ``reason`` names the check."""

    code = "bridge.refund_invoice"

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message, origin="kotani")
        self.reason = reason

    @property
    def error_code(self) -> str:
        return f"{self.code}.{self.reason}"


@dataclass(frozen=True)
class CheckedRefundInvoice:
    """A refund invoice that decoded and matched its config."""

    bolt11: str
    payment_hash: str
    amount_msat: Msat
    network: Network
    payee: str
    invoice_expires_at: datetime
    """The expiry written in the invoice itself (Kotani's ``expires_at`` may differ)."""


@dataclass(frozen=True)
class VerifiedRefundConfig:
    """A refund config and the outcome of checking its invoice (``problem`` set when it failed)."""

    config: RefundConfig
    invoice: CheckedRefundInvoice | None
    problem: RefundInvoiceInvalid | None

    @property
    def bolt11(self) -> str | None:
        """The refund invoice, only if it passed every check."""
        return None if self.invoice is None else self.invoice.bolt11

    @property
    def expires_at(self) -> datetime | None:
        """Kotani's expiry, or else the invoice's own."""
        if self.config.expires_at is not None:
            return self.config.expires_at
        return None if self.invoice is None else self.invoice.invoice_expires_at

    def public(self) -> dict[str, Any]:
        """The config as JSON, with the invoice withheld unless it passed the checks."""
        data = self.config.model_dump(mode="json", exclude_none=True)
        if self.config.refund_invoice is not None:
            data["refund_invoice"] = self.bolt11
            data["refund_invoice_check"] = "ok" if self.problem is None else self.problem.error_code
            if self.problem is not None:
                data["refund_invoice_problem"] = self.problem.message
        return data


def check_refund_invoice(
    config: RefundConfig, *, network: Network | None = None
) -> CheckedRefundInvoice:
    """Decode ``config.refund_invoice`` and compare it with the config; raise on any mismatch."""
    if not config.refund_invoice:
        raise RefundInvoiceInvalid("missing", "the refund config has no refund_invoice")
    try:
        decoded = decode_invoice(config.refund_invoice)
    except InvalidInvoice as exc:
        raise RefundInvoiceInvalid(
            "undecodable", f"Kotani's refund invoice does not decode: {exc.message}"
        ) from exc
    if network is not None and decoded.network is not network:
        raise RefundInvoiceInvalid(
            "network",
            f"the refund invoice is for {decoded.network.value}, expected {network.value}",
        )
    if config.refund_amount_msat is None:
        raise RefundInvoiceInvalid("amount", "the refund config gives no refund_amount_msat")
    if decoded.amount_msat != config.refund_amount_msat:
        raise RefundInvoiceInvalid(
            "amount",
            f"the refund invoice is for {decoded.amount_msat} msat, "
            f"the config says {config.refund_amount_msat} msat",
        )
    if not config.refund_payment_hash:
        raise RefundInvoiceInvalid("payment_hash", "the refund config gives no payment hash")
    if decoded.payment_hash != config.refund_payment_hash.strip().lower():
        raise RefundInvoiceInvalid(
            "payment_hash",
            f"the refund invoice's payment hash is {decoded.payment_hash}, "
            f"the config says {config.refund_payment_hash}",
        )
    return CheckedRefundInvoice(
        bolt11=decoded.bolt11,
        payment_hash=decoded.payment_hash,
        amount_msat=Msat(config.refund_amount_msat),
        network=decoded.network,
        payee=decoded.payee,
        invoice_expires_at=decoded.expires_at,
    )


def verify_refund_config(
    config: RefundConfig, *, network: Network | None = None
) -> VerifiedRefundConfig:
    """Check the config's invoice if it has one (on-chain configs have none: nothing to check)."""
    if config.refund_invoice is None:
        return VerifiedRefundConfig(config, None, None)
    try:
        return VerifiedRefundConfig(config, check_refund_invoice(config, network=network), None)
    except RefundInvoiceInvalid as exc:
        return VerifiedRefundConfig(config, None, exc)


async def averify_refund_config(
    config: RefundConfig, *, network: Network | None = None
) -> VerifiedRefundConfig:
    """``verify_refund_config`` off the event loop (decoding costs a few ms of CPU)."""
    return await asyncio.to_thread(verify_refund_config, config, network=network)
