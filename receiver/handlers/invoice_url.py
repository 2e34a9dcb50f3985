"""``POST /invoices/{token}``: the generate_invoice_url contract Kotani calls.

Request ``{"amount_msat": int, "reference_id": str}`` (``referenceId`` also accepted, unknown
fields ignored); answer ``{"bolt11", "payment_hash", "amount_msat", "expires_at"}`` within
Kotani's 10 s, from ``InvoiceService.get_or_mint``. The token is checked first, in constant time,
and never echoed.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.amounts import Msat
from receiver.errors import NotFound, ReceiverError, ValidationFailed
from receiver.handlers._body import read_json_object
from receiver.metrics import INVOICE_REQUESTS
from receiver.services import Services

BODY_LIMIT = 16 * 1024
REFERENCE_MAX = 128
# Cc control, Cf format (bidi overrides, zero-width), Cs surrogates, Zl/Zp line separators.
_FORBIDDEN_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}


@dataclass(frozen=True)
class InvoiceRequest:
    """A validated generate_invoice_url request."""

    amount_msat: Msat
    reference_id: str


def validate_amount(value: object, max_amount_msat: int) -> Msat:
    """A positive JSON integer no larger than the configured maximum."""
    if isinstance(value, bool) or not isinstance(value, int):
        kind = "a boolean" if isinstance(value, bool) else type(value).__name__
        raise ValidationFailed(f"amount_msat must be an integer number of msat, not {kind}")
    if value <= 0:
        raise ValidationFailed("amount_msat must be greater than 0")
    if value > max_amount_msat:
        raise ValidationFailed(f"amount_msat must be at most {max_amount_msat}")
    return Msat(value)


def validate_reference(value: object) -> str:
    """A non-blank reference of at most 128 printable characters."""
    if not isinstance(value, str):
        raise ValidationFailed("reference_id must be a string")
    if not value.strip():
        raise ValidationFailed("reference_id must not be empty")
    if len(value) > REFERENCE_MAX:
        raise ValidationFailed(f"reference_id must be at most {REFERENCE_MAX} characters")
    if any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in value):
        raise ValidationFailed("reference_id must not contain control or invisible characters")
    return value


def parse_invoice_request(payload: dict[str, Any], max_amount_msat: int) -> InvoiceRequest:
    """Validate the body; ``referenceId`` is accepted as an alias of ``reference_id``."""
    if "amount_msat" not in payload:
        raise ValidationFailed("amount_msat is required")
    amount = validate_amount(payload["amount_msat"], max_amount_msat)
    snake, camel = payload.get("reference_id"), payload.get("referenceId")
    if snake is None and camel is None:
        raise ValidationFailed("reference_id is required")
    if snake is not None and camel is not None and snake != camel:
        raise ValidationFailed("reference_id and referenceId differ; send one")
    return InvoiceRequest(amount, validate_reference(snake if snake is not None else camel))


async def create_invoice(request: Request) -> JSONResponse:
    services: Services = request.app.state.services
    if not services.tokens.matches(str(request.path_params["token"])):
        raise NotFound("no invoice URL here")
    try:
        _, payload = await read_json_object(request, BODY_LIMIT)
        wanted = parse_invoice_request(payload, services.settings.max_amount_msat)
        issued = await services.invoices.get_or_mint(wanted.reference_id, wanted.amount_msat)
    except ReceiverError as exc:
        INVOICE_REQUESTS.labels("unavailable" if exc.status >= 500 else "refused").inc()
        raise
    INVOICE_REQUESTS.labels("reused" if issued.reused else "minted").inc()
    return JSONResponse(issued.contract_json())
