"""Unsigned deliveries are hints: the service's worker asks Kotani's refund-status and acts on
Kotani's answer, never on the hint's own fields (issue: the invoice token steers refunds)."""

from __future__ import annotations

import respx

from receiver.handlers.events.hints import HintGate, verdict
from receiver.inbox.models import EventStatus, RefundState
from receiver.inbox.worker import UNVERIFIED_OUTCOME
from receiver.kotani.models import RefundStatus
from tests.inbox.conftest import KOTANI, new_event
from tests.inbox.test_handlers import OK, SUBMIT, assert_submission, invoice_needed, pipeline
from tests.webhooks.test_forged import DIRECT, forged

__all__ = ["pipeline"]

STATUS = f"{KOTANI}/api/v3/offramp/refund-status"


def answer(**data: str) -> dict[str, object]:
    """Kotani's envelope around a refund-status body (the refund webhooks' field names)."""
    return {"success": True, "message": "Refund status", "data": data}


def completed_hint(reference: str) -> dict[str, object]:
    return {
        "event": "refund.completed",
        "data": {"referenceId": reference, "refundTransactionHash": "forged-hash"},
    }


async def test_a_hint_confirmed_by_kotani_completes_the_refund_with_its_fields(
    pipeline,
) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=True) as kotani:
            asked = kotani.get(f"{STATUS}/TXN-H1").respond(
                200,
                json=answer(
                    referenceId="TXN-H1",
                    status="REVERSED",
                    refundStatus="SUCCESSFUL",
                    refundTransactionHash="kotani-hash",
                ),
            )
            hint = await p.runtime.inbox.accept(forged(p.settings, completed_hint("TXN-H1")))
            await p.runtime.worker.drain()  # the composition root's worker: the wiring
        assert asked.call_count == 1
        event = await p.event(hint.event_id)
        assert event.status is EventStatus.DONE
        assert event.outcome is not None and "confirmed by Kotani's refund-status" in event.outcome
        refund = await p.refund("TXN-H1")
        assert refund.state is RefundState.COMPLETED
        assert refund.transaction_hash == "kotani-hash"  # Kotani's, not the hint's


async def test_a_hint_kotani_does_not_confirm_has_no_effect(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=True) as kotani:
            kotani.get(f"{STATUS}/TXN-H2").respond(
                200, json=answer(referenceId="TXN-H2", refundStatus="INVOICE_NEEDED")
            )
            submit = kotani.post(f"{SUBMIT}/TXN-H2").respond(200, json=OK)
            hint = await p.runtime.inbox.accept(forged(p.settings, completed_hint("TXN-H2")))
            await p.runtime.worker.drain()
            outcome = (await p.event(hint.event_id)).outcome
            # Kotani's signed invoice_needed afterwards still mints and submits.
            await p.runtime.inbox.accept(
                new_event("refund.lightning.invoice_needed", invoice_needed("TXN-H2", 2_000_000))
            )
            await p.runtime.worker.drain()
        assert outcome == f"{UNVERIFIED_OUTCOME}; Kotani's refund-status says INVOICE_NEEDED"
        assert submit.call_count == 1
        assert_submission(submit.calls.last.request, "TXN-H2", 2_000_000)
        assert (await p.refund("TXN-H2")).state is RefundState.INVOICE_SUBMITTED


async def test_a_flood_of_hints_asks_kotani_once_per_reference(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=True) as kotani:
            asked = kotani.get(f"{STATUS}/TXN-H3").respond(
                200, json=answer(referenceId="TXN-H3", refundStatus="PENDING")
            )
            for i in range(20):
                body = completed_hint("TXN-H3")
                body["data"] = {**body["data"], "n": i}  # type: ignore[dict-item]
                await p.runtime.inbox.accept(forged(p.settings, body))
            await p.runtime.worker.drain()
        assert asked.call_count == 1


async def test_without_an_api_key_hints_are_only_recorded(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT, kotani_api_key=None) as p:
        with respx.mock(assert_all_called=False) as kotani:
            anything = kotani.route().respond(200, json=OK)
            hint = await p.runtime.inbox.accept(forged(p.settings, completed_hint("TXN-H4")))
            await p.runtime.worker.drain()
        assert anything.call_count == 0
        assert (await p.event(hint.event_id)).outcome == UNVERIFIED_OUTCOME


async def test_an_invoice_needed_hint_never_asks_nor_mints(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=False) as kotani:
            anything = kotani.route().respond(200, json=OK)
            body = {"event": "refund.lightning.invoice_needed", "data": invoice_needed("H5", 10**6)}
            hint = await p.runtime.inbox.accept(forged(p.settings, body))
            await p.runtime.worker.drain()
        assert anything.call_count == 0
        assert (await p.event(hint.event_id)).outcome == UNVERIFIED_OUTCOME


def test_every_documented_spelling_decides() -> None:
    def said(**fields: str) -> str | None:
        return verdict(RefundStatus.model_validate(fields))

    assert said(refundStatus="SUCCESSFUL") == "refund.completed"
    assert said(refundStatus="success") == "refund.completed"
    assert said(status="REFUNDED") == "refund.completed"
    assert said(status="REVERSED") == "refund.completed"
    assert said(refundStatus="FAILED") == "refund.failed"
    assert said(status="REFUND_FAILED") == "refund.failed"
    # refundStatus decides over status when both are given
    assert said(refundStatus="INVOICE_NEEDED", status="REVERSED") is None
    assert said(refundStatus="PENDING") is None
    assert said() is None


def test_the_gate_admits_a_reference_once_per_interval() -> None:
    gate = HintGate(interval=3600, size=2)
    assert gate.admit("A") and not gate.admit("A")
    assert gate.admit("B") and gate.admit("C")
    assert gate.admit("A")  # A was pushed out by B and C (bounded memory)


async def test_a_failure_hint_confirmed_by_kotani_records_kotanis_error(pipeline) -> None:  # type: ignore[no-untyped-def]
    async with pipeline(direct_tokens=DIRECT) as p:
        with respx.mock(assert_all_called=True) as kotani:
            kotani.get(f"{STATUS}/TXN-H6").respond(
                200, json=answer(referenceId="TXN-H6", refundStatus="FAILED", error="no route")
            )
            body = {"event": "refund.failed", "data": {"referenceId": "TXN-H6", "error": "forged"}}
            await p.runtime.inbox.accept(forged(p.settings, body))
            await p.runtime.worker.drain()
        refund = await p.refund("TXN-H6")
        assert refund.state is RefundState.FAILED
        assert refund.error == "no route"
