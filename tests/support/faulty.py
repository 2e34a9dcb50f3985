"""Deliberately faulty backends: they sign real invoices that are wrong in one way each."""

from __future__ import annotations

import asyncio
import hashlib
import os
import time

import bolt11
import coincurve
from bolt11.models.tags import TagChar, Tags

from receiver.amounts import Msat
from receiver.errors import BackendUnavailable
from receiver.lightning.base import (
    Capabilities,
    InvoiceState,
    InvoiceStatus,
    MintedInvoice,
    Network,
    NodeInfo,
)

FAULTS = ("wrong_amount", "wrong_network", "expired", "bad_hash", "wrong_node", "short_expiry")


def sign(
    key: coincurve.PrivateKey,
    *,
    currency: str,
    amount_msat: int,
    payment_hash: str,
    expiry: int,
    date: int | None = None,
    memo: str = "test",
) -> str:
    tags = Tags()
    tags.add(TagChar.payment_hash, payment_hash)
    tags.add(TagChar.payment_secret, os.urandom(32).hex())
    tags.add(TagChar.description, memo)
    tags.add(TagChar.expire_time, expiry)
    tags.add(TagChar.min_final_cltv_expiry, 18)
    invoice = bolt11.Bolt11(
        currency=currency,
        amount_msat=bolt11.MilliSatoshi(amount_msat),
        date=int(time.time()) if date is None else date,
        tags=tags,
    )
    return bolt11.encode(invoice, key.secret.hex())


class FaultyBackend:
    """Mints invoices with one fault, or hangs / fails, as told."""

    capabilities = Capabilities(msat_precision=True, description_hash=False)

    def __init__(
        self, fault: str, network: Network = Network.REGTEST, name: str = "faulty"
    ) -> None:
        self.name = name
        self.fault = fault
        self.network = network
        self.key = coincurve.PrivateKey(os.urandom(32))
        self.node_id = self.key.public_key.format(compressed=True).hex()
        self.minted: list[str] = []
        self.calls = 0

    async def create_invoice(
        self, amount_msat: Msat, memo: str, expiry: int, description_hash: bytes | None = None
    ) -> MintedInvoice:
        self.calls += 1
        if self.fault == "hang":
            await asyncio.sleep(3600)
        if self.fault == "unavailable":
            raise BackendUnavailable("connection refused", backend=self.name)
        if self.fault == "crash":
            raise RuntimeError("bug in backend")
        payment_hash = hashlib.sha256(os.urandom(32)).hexdigest()
        currency = self.network.bolt11_currency
        amount = int(amount_msat)
        date = None
        node_id = self.node_id
        reported_hash = payment_hash
        if self.fault == "wrong_amount":
            amount += 1000
        elif self.fault == "wrong_network":
            currency = "bc" if currency != "bc" else "tb"
        elif self.fault == "expired":
            date = int(time.time()) - 2 * expiry
        elif self.fault == "short_expiry":
            expiry = 60
        elif self.fault == "bad_hash":
            reported_hash = hashlib.sha256(b"other").hexdigest()
        elif self.fault == "wrong_node":
            node_id = coincurve.PrivateKey(os.urandom(32)).public_key.format(True).hex()
        encoded = sign(
            self.key,
            currency=currency,
            amount_msat=amount,
            payment_hash=payment_hash,
            expiry=expiry,
            date=date,
        )
        self.minted.append(encoded)
        return MintedInvoice(bolt11=encoded, payment_hash=reported_hash, node_id=node_id)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        return InvoiceStatus(InvoiceState.UNKNOWN)

    async def info(self) -> NodeInfo:
        if self.fault in ("hang", "unavailable"):
            raise BackendUnavailable("down", backend=self.name)
        return NodeInfo(node_id=self.node_id, network=self.network)

    async def aclose(self) -> None:
        return None
