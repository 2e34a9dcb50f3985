"""Option A: the ``refund_config`` an integrator puts in ``POST /api/v3/offramp``.

Kotani's "How refunds work" page (seed 002) and ``OfframpRefundConfigDto``: ``{bolt11,
payment_hash, amount_msat, expires_at, generate_invoice_url}`` where ``amount_msat`` must equal
the refund exactly and ``generate_invoice_url`` is what Kotani POSTs to when ``bolt11`` has
expired. The invoice comes from the same mint path as that URL (``InvoiceService.get_or_mint``):
verified before it is returned, and idempotent, so Kotani calling the URL later for the same
reference and amount gets the same invoice while it is still valid and unpaid.

Also served as ``POST /refund-configs`` (``handle_refund_configs``), behind ``RECEIVER_API_KEY``
(``Authorization: Bearer``, compared in constant time), for back ends that are not in Python.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse

from receiver.errors import ConfigError, Unauthorized
from receiver.handlers._body import read_json_object
from receiver.handlers.invoice_url import parse_invoice_request, validate_amount, validate_reference
from receiver.kotani.models import OfframpRefundConfig
from receiver.settings import Settings
from receiver.tokens import resolve_tokens

if TYPE_CHECKING:
    from receiver.services import Services

BODY_LIMIT = 16 * 1024


def service_url(settings: Settings) -> str:
    """``RECEIVER_PUBLIC_URL`` when set (what Kotani reaches), else the local address."""
    if settings.public_url is not None:
        return str(settings.public_url).rstrip("/")
    host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"  # noqa: S104
    return f"http://{host}:{settings.port}"


def generate_invoice_url(settings: Settings) -> str:
    """The URL Kotani calls for a fresh invoice: ``<service>/invoices/<current token>``.

    The first configured token is the current one (the others are kept only for rotation). When
    none exists yet, one is created exactly as ``serve`` would.
    """
    tokens, _ = resolve_tokens(settings, create=True)
    if not tokens:
        raise ConfigError("RECEIVER_INVOICE_TOKENS: no invoice token is configured")
    return f"{service_url(settings)}/invoices/{tokens[0].get_secret_value()}"


async def refund_config(
    services: Services, reference_id: str, amount_msat: int
) -> OfframpRefundConfig:
    """The Option A refund config for ``reference_id``, minted (or reused) and verified."""
    settings = services.settings
    amount = validate_amount(amount_msat, settings.max_amount_msat)
    reference = validate_reference(reference_id)
    issued = await services.invoices.get_or_mint(reference, amount)
    return OfframpRefundConfig(
        bolt11=issued.bolt11,
        payment_hash=issued.payment_hash,
        amount_msat=issued.amount_msat,
        # Whole seconds, rounded down: never claim the invoice lives longer than it does.
        expires_at=issued.expires_at.replace(microsecond=0),
        generate_invoice_url=generate_invoice_url(settings),
    )


def contract_json(config: OfframpRefundConfig) -> dict[str, object]:
    """The JSON object to send as ``refund_config`` (no ``address``: Lightning only)."""
    return config.model_dump(mode="json", exclude_none=True)


def check_api_key(request: Request, settings: Settings) -> None:
    """``Authorization: Bearer <RECEIVER_API_KEY>``, compared in constant time.

    Without a configured key the endpoint refuses everyone (it mints invoices).
    """
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    expected = settings.api_key.get_secret_value() if settings.api_key is not None else ""
    ok = hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), expected.encode("utf-8")
    )
    if not expected or scheme.lower() != "bearer" or not ok:
        raise Unauthorized("missing or wrong credentials")


async def handle_refund_configs(request: Request) -> JSONResponse:
    """``POST /refund-configs`` ``{"amount_msat", "reference_id"}`` -> the refund config."""
    services: Services = request.app.state.services
    check_api_key(request, services.settings)
    _, payload = await read_json_object(request, BODY_LIMIT)
    wanted = parse_invoice_request(payload, services.settings.max_amount_msat)
    config = await refund_config(services, wanted.reference_id, int(wanted.amount_msat))
    return JSONResponse(contract_json(config))
