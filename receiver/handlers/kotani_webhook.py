"""``POST /webhooks/kotani`` and ``POST /webhooks/kotani/{token}``: verify, persist, then 2xx.

Signed mode (``/webhooks/kotani``): the ``X-Kotani-Signature`` (or the body's ``signature``) must
match one of ``RECEIVER_WEBHOOK_SECRETS`` (``receiver.webhooks.signature``). A delivery that
carries no signature is accepted only with ``RECEIVER_ALLOW_UNSIGNED=true``. Every refusal is the
same 401.

Direct mode (``/webhooks/kotani/{token}``): off unless ``RECEIVER_DIRECT_TOKENS`` is set (its
own URL secret, never the invoice token), and refused while ``RECEIVER_WEBHOOK_SECRETS`` is set
unless ``RECEIVER_ALLOW_DIRECT_WITH_SECRETS=true``; the token is checked in constant time, an
unknown one is 404 (never echoed). The body may be the bare transaction object (or an
undocumented crypto-bridge callback): it is stored whole. A signature, when present and a
secret is configured, must still verify.

Unverified deliveries (direct mode, ``ALLOW_UNSIGNED``) are hints: stored, forwarded and shown
to operators, never acted on (``receiver.inbox.worker``), and deduplicated apart from signed
ones, so no forged copy can close a refund or turn Kotani's signed delivery into a duplicate.

Either way the raw body, the headers and how it was authenticated are committed before the
answer (``Inbox.accept``); a duplicate answers 200 with the first copy's id. Body > 64 KiB ->
413, not JSON -> 400. The event is handled later by the worker, whatever its type.
"""

from __future__ import annotations

import asyncio
import hashlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from functools import partial

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver.errors import NotFound, ReceiverError
from receiver.handlers import internal_api
from receiver.handlers._body import read_body
from receiver.handlers.schemas import WebhookAccepted
from receiver.inbox.models import Verification
from receiver.inbox.store import NewEvent
from receiver.metrics import WEBHOOKS
from receiver.runtime import WebhookRuntime
from receiver.settings import Settings
from receiver.tokens import TokenSet
from receiver.webhooks import jsjson
from receiver.webhooks.delivery import (
    Delivery,
    classify,
    envelope_delivery,
    has_signature,
    storable_headers,
)
from receiver.webhooks.errors import WebhookMalformed, WebhookUnauthorized
from receiver.webhooks.signature import SIGNATURE_HEADER, verify

BODY_LIMIT = 64 * 1024
"""Kotani's deliveries are a few KiB; a bigger body is refused before any parse or HMAC."""
INLINE_VERIFY = 8 * 1024
"""Bodies up to this size are verified on the event loop (well under a millisecond)."""
_VERIFIER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="webhook-verify")


def authenticate(
    raw: bytes, headers: dict[str, str], settings: Settings, *, token: bool
) -> NewEvent:
    """The delivery as it will be stored, or ``WebhookUnauthorized`` / a 400 error.

    ``headers`` are the request's, lower-cased (``storable_headers``).
    """
    parsed = jsjson.loads(raw)
    if not isinstance(parsed, dict):
        raise WebhookMalformed("the body is not a JSON object")
    header = headers.get(SIGNATURE_HEADER)
    signed = has_signature(parsed, header)
    if signed and settings.webhook_secrets:
        verified = verify(raw, header, settings.webhook_secrets, parsed=parsed)
        delivery = envelope_delivery(verified.event, verified.data)
        detail = f"{verified.form}#{verified.secret_index}"
        return NewEvent(delivery, Verification.SIGNATURE, detail, raw, headers)
    if token:
        return NewEvent(_unverified(raw, parsed), Verification.TOKEN, "", raw, headers)
    if settings.allow_unsigned:
        detail = "signature not checked (no secret)" if signed else ""
        return NewEvent(_unverified(raw, parsed), Verification.UNSIGNED, detail, raw, headers)
    raise WebhookUnauthorized()


def _unverified(raw: bytes, parsed: dict[str, jsjson.JSValue]) -> Delivery:
    """An unverified delivery, deduplicated apart from signed ones: a forged copy of an
    event sent first must never make Kotani's genuine signed delivery a "duplicate"."""
    delivery = classify(raw, parsed)
    key = hashlib.sha256(f"unverified:{delivery.dedup_key}".encode()).hexdigest()
    return replace(delivery, dedup_key=key)


async def _accept(request: Request, *, token: bool) -> JSONResponse:
    runtime: WebhookRuntime = request.app.state.webhooks
    raw = await read_body(request, BODY_LIMIT)
    headers = storable_headers(request.headers.items())
    settings = runtime.services.settings
    try:
        if len(raw) <= INLINE_VERIFY:
            event = authenticate(raw, headers, settings, token=token)
        else:
            # Parsing and rebuilding a large body costs up to ~100 ms of CPU before a bogus
            # signature is known: done on one thread of its own, the event loop keeps taking
            # turns (the GIL switches every 5 ms), so Kotani's invoice calls are not starved.
            loop = asyncio.get_running_loop()
            event = await loop.run_in_executor(
                _VERIFIER, partial(authenticate, raw, headers, settings, token=token)
            )
    except ReceiverError:
        WEBHOOKS.labels("rejected").inc()
        raise
    accepted = await runtime.inbox.accept(event)
    WEBHOOKS.labels("duplicate" if accepted.duplicate else "accepted").inc()
    answer = WebhookAccepted(ok=True, event_id=accepted.event_id, duplicate=accepted.duplicate)
    return JSONResponse(answer.answer())


async def kotani_webhook(request: Request) -> JSONResponse:
    """Signed deliveries (or unsigned, when explicitly allowed)."""
    return await _accept(request, token=False)


async def kotani_webhook_direct(request: Request) -> JSONResponse:
    """Deliveries to the direct-mode URL, which carries its own secret (never the invoice
    token: that one travels in every Option A refund_config)."""
    runtime: WebhookRuntime = request.app.state.webhooks
    settings = runtime.services.settings
    if not direct_mode_open(settings) or not TokenSet(settings.direct_tokens).matches(
        str(request.path_params["token"])
    ):
        raise NotFound("no webhook URL here")
    return await _accept(request, token=True)


def direct_mode_open(settings: Settings) -> bool:
    """Direct mode is off unless RECEIVER_DIRECT_TOKENS is set, and refused beside signing
    secrets unless RECEIVER_ALLOW_DIRECT_WITH_SECRETS says so."""
    if not settings.direct_tokens:
        return False
    return not settings.webhook_secrets or settings.allow_direct_with_secrets


def routes() -> list[Route]:
    """The webhook endpoints and the internal read/replay API (``handlers.internal_api``)."""
    return [
        Route("/webhooks/kotani", kotani_webhook, methods=["POST"]),
        Route("/webhooks/kotani/{token}", kotani_webhook_direct, methods=["POST"]),
        *internal_api.routes(),
    ]
