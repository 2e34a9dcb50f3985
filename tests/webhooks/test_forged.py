"""Whoever knows a URL token but not the signing secret cannot steer refunds (issue: the
invoice token steers refunds). Unverified deliveries are stored as hints, never acted on, and
never make Kotani's signed delivery a duplicate; a re-spelled signed body means what was signed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import httpx
import respx
from sqlalchemy import select

from receiver.handlers.kotani_webhook import authenticate
from receiver.inbox.models import EventStatus, RefundState, TransactionStatus, WebhookEvent
from receiver.inbox.store import NewEvent
from receiver.inbox.worker import UNVERIFIED_OUTCOME
from receiver.settings import Settings
from receiver.webhooks.signature import signed_bytes
from tests.conftest import TOKEN
from tests.inbox.conftest import SECRET, new_event, signed
from tests.inbox.test_handlers import OK, SUBMIT, assert_submission, invoice_needed, pipeline
from tests.support.server import serve_app

__all__ = ["pipeline"]  # the fixture, shared with the handler tests

DIRECT = "direct-token-0123456789abcdef"


def forged(settings: Settings, body: dict[str, Any]) -> NewEvent:
    """A delivery to the direct-mode URL (no signature), through the real authentication."""
    raw = json.dumps(body).encode()
    return authenticate(raw, {}, settings, token=True)


async def test_forged_completion_does_not_stop_the_signed_invoice_needed(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=True) as kotani:
            route = kotani.post(f"{SUBMIT}/TXN-F").respond(200, json=OK)
            fake = await p.runtime.inbox.accept(
                forged(p.settings, {"event": "refund.completed", "data": {"referenceId": "TXN-F"}})
            )
            await p.worker.drain()
            genuine = await p.runtime.inbox.accept(
                new_event("refund.lightning.invoice_needed", invoice_needed("TXN-F", 2_000_000))
            )
            await p.worker.drain()
        assert (await p.event(fake.event_id)).outcome == UNVERIFIED_OUTCOME
        assert not genuine.duplicate
        assert route.call_count == 1
        assert_submission(route.calls.last.request, "TXN-F", 2_000_000)
        assert (await p.refund("TXN-F")).state is RefundState.INVOICE_SUBMITTED


async def test_forged_stale_status_does_not_outrank_the_signed_one(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        bare = {"referenceId": "TXN-P", "status": "FAILED", "updated_at": "2999-01-01T00:00:00Z"}
        await p.runtime.inbox.accept(forged(p.settings, bare))
        await p.worker.drain()
        await p.deliver(
            "transaction.offramp.status.updated",
            {"referenceId": "TXN-P", "status": "SUCCESSFUL", "updated_at": "2026-12-01T10:00:00Z"},
        )
        await p.worker.drain()
        async with p.services.db.session() as session:
            row = await session.get(TransactionStatus, "TXN-P")
        assert row is not None and row.status == "SUCCESSFUL"


async def test_forged_invoice_needed_never_reaches_kotani(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=False) as kotani:
            anything = kotani.route().respond(200, json=OK)
            body = {
                "event": "refund.lightning.invoice_needed",
                "data": invoice_needed("TXN-BIG", 99_000_000_000),
            }
            accepted = await p.runtime.inbox.accept(forged(p.settings, body))
            await p.worker.drain()
        assert anything.call_count == 0
        event = await p.event(accepted.event_id)
        assert event.status is EventStatus.DONE and event.outcome == UNVERIFIED_OUTCOME
        async with p.services.db.session() as session:
            minted = await session.scalar(
                select(WebhookEvent.id).where(WebhookEvent.reference_id == "NOPE")
            )
        assert minted is None


async def test_a_forged_copy_sent_first_does_not_make_the_genuine_a_duplicate(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        data = {"referenceId": "TXN-C", "status": "SUCCESSFUL", "updated_at": "2026-12-01T10:00Z"}
        copy = {"event": "transaction.offramp.status.updated", "data": data}
        first = await p.runtime.inbox.accept(forged(p.settings, copy))
        genuine = await p.runtime.inbox.accept(new_event(copy["event"], data))
        assert not genuine.duplicate and genuine.event_id != first.event_id


async def test_a_respelled_signed_body_means_what_was_signed(pipeline) -> None:  # type: ignore[no-untyped-def]
    """3000000 re-spelled 3000000.0000000001 keeps the signature (JSON.stringify of the parse
    is the same): the handler must read 3000000, and the genuine copy is then the duplicate."""
    async with pipeline(webhook_secrets=SECRET) as p:
        data = invoice_needed("TXN-R", 3_000_000)
        body, signature = signed("refund.lightning.invoice_needed", data)
        respelled = body.replace(b'"refundAmount":3000000', b'"refundAmount":3000000.0000000001')
        assert respelled != body
        event = authenticate(respelled, {"x-kotani-signature": signature}, p.settings, token=False)
        with respx.mock(assert_all_called=True) as kotani:
            route = kotani.post(f"{SUBMIT}/TXN-R").respond(200, json=OK)
            await p.runtime.inbox.accept(event)
            await p.worker.drain()
            again = await p.runtime.inbox.accept(new_event("refund.lightning.invoice_needed", data))
        assert again.duplicate
        assert route.call_count == 1
        assert_submission(route.calls.last.request, "TXN-R", 3_000_000)
        assert signed_bytes("x", {}) == b'{"event":"x","data":{}}'


async def test_direct_mode_is_its_own_secret_and_closed_beside_signing_secrets(
    make_settings: Callable[..., Settings],
) -> None:
    bare = {"referenceId": "OFF-1", "status": "SUCCESSFUL"}
    # off unless configured: the invoice token does not open it
    async with serve_app(__import__("receiver.app").app.create_app(make_settings())) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            assert (await client.post(f"/webhooks/kotani/{TOKEN}", json=bare)).status_code == 404
    # refused while signing secrets are set, unless explicitly allowed
    secrets = {"webhook_secrets": "whsec_forged_test_0123456789", "direct_tokens": DIRECT}
    for allow, expected in ((False, 404), (True, 200)):
        settings = make_settings(**secrets, allow_direct_with_secrets=allow)
        async with serve_app(__import__("receiver.app").app.create_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                token_url = await client.post(f"/webhooks/kotani/{TOKEN}", json=bare)
                direct = await client.post(f"/webhooks/kotani/{DIRECT}", json=bare)
        assert token_url.status_code == 404
        assert direct.status_code == expected
