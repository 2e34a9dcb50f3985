"""Kotani's side of an offramp refund: payout failure, Option A, Option B, payment, webhooks.

Seed 002 ("How refunds work"): when the fiat payout fails Kotani refunds the crypto. On Lightning
it pays the ``refund_config.bolt11`` given at create time while that is unexpired; once expired it
POSTs ``{amount_msat, reference_id}`` to ``generate_invoice_url`` and pays the answer if it is
acceptable within 10 s (Option A). Without a refund_config, or without a usable answer, it sends
``refund.lightning.invoice_needed`` once and waits for ``submit-refund-invoice`` (Option B).
Paying is the ``Payer``'s job (the fake node of a receiver's data directory, or an operator
confirming through ``POST /_mock/offramps/{ref}/paid``); then ``refund.completed``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from receiver.mock_kotani.rules import (
    KOTANI_CALLBACK_TIMEOUT,
    Refusal,
    check_refund_invoice,
    judge_invoice_answer,
)
from receiver.mock_kotani.store import MockStore
from receiver.mock_kotani.webhooks import WebhookSender
from receiver.verify import DecodedInvoice, decode_invoice

Payer = Callable[[DecodedInvoice], Awaitable[str]]
"""Pays one invoice and returns the preimage (hex); raises on failure."""

OFFRAMP = "offramp"
PAID = "paid"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def refund_amount(doc: dict[str, Any]) -> int:
    config = doc.get("refund_config")
    if isinstance(config, dict):
        return int(config["amount_msat"])
    return int(doc["cryptoAmount"])


def status_data(doc: dict[str, Any]) -> dict[str, Any]:
    """``transaction.offramp.status.updated`` data (camelCase, CONTRACT.md §3)."""
    return {
        "referenceId": doc["referenceId"],
        "status": doc["status"],
        "onchainStatus": "SUCCESSFUL",
        "fiatAmount": doc.get("fiatAmount", 0),
        "cryptoAmount": doc["cryptoAmount"],
        "fiatCurrency": doc["currency"],
        "customerKey": doc.get("customerKey", "mock-customer"),
        "senderAddress": doc.get("senderAddress", ""),
        "escrowAddress": "mock-escrow",
        "updated_at": now_iso(),
    }


class RefundEngine:
    """Moves offramps through their refund; every step noted in the timeline."""

    def __init__(
        self,
        store: MockStore,
        sender: WebhookSender,
        payer: Payer | None,
        http: httpx.AsyncClient,
        background: Callable[[Awaitable[None]], None],
    ) -> None:
        self.background = background
        self.store = store
        self.sender = sender
        self.payer = payer
        self.http = http

    async def offramp(self, ref: str) -> dict[str, Any]:
        """The offramp ``ref``, or Kotani's 404."""
        doc = await self.store.get(OFFRAMP, ref)
        if doc is None:
            raise Refusal(404, "Transaction not found")
        return doc

    async def retry(self, ref: str) -> None:
        """``retry-refund``: only a FAILED refund is retried (else 400 "Cannot retry refund")."""
        doc = await self.offramp(ref)
        if doc.get("refundStatus") != "FAILED":
            raise Refusal(400, "Cannot retry refund")
        doc["totalRetries"] = int(doc.get("totalRetries", 0)) + 1
        doc.update(status="REFUND_PENDING", refundStatus="PENDING")
        await self._save(doc)
        await self.store.note(ref, "kotani: refund retry requested")
        self.background(self.refund(ref))

    async def _save(self, doc: dict[str, Any]) -> None:
        await self.store.put(OFFRAMP, str(doc["referenceId"]), doc)

    async def fail_payout(self, ref: str, *, stored_invoice_expired: bool) -> None:
        doc = await self.store.get(OFFRAMP, ref)
        assert doc is not None
        doc.update(status="FAILED", transactionError="mock: fiat payout failed")
        await self._save(doc)
        await self.store.note(ref, "kotani: fiat payout FAILED")
        await self.sender.emit("transaction.offramp.status.updated", status_data(doc), ref)
        doc.update(status="REFUND_PENDING", refundStatus="PENDING")
        await self._save(doc)
        await self.refund(ref, stored_invoice_expired=stored_invoice_expired)

    async def refund(self, ref: str, *, stored_invoice_expired: bool = False) -> None:
        doc = await self.store.get(OFFRAMP, ref)
        assert doc is not None
        amount = refund_amount(doc)
        config = doc.get("refund_config")
        if isinstance(config, dict):
            expires = datetime.fromisoformat(str(config["expires_at"]).replace("Z", "+00:00"))
            if not stored_invoice_expired and expires > datetime.now(UTC):
                await self.store.note(ref, "kotani: stored refund invoice still valid: paying it")
                if await self._pay_checked(doc, config["bolt11"], amount):
                    return
            elif config.get("generate_invoice_url"):
                invoice = await self._option_a(ref, str(config["generate_invoice_url"]), amount)
                if invoice is not None:
                    await self._pay(doc, invoice)
                    return
            else:
                await self.store.note(
                    ref, "kotani: stored invoice expired, no generate_invoice_url"
                )
        await self._option_b(doc, amount)

    async def _option_a(self, ref: str, url: str, amount: int) -> DecodedInvoice | None:
        await self.store.note(ref, f"kotani: Option A: POST generate_invoice_url ({amount} msat)")
        started = time.monotonic()
        try:
            response = await self.http.post(
                url,
                json={"amount_msat": amount, "reference_id": ref},
                timeout=KOTANI_CALLBACK_TIMEOUT,
            )
            status, body = response.status_code, _json(response)
        except httpx.HTTPError as exc:
            await self.store.note(
                ref, f"kotani: generate_invoice_url failed ({type(exc).__name__})"
            )
            return None
        verdict = judge_invoice_answer(
            status, body, amount, time.monotonic() - started, time.time()
        )
        elapsed = time.monotonic() - started
        if not verdict.ok:
            await self.store.note(
                ref, f"kotani: generate_invoice_url answer refused: {'; '.join(verdict.problems)}"
            )
            return None
        assert verdict.invoice is not None
        await self.store.note(
            ref,
            f"kotani: generate_invoice_url answered in {elapsed * 1000:.0f} ms: invoice "
            f"{verdict.invoice.payment_hash[:16]}… accepted",
        )
        return verdict.invoice

    async def _option_b(self, doc: dict[str, Any], amount: int) -> None:
        ref = str(doc["referenceId"])
        if doc.get("invoiceNeededSent"):
            # Sent once per offramp; after a retry Kotani just waits for a submission again.
            doc.update(refundStatus="INVOICE_NEEDED")
            await self._save(doc)
            return
        doc.update(refundStatus="INVOICE_NEEDED", invoiceNeededSent=True)
        await self._save(doc)
        await self.store.note(ref, "kotani: Option B: sending refund.lightning.invoice_needed")
        sats = amount / 1000
        data = {
            "referenceId": ref,
            "status": doc["status"],
            "onchainStatus": "SUCCESSFUL",
            "refundStatus": "INVOICE_NEEDED",
            "refundAmount": amount,
            "refundAmountSats": int(sats) if sats == int(sats) else sats,
            "chain": "LIGHTNING",
            "currency": doc["currency"],
            "requiresAction": True,
            "timestamp": now_iso(),
            "action": {
                "type": "SUBMIT_LIGHTNING_INVOICE",
                "description": "Submit a Lightning invoice for the exact refund amount",
                "submitUrl": f"{doc['_base_url']}/api/v3/offramp/submit-refund-invoice/{ref}",
                "method": "POST",
                "body": {"invoice": "lnbc..."},
                "invoiceRequirements": {
                    "amount": int(sats) if sats == int(sats) else sats,
                    "currency": "SATS",
                    "format": "bolt11",
                    "mustNotExpire": True,
                    "mustNotBePaid": True,
                    "mustMatchExactAmount": True,
                },
            },
        }
        await self.sender.emit("refund.lightning.invoice_needed", data, ref)

    async def submit(self, ref: str, invoice: object) -> dict[str, Any]:
        """``submit-refund-invoice``: check, count, pay; ``Refusal`` when not acceptable."""
        doc = await self.offramp(ref)
        if doc.get("refundStatus") != "INVOICE_NEEDED":
            raise Refusal(
                400, "Invalid invoice or not eligible for Lightning refund: no invoice is needed"
            )
        paid = {str(p["payment_hash"]) for p in await self._paid()}
        try:
            decoded = check_refund_invoice(invoice, refund_amount(doc), paid, time.time())
        except Refusal as exc:
            doc["refusedSubmissions"] = int(doc.get("refusedSubmissions", 0)) + 1
            await self._save(doc)
            await self.store.note(ref, f"kotani: submitted invoice refused: {exc.message}")
            raise
        doc["submissions"] = int(doc.get("submissions", 0)) + 1
        doc.update(refundStatus="PROCESSING", refundInvoice=decoded.bolt11)
        await self._save(doc)
        await self.store.note(
            ref, f"kotani: invoice {decoded.payment_hash[:16]}… accepted (Option B)"
        )
        return doc

    async def pay_submitted(self, ref: str) -> None:
        """Pay the invoice accepted by ``submit`` (run after the answer, like Kotani's queue)."""
        doc = await self.store.get(OFFRAMP, ref)
        if doc is None or doc.get("refundStatus") != "PROCESSING" or not doc.get("refundInvoice"):
            return
        await self._pay(doc, decode_invoice(str(doc["refundInvoice"])))

    async def _paid(self) -> list[dict[str, Any]]:
        found = await self.store.get(PAID, "all")
        return list((found or {}).get("invoices", []))

    async def _pay_checked(self, doc: dict[str, Any], bolt11: str, amount: int) -> bool:
        paid = {str(p["payment_hash"]) for p in await self._paid()}
        try:
            decoded = check_refund_invoice(bolt11, amount, paid, time.time())
        except Refusal as exc:
            await self.store.note(
                str(doc["referenceId"]), f"kotani: stored invoice unusable: {exc.message}"
            )
            return False
        await self._pay(doc, decoded)
        return True

    async def _pay(self, doc: dict[str, Any], invoice: DecodedInvoice) -> None:
        ref = str(doc["referenceId"])
        doc.update(refundStatus="PROCESSING", refundInvoice=invoice.bolt11)
        await self._save(doc)
        if self.payer is None:
            await self.store.note(
                ref, f"kotani: waiting for POST /_mock/offramps/{ref}/paid (no payer configured)"
            )
            return
        try:
            await self.payer(invoice)
        except Exception as exc:  # the payer is pluggable: any failure is a failed refund
            await self.fail_refund(ref, f"payment failed: {exc}")
            return
        await self.complete(ref)

    async def complete(self, ref: str) -> dict[str, Any]:
        doc = await self.offramp(ref)
        bolt11 = doc.get("refundInvoice")
        if doc.get("refundStatus") != "PROCESSING" or not bolt11:
            raise Refusal(400, "no refund payment is in progress")
        decoded = decode_invoice(str(bolt11))
        paid = await self._paid()
        paid.append({"payment_hash": decoded.payment_hash, "reference": ref})
        await self.store.put(PAID, "all", {"invoices": paid})
        doc.update(
            status="REVERSED", refundStatus="SUCCESSFUL", refundTransactionHash=decoded.payment_hash
        )
        await self._save(doc)
        await self.store.note(ref, f"kotani: paid refund invoice {decoded.payment_hash[:16]}…")
        await self.sender.emit(
            "refund.completed",
            {
                "referenceId": ref,
                "status": "REVERSED",
                "refundStatus": "SUCCESSFUL",
                "refundTransactionHash": decoded.payment_hash,
                "refundAmount": refund_amount(doc),
                "chain": "LIGHTNING",
                "token": "MSAT",
                "currency": doc["currency"],
                "timestamp": now_iso(),
            },
            ref,
        )
        await self.sender.emit("transaction.offramp.status.updated", status_data(doc), ref)
        return doc

    async def fail_refund(self, ref: str, error: str) -> None:
        doc = await self.store.get(OFFRAMP, ref)
        assert doc is not None
        doc.update(status="REFUND_FAILED", refundStatus="FAILED", refundError=error)
        doc["totalRetries"] = int(doc.get("totalRetries", 0))
        await self._save(doc)
        await self.store.note(ref, f"kotani: refund FAILED: {error}")
        await self.sender.emit(
            "refund.failed",
            {
                "referenceId": ref,
                "refundStatus": "FAILED",
                "refundAmount": refund_amount(doc),
                "chain": "LIGHTNING",
                "token": "MSAT",
                "currency": doc["currency"],
                "error": error,
                "totalRetries": doc["totalRetries"],
                "timestamp": now_iso(),
            },
            ref,
        )


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
