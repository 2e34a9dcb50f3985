"""``refund.lightning.invoice_needed`` (Option B): mint the refund invoice and submit it to Kotani.

Data (CONTRACT.md §3, seed 002; two doc pages differ, both accepted): ``referenceId,
refundAmount`` (msat), ``refundAmountSats``, ``action: {type: "SUBMIT_LIGHTNING_INVOICE",
submitUrl, method, body, invoiceRequirements?: {amount (sats), currency: "SATS", ...}}``.

1. The amount is ``refundAmount`` (whole msat), cross-checked exactly against
   ``refundAmountSats`` and ``invoiceRequirements.amount`` when present. A mismatch is dead at
   once with the reason, and nothing is minted or submitted.
2. The invoice comes from ``InvoiceService.get_or_mint`` (the generate_invoice_url path:
   verified, stored, idempotent per reference and amount).
3. It is submitted with ``KotaniClient.submit_refund_invoice``, which builds the URL from
   ``RECEIVER_KOTANI_BASE_URL``. ``action.submitUrl`` is never requested: it is accepted only as
   that very endpoint (same origin, same path for this reference); anything else (another host,
   another path or reference) is noted in the refund history as ignored. No other host is called.
4. Kotani 400 (expired or paid invoice) -> a fresh invoice, resubmitted, at most
   ``MAX_SUBMISSIONS`` invoices per attempt; 401 -> dead (configuration) with the invoice kept
   for manual submission; 404 -> dead; 5xx, 429, timeouts -> retried with backoff.
5. Without ``RECEIVER_KOTANI_API_KEY`` the invoice is stored and the refund is
   ``action_required``: ``refunds show`` prints it for manual submission.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, unquote, urlsplit

from sqlalchemy.orm import Session

from receiver.amounts import MSAT_PER_SAT, Msat
from receiver.db.queue import Apply
from receiver.handlers.events.base import (
    EventContext,
    EventFailed,
    Handled,
    InboxEvent,
    PermanentFailure,
    number_text,
    text_field,
)
from receiver.inbox.models import RefundState
from receiver.invoices import IssuedInvoice
from receiver.kotani.errors import (
    KotaniBadRequest,
    KotaniError,
    KotaniNotFound,
    KotaniRejected,
    KotaniUnauthorized,
)
from receiver.refunds.store import record
from receiver.webhooks.jsjson import JSNumber, JSValue, exact_int

EVENT_TYPE = "refund.lightning.invoice_needed"
MAX_SUBMISSIONS = 3
SUBMIT_PATH = "/api/v3/offramp/submit-refund-invoice/"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def _decimal(value: JSValue) -> Decimal | None:
    text = number_text(value)
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def refund_amount(data: dict[str, JSValue], max_amount_msat: int) -> Msat:
    """The refund amount in msat, checked against every other amount Kotani states."""
    raw = data.get("refundAmount")
    amount = exact_int(raw) if isinstance(raw, JSNumber) else None
    if amount is None:
        raise PermanentFailure("refundAmount is missing or not a whole number of msat")
    if not 0 < amount <= max_amount_msat:
        raise PermanentFailure(
            f"refundAmount {amount} msat is outside 1..{max_amount_msat} (RECEIVER_MAX_AMOUNT_MSAT)"
        )
    exact_sats = Decimal(amount) / MSAT_PER_SAT
    if "refundAmountSats" in data:
        sats = _decimal(data["refundAmountSats"])
        if sats is None or sats != exact_sats:
            raise PermanentFailure(
                f"refundAmount {amount} msat disagrees with refundAmountSats "
                f"{number_text(data['refundAmountSats'])!s}"
            )
    action = data.get("action")
    requirements = action.get("invoiceRequirements") if isinstance(action, dict) else None
    if isinstance(requirements, dict) and "amount" in requirements:
        unit = text_field(requirements, "currency", limit=16) or "SATS"
        required = _decimal(requirements["amount"])
        wanted = {"SATS": exact_sats, "SAT": exact_sats, "MSAT": Decimal(amount)}.get(unit.upper())
        if required is None or wanted is None or required != wanted:
            raise PermanentFailure(
                f"refundAmount {amount} msat disagrees with invoiceRequirements.amount "
                f"{number_text(requirements['amount'])!s} {unit}"
            )
    return Msat(amount)


def foreign_submit_url(url: JSValue, base_url: str, reference_id: str) -> str | None:
    """None when ``submitUrl`` is absent or is exactly our endpoint; else why it is ignored."""
    if url is None:
        return None
    if not isinstance(url, str):
        return "submitUrl is not a string"
    try:
        given, base = urlsplit(url.strip()), urlsplit(base_url)
        given_port = given.port or _DEFAULT_PORTS.get(given.scheme.lower())
        base_port = base.port or _DEFAULT_PORTS.get(base.scheme.lower())
    except ValueError:
        return "submitUrl is not a URL"
    same_origin = (
        given.scheme.lower() == base.scheme.lower()
        and (given.hostname or "") == (base.hostname or "")
        and given_port == base_port
        and not given.username
        and not given.password
    )
    expected = base.path.rstrip("/") + SUBMIT_PATH
    same_path = (
        given.path
        in (
            expected + quote(reference_id, safe=""),
            expected + reference_id,
        )
        or unquote(given.path) == expected + reference_id
    )
    if same_origin and same_path and not given.query and not given.fragment:
        return None
    return f"submitUrl {given.scheme}://{given.hostname}{given.path} is not Kotani's endpoint"


async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
    if event.reference_id is None:
        raise PermanentFailure("invoice_needed without a referenceId")
    reference_id = event.reference_id
    data = event.data
    amounts: dict[str, object] = {
        "refund_amount": number_text(data.get("refundAmount")),
        "chain": text_field(data, "chain", limit=32),
        "currency": text_field(data, "currency", limit=16),
    }
    try:
        amount = refund_amount(data, ctx.settings.max_amount_msat)
    except PermanentFailure as exc:
        exc.apply = _record(
            event, RefundState.REJECTED, "invoice_needed.rejected", exc.message, None, amounts
        )
        raise
    whole_sats, rest = divmod(int(amount), MSAT_PER_SAT)
    amounts.update(amount_msat=int(amount), amount_sats=None if rest else whole_sats)

    refund = await ctx.refunds.get(reference_id)
    if refund is not None and refund.state is RefundState.COMPLETED:
        return Handled("refund already completed: no invoice submitted")

    action = data.get("action")
    submit_url = action.get("submitUrl") if isinstance(action, dict) else None
    ignored = foreign_submit_url(submit_url, ctx.settings.kotani_base_url, reference_id)
    notes = [f"{ignored}: ignored, used {ctx.settings.kotani_base_url}"] if ignored else []

    issued = await ctx.invoices.get_or_mint(reference_id, amount)
    if ctx.kotani is None:
        notes.append("no RECEIVER_KOTANI_API_KEY: submit this invoice to Kotani by hand")
        return Handled(
            "invoice stored; action required (no Kotani API key)",
            _record(
                event,
                RefundState.ACTION_REQUIRED,
                "invoice.action_required",
                "; ".join(notes),
                issued,
                amounts,
            ),
        )
    submissions = 0
    while True:
        submissions += 1
        try:
            await ctx.kotani.submit_refund_invoice(reference_id, issued.bolt11)
        except (KotaniBadRequest, KotaniRejected) as exc:
            notes.append(f"Kotani refused {issued.payment_hash}: {exc.kotani_message or exc.code}")
            if submissions >= MAX_SUBMISSIONS:
                raise PermanentFailure(
                    f"Kotani refused {submissions} invoices: {exc.kotani_message or exc.code}",
                    _record(
                        event,
                        RefundState.REJECTED,
                        "invoice.refused",
                        "; ".join(notes),
                        issued,
                        amounts,
                        submissions=submissions,
                    ),
                ) from exc
            issued = await ctx.invoices.get_or_mint(reference_id, amount, fresh=True)
        except KotaniUnauthorized as exc:
            notes.append("Kotani refused our API key (401): check RECEIVER_KOTANI_API_KEY")
            raise PermanentFailure(
                notes[-1],
                _record(
                    event,
                    RefundState.ACTION_REQUIRED,
                    "invoice.unauthorized",
                    "; ".join(notes),
                    issued,
                    amounts,
                ),
            ) from exc
        except KotaniNotFound as exc:
            raise PermanentFailure(
                f"Kotani does not know reference {reference_id} (404)",
                _record(
                    event,
                    RefundState.REJECTED,
                    "invoice.not_found",
                    "Kotani answered 404",
                    issued,
                    amounts,
                ),
            ) from exc
        except KotaniError as exc:
            raise EventFailed(f"submit-refund-invoice failed: {exc.code}") from exc
        else:
            break
    notes.insert(0, f"submitted {issued.payment_hash} ({int(amount)} msat)")
    return Handled(
        f"invoice submitted ({submissions} submission{'s' if submissions > 1 else ''})",
        _record(
            event,
            RefundState.INVOICE_SUBMITTED,
            "invoice.submitted",
            "; ".join(notes),
            issued,
            amounts,
            submissions=submissions,
        ),
    )


def _record(
    event: InboxEvent,
    state: RefundState,
    action: str,
    detail: str,
    issued: IssuedInvoice | None,
    fields: Mapping[str, object],
    *,
    submissions: int = 0,
) -> Apply:
    """The refund update that closes the event (``submissions`` adds to the running count)."""
    assert event.reference_id is not None
    reference_id = event.reference_id

    def apply(session: Session) -> None:
        values = {k: v for k, v in fields.items() if v is not None}
        if issued is not None:
            values.update(bolt11=issued.bolt11, payment_hash=issued.payment_hash)
        refund = record(
            session,
            reference_id,
            event_id=event.id,
            action=action,
            detail=detail,
            state=state,
            **values,
        )
        refund.submissions += submissions

    return apply
