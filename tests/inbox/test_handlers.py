"""Event handlers through the worker: fake backend (real signed invoices), Kotani mocked by respx.

Every respx test asserts the outgoing method, URL, headers and body; respx refuses any request
it has no route for, so "no other host is called" is enforced, not assumed.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import respx
from sqlalchemy import select

from receiver.amounts import Msat
from receiver.handlers.events import handler_for
from receiver.inbox.models import (
    EventStatus,
    PaymentCheck,
    Refund,
    RefundState,
    TransactionStatus,
    WebhookEvent,
)
from receiver.inbox.queries import refund_view
from receiver.inbox.worker import Worker
from receiver.lightning.fake import FakeBackend
from receiver.retry import RetryPolicy
from receiver.runtime import WebhookRuntime, open_webhooks
from receiver.services import Services, open_services
from receiver.settings import Settings
from tests.inbox.conftest import KOTANI, KOTANI_KEY, new_event
from tests.support import bolt11_ref

SUBMIT = f"{KOTANI}/api/v3/offramp/submit-refund-invoice"
RETRY = f"{KOTANI}/api/v3/offramp/retry-refund"
OK = {"success": True, "message": "Invoice submitted successfully", "data": {}}
REFUSED = {
    "success": False,
    "message": "Invalid invoice or not eligible for Lightning refund",
    "data": {},
}


@dataclass
class Pipeline:
    settings: Settings
    services: Services
    runtime: WebhookRuntime
    worker: Worker

    async def deliver(self, event: str, data: dict[str, Any]) -> int:
        accepted = await self.runtime.inbox.accept(new_event(event, data))
        return accepted.event_id

    async def event(self, event_id: int) -> WebhookEvent:
        async with self.services.db.session() as session:
            row = await session.get(WebhookEvent, event_id)
            assert row is not None
            return row

    async def refund(self, reference_id: str) -> Refund:
        async with self.services.db.session() as session:
            row = await session.get(Refund, reference_id)
            assert row is not None
            return row

    @property
    def fake(self) -> FakeBackend:
        backend = self.services.chain.backends[0]
        assert isinstance(backend, FakeBackend)
        return backend


@pytest.fixture
def pipeline(make_settings: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def build(**overrides: Any) -> AsyncIterator[Pipeline]:
        values = {"kotani_api_key": KOTANI_KEY, "kotani_base_url": "sandbox", **overrides}
        settings = make_settings(**values)
        async with open_services(settings) as services:
            async with open_webhooks(services, start=False) as runtime:
                runtime.inbox.policy = RetryPolicy(max_attempts=4, base=0.01, cap=0.02)
                context = replace(runtime.worker.context, payment_rechecks=(0.05,))
                worker = Worker(runtime.inbox, context, handlers=handler_for)
                yield Pipeline(settings, services, runtime, worker)

    return build


def invoice_needed(reference: str, msat: int, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "referenceId": reference,
        "status": "REFUND_PENDING",
        "onchainStatus": "SUCCESSFUL",
        "refundStatus": "INVOICE_NEEDED",
        "refundAmount": msat,
        "refundAmountSats": msat / 1000,
        "chain": "LIGHTNING",
        "currency": "KES",
        "requiresAction": True,
        "action": {
            "type": "SUBMIT_LIGHTNING_INVOICE",
            "submitUrl": f"{SUBMIT}/{reference}",
            "method": "POST",
            "body": {"invoice": "lnbc..."},
            "invoiceRequirements": {"amount": msat // 1000, "currency": "SATS", "format": "bolt11"},
        },
    }
    data.update(changes)
    return data


def assert_submission(request: httpx.Request, reference: str, msat: int) -> str:
    assert request.method == "POST"
    assert str(request.url) == f"{SUBMIT}/{reference}"
    assert request.headers["authorization"] == f"Bearer {KOTANI_KEY}"
    assert request.headers["content-type"] == "application/json"
    body = json.loads(request.content)
    assert set(body) == {"invoice"}
    decoded = bolt11_ref.decode(body["invoice"])
    assert decoded.amount_msat == msat
    return str(body["invoice"])


async def test_invoice_needed_mints_and_submits(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock(assert_all_called=True) as kotani:
            route = kotani.post(f"{SUBMIT}/TXN-1").respond(200, json=OK)
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-1", 1_500_000)
            )
            assert await p.worker.drain() == 1
        assert route.call_count == 1
        bolt11 = assert_submission(route.calls.last.request, "TXN-1", 1_500_000)
        event = await p.event(event_id)
        assert (
            event.status is EventStatus.DONE and event.outcome == "invoice submitted (1 submission)"
        )
        refund = await p.refund("TXN-1")
        assert refund.state is RefundState.INVOICE_SUBMITTED
        assert (refund.bolt11, refund.amount_msat, refund.amount_sats) == (bolt11, 1_500_000, 1500)
        # the invoice is the one the mint path stored (same idempotent path as generate_invoice_url)
        again = await p.services.invoices.get_or_mint("TXN-1", Msat(1_500_000))
        assert again.bolt11 == bolt11 and again.reused


@pytest.mark.parametrize(
    "submit_url",
    [
        "https://evil.example.com/api/v3/offramp/submit-refund-invoice/TXN-2",
        "https://sandbox-api.kotanipay.com.evil.example.com/api/v3/offramp/submit-refund-invoice/TXN-2",
        "http://sandbox-api.kotanipay.com/api/v3/offramp/submit-refund-invoice/TXN-2",
        "https://sandbox-api.kotanipay.com/api/v3/offramp/submit-refund-invoice/OTHER",
        "https://user:pw@sandbox-api.kotanipay.com/api/v3/offramp/submit-refund-invoice/TXN-2",
        "https://sandbox-api.kotanipay.com:8443/api/v3/offramp/submit-refund-invoice/TXN-2",
    ],
)
async def test_foreign_submit_url_is_never_called(pipeline, submit_url: str) -> None:  # type: ignore[no-untyped-def]
    data = invoice_needed("TXN-2", 2_000_000)
    data["action"]["submitUrl"] = submit_url
    async with pipeline() as p:
        with respx.mock(assert_all_called=False) as mock:
            ours = mock.post(f"{SUBMIT}/TXN-2").respond(200, json=OK)
            foreign = mock.route(host="evil.example.com").respond(200, json=OK)
            other = mock.route(url__regex=r".*").respond(200, json=OK)
            await p.deliver("refund.lightning.invoice_needed", data)
            await p.worker.drain()
            assert [str(c.request.url) for c in mock.calls] == [f"{SUBMIT}/TXN-2"]
        assert ours.call_count == 1 and foreign.call_count == 0 and other.call_count == 0
        view = await refund_view(p.services.db, "TXN-2")
        assert "ignored" in view["history"][-1]["detail"]


async def test_own_submit_url_is_not_flagged(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock() as mock:
            mock.post(f"{SUBMIT}/TXN-3").respond(200, json=OK)
            await p.deliver("refund.lightning.invoice_needed", invoice_needed("TXN-3", 3000))
            await p.worker.drain()
        view = await refund_view(p.services.db, "TXN-3")
        assert "ignored" not in view["history"][-1]["detail"]


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"refundAmountSats": 1501}, "refundAmountSats"),
        ({"refundAmount": 1500.5}, "whole number of msat"),
        ({"refundAmount": "1500000"}, "whole number of msat"),
        ({"refundAmount": 0}, "outside"),
        (
            {"action": {"invoiceRequirements": {"amount": 1499, "currency": "SATS"}}},
            "invoiceRequirements",
        ),
        (
            {"action": {"invoiceRequirements": {"amount": 1500, "currency": "BTC"}}},
            "invoiceRequirements",
        ),
    ],
)
async def test_amount_mismatch_is_dead_and_nothing_is_minted_or_sent(  # type: ignore[no-untyped-def]
    pipeline, changes: dict[str, Any], reason: str
) -> None:
    async with pipeline() as p:
        with respx.mock(assert_all_called=False) as mock:
            route = mock.post(url__regex=r".*").respond(200, json=OK)
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-M", 1_500_000, **changes)
            )
            await p.worker.drain()
        assert route.call_count == 0
        event = await p.event(event_id)
        assert event.status is EventStatus.DEAD and reason in (event.last_error or "")
        assert event.attempts == 1
        assert await p.services.invoices.for_reference("TXN-M") == []
        refund = await p.refund("TXN-M")
        assert refund.state is RefundState.REJECTED and refund.bolt11 is None


async def test_kotani_400_gets_a_fresh_invoice(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock() as mock:
            route = mock.post(f"{SUBMIT}/TXN-4")
            route.side_effect = [httpx.Response(400, json=REFUSED), httpx.Response(200, json=OK)]
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-4", 21_000)
            )
            await p.worker.drain()
        first, second = (assert_submission(c.request, "TXN-4", 21_000) for c in route.calls)
        assert first != second
        assert (await p.event(event_id)).status is EventStatus.DONE
        refund = await p.refund("TXN-4")
        assert (refund.state, refund.bolt11, refund.submissions) == (
            RefundState.INVOICE_SUBMITTED,
            second,
            2,
        )


async def test_kotani_400_is_bounded(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock() as mock:
            route = mock.post(f"{SUBMIT}/TXN-5").respond(400, json=REFUSED)
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-5", 7000)
            )
            await p.worker.drain()
        assert route.call_count == 3
        assert len({c.request.content for c in route.calls}) == 3
        event = await p.event(event_id)
        assert event.status is EventStatus.DEAD and "Invalid invoice" in (event.last_error or "")
        assert (await p.refund("TXN-5")).state is RefundState.REJECTED


async def test_kotani_401_is_dead_with_a_configuration_error(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock() as mock:
            route = mock.post(f"{SUBMIT}/TXN-6").respond(
                401, json={"success": False, "message": "Unauthorized", "data": {}}
            )
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-6", 9000)
            )
            await p.worker.drain()
        assert route.call_count == 1
        event = await p.event(event_id)
        assert event.status is EventStatus.DEAD and "RECEIVER_KOTANI_API_KEY" in (
            event.last_error or ""
        )
        refund = await p.refund("TXN-6")
        assert refund.state is RefundState.ACTION_REQUIRED and refund.bolt11


@pytest.mark.parametrize(
    "failure",
    [httpx.Response(503, json={"message": "down"}), httpx.ReadTimeout("slow"), httpx.Response(429)],
)
async def test_kotani_outages_are_retried_with_the_same_invoice(pipeline, failure: Any) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        p.runtime.inbox.policy = RetryPolicy(max_attempts=4, base=30, cap=60)
        with respx.mock() as mock:
            route = mock.post(f"{SUBMIT}/TXN-7")
            route.side_effect = [failure, httpx.Response(200, json=OK)]
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-7", 4000)
            )
            assert await p.worker.drain() == 1
            event = await p.event(event_id)
            assert event.status is EventStatus.PENDING and event.last_error
            assert event.last_error.startswith(
                "event.failed: submit-refund-invoice failed: kotani."
            )
            await _due_now(p, event_id)
            assert await p.worker.drain() == 1
        first, second = (assert_submission(c.request, "TXN-7", 4000) for c in route.calls)
        assert first == second  # the stored invoice is reused, not a new one per retry
        event = await p.event(event_id)
        assert (event.status, event.attempts) == (EventStatus.DONE, 2)


async def _due_now(p: Pipeline, event_id: int) -> None:
    async with p.services.db.session() as session, session.begin():
        row = await session.get(WebhookEvent, event_id)
        assert row is not None
        row.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)


async def test_without_api_key_the_refund_needs_action(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(kotani_api_key=None) as p:
        with respx.mock(assert_all_called=False) as mock:
            any_call = mock.route().respond(200, json=OK)
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("TXN-8", 5000)
            )
            await p.worker.drain()
        assert any_call.call_count == 0
        assert (await p.event(event_id)).status is EventStatus.DONE
        refund = await p.refund("TXN-8")
        assert refund.state is RefundState.ACTION_REQUIRED
        assert refund.bolt11 and bolt11_ref.decode(refund.bolt11).amount_msat == 5000


async def test_refund_completed_confirms_payment_with_our_backend(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock() as mock:
            mock.post(f"{SUBMIT}/TXN-9").respond(200, json=OK)
            mock.post(f"{SUBMIT}/TXN-10").respond(200, json=OK)
            await p.deliver("refund.lightning.invoice_needed", invoice_needed("TXN-9", 6000))
            await p.deliver("refund.lightning.invoice_needed", invoice_needed("TXN-10", 6000))
            await p.worker.drain()
        paid = await p.refund("TXN-9")
        assert paid.payment_hash is not None
        await p.fake.pay(paid.payment_hash, Msat(6000))
        completed = {
            "status": "REVERSED",
            "refundStatus": "SUCCESSFUL",
            "refundAmount": 6,
            "refundTransactionHash": "abc",
            "chain": "LIGHTNING",
            "token": "MSAT",
        }
        one = await p.deliver("refund.completed", {"referenceId": "TXN-9", **completed})
        two = await p.deliver("refund.completed", {"referenceId": "TXN-10", **completed})
        await p.worker.drain()
        assert (await p.event(one)).outcome == "refund completed; payment paid"
        assert (await p.event(two)).outcome == "refund completed; payment unconfirmed"
        first, second = await p.refund("TXN-9"), await p.refund("TXN-10")
        assert (first.state, first.payment, first.transaction_hash) == (
            RefundState.COMPLETED,
            PaymentCheck.PAID,
            "abc",
        )
        assert (second.state, second.payment) == (RefundState.COMPLETED, PaymentCheck.UNCONFIRMED)


async def test_refund_completed_without_our_invoice_is_recorded(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        await p.deliver(
            "refund.completed",
            {"referenceId": "ONCHAIN", "refundAmount": 38.5, "chain": "CELO", "status": "REVERSED"},
        )
        await p.worker.drain()
        refund = await p.refund("ONCHAIN")
        assert (refund.state, refund.payment, refund.refund_amount) == (
            RefundState.COMPLETED,
            None,
            "38.5",
        )


async def test_invoice_needed_after_completion_submits_nothing(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        await p.deliver("refund.completed", {"referenceId": "LATE", "status": "REVERSED"})
        await p.worker.drain()
        with respx.mock(assert_all_called=False) as mock:
            any_call = mock.route().respond(200, json=OK)
            event_id = await p.deliver(
                "refund.lightning.invoice_needed", invoice_needed("LATE", 1000)
            )
            await p.worker.drain()
        assert any_call.call_count == 0
        assert "already completed" in ((await p.event(event_id)).outcome or "")


def failed(reference: str, retries: int) -> dict[str, Any]:
    return {
        "referenceId": reference,
        "refundStatus": "FAILED",
        "refundAmount": 12.5,
        "chain": "CELO",
        "token": "CUSD",
        "currency": "KES",
        "error": "insufficient funds for gas",
        "totalRetries": retries,
    }


async def test_refund_failed_retries_at_most_the_configured_times(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(auto_retry_refund=True, max_refund_retries=1) as p:
        with respx.mock() as mock:
            route = mock.post(f"{RETRY}/TXN-F").respond(
                200, json={"success": True, "message": "ok", "data": {}}
            )
            first = await p.deliver("refund.failed", failed("TXN-F", 10))
            second = await p.deliver("refund.failed", failed("TXN-F", 11))
            await p.worker.drain()
        assert route.call_count == 1
        request = route.calls.last.request
        assert request.method == "POST" and request.content == b""
        assert request.headers["authorization"] == f"Bearer {KOTANI_KEY}"
        assert (await p.event(first)).outcome == "refund failed; retry-refund requested"
        assert "budget spent" in ((await p.event(second)).outcome or "")
        refund = await p.refund("TXN-F")
        assert (refund.state, refund.retry_requests, refund.total_retries) == (
            RefundState.FAILED,
            1,
            11,
        )
        assert refund.error == "insufficient funds for gas"


async def test_refund_failed_retry_refused_is_recorded(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(auto_retry_refund=True) as p:
        with respx.mock() as mock:
            mock.post(f"{RETRY}/TXN-G").respond(
                400, json={"success": False, "message": "Cannot retry refund", "data": {}}
            )
            event_id = await p.deliver("refund.failed", failed("TXN-G", 5))
            await p.worker.drain()
        assert "Cannot retry refund" in ((await p.event(event_id)).outcome or "")


async def test_refund_failed_without_auto_retry_calls_nothing(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        with respx.mock(assert_all_called=False) as mock:
            any_call = mock.route().respond(200, json=OK)
            await p.deliver("refund.failed", failed("TXN-H", 5))
            await p.worker.drain()
        assert any_call.call_count == 0
        assert (await p.refund("TXN-H")).state is RefundState.FAILED


async def test_newest_status_wins_whatever_the_arrival_order(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        for status, at in [("PENDING", "10:00"), ("SUCCESSFUL", "10:05"), ("CANCELLED", "10:02")]:
            await p.deliver(
                "transaction.offramp.status.updated",
                {
                    "referenceId": "TXN-S",
                    "status": status,
                    "updated_at": f"2024-11-22T{at}:00.000Z",
                },
            )
            await p.worker.drain()
        async with p.services.db.session() as session:
            row = await session.get(TransactionStatus, "TXN-S")
        assert row is not None and row.status == "SUCCESSFUL"
        events = (await refund_view(p.services.db, "TXN-S"))["events"]
        assert "kept SUCCESSFUL" in events[0]["outcome"]


async def test_unknown_event_types_are_stored_and_closed(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline() as p:
        event_id = await p.deliver("kyc.status.changed", {"kycId": "k1", "status": "APPROVED"})
        await p.worker.drain()
        event = await p.event(event_id)
        assert event.status is EventStatus.DONE and "no handler" in (event.outcome or "")


async def test_a_crashing_handler_is_retried_then_dead(pipeline) -> None:  # type: ignore[no-untyped-def]
    async def broken(ctx: Any, event: Any) -> Any:
        raise KeyError("bug")

    async with pipeline() as p:
        p.worker._handlers = lambda _type: broken
        event_id = await p.deliver("refund.completed", {"referenceId": "BUG"})
        for _ in range(4):
            await _due_now(p, event_id)
            await p.worker.drain()
        event = await p.event(event_id)
        assert (event.status, event.attempts, event.last_error) == (
            EventStatus.DEAD,
            4,
            "internal: KeyError",
        )
        async with p.services.db.session() as session:
            assert (await session.execute(select(Refund))).first() is None
