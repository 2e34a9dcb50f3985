"""``POST /invoices/{token}``: the generate_invoice_url contract Kotani calls.

Request ``{"amount_msat": int, "reference_id": str}`` (``referenceId`` also accepted, unknown
fields ignored); answer ``{"bolt11", "payment_hash", "amount_msat", "expires_at"}`` within
Kotani's 10 s, from ``InvoiceService.get_or_mint``. The token is checked first, in constant time,
and never echoed.
"""

from __future__ import annotations

import re
import sys
import unicodedata
from dataclasses import dataclass
from functools import cache
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.amounts import Msat
from receiver.errors import NotFound, ReceiverError, ValidationFailed
from receiver.handlers._body import read_json_object
from receiver.handlers.schemas import InvoiceAnswer
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


def _character_class(spans: list[tuple[int, int]]) -> str:
    def one(code: int) -> str:  # \\uXXXX in the BMP (ECMA-262 and Python agree); astral: literal
        return f"\\u{code:04x}" if code < 0x10000 else chr(code)

    return "".join(one(a) if a == b else f"{one(a)}-{one(b)}" for a, b in spans)


@cache
def reference_patterns() -> tuple[str, str]:
    """What ``validate_reference`` accepts, as two JSON Schema patterns: every character allowed
    (``pattern``), and the blank references it refuses (``not: {pattern}``). Computed from
    ``_FORBIDDEN_CATEGORIES`` and this Python's Unicode database, so they cannot drift; lone
    surrogates are left out (no UTF-8 text carries them; a ``\\ud800`` escape is refused)."""
    chars = "".join(map(chr, range(sys.maxunicode + 1)))
    ok = bytes(c not in _FORBIDDEN_CATEGORIES for c in map(unicodedata.category, chars))
    space = bytes(a and b for a, b in zip(ok, map(str.isspace, chars), strict=True))
    allowed, blank = (
        [(m.start(), m.end() - 1) for m in re.finditer(b"\x01+", flags)] for flags in (ok, space)
    )
    return f"^[{_character_class(allowed)}]*$", f"^[{_character_class(blank)}]*$"


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
    return JSONResponse(InvoiceAnswer.model_validate(issued.contract_json()).answer())
