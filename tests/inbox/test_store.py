"""The inbox store on SQLite and real PostgreSQL: dedup, group commit, leases, retries, replay."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from receiver.db import Database
from receiver.db.types import utcnow
from receiver.errors import Conflict, NotFound
from receiver.inbox.models import (
    EventStatus,
    ForwardMessage,
    OutboxStatus,
    TransactionStatus,
    WebhookEvent,
)
from receiver.inbox.store import ClaimedEvent, Inbox, LeaseLost
from receiver.retry import RetryPolicy
from tests.inbox.conftest import new_event


def _status(event_id: int, status: str = "SUCCESSFUL"):  # type: ignore[no-untyped-def]
    def apply(session: Session) -> None:
        session.add(
            TransactionStatus(
                reference_id=f"ref-{event_id}",
                status=status,
                event_type="t",
                event_id=event_id,
                updated_at=utcnow(),
            )
        )

    return apply


async def _row(db: Database, event_id: int) -> WebhookEvent:
    async with db.session() as session:
        event = await session.get(WebhookEvent, event_id)
        assert event is not None
        return event


async def _count(db: Database, model: type) -> int:  # type: ignore[type-arg]
    async with db.session() as session:
        return int((await session.execute(select(func.count()).select_from(model))).scalar_one())


async def test_accept_stores_once_and_counts_duplicates(db: Database) -> None:
    inbox = Inbox(db, owner="a")
    event = new_event("refund.completed", {"referenceId": "R1", "refundAmount": 5})
    first = await inbox.accept(event)
    second = await inbox.accept(event)
    await inbox.aclose()
    assert (first.duplicate, second.duplicate) == (False, True)
    assert first.event_id == second.event_id
    row = await _row(db, first.event_id)
    assert row.status is EventStatus.PENDING and row.duplicates == 1
    assert row.body == event.body and row.reference_id == "R1"
    assert row.headers.startswith('{"x-kotani-signature": "sha256=')


async def test_concurrent_accepts_are_group_committed(db: Database) -> None:
    inbox = Inbox(db, owner="a", forward=True)
    same = new_event("refund.completed", {"referenceId": "DUP"})
    distinct = [new_event("refund.failed", {"referenceId": f"R{n}"}) for n in range(40)]
    results = await asyncio.gather(*(inbox.accept(e) for e in [same] * 10 + distinct))
    await inbox.aclose()
    dup_results = results[:10]
    assert len({r.event_id for r in dup_results}) == 1
    assert sum(not r.duplicate for r in dup_results) == 1
    assert all(not r.duplicate for r in results[10:])
    assert await _count(db, WebhookEvent) == 41
    # forwarding rows are written with the events, one per stored event
    assert await _count(db, ForwardMessage) == 41
    assert (await _row(db, dup_results[0].event_id)).duplicates == 9


async def test_claim_finish_applies_effects_with_the_status(db: Database) -> None:
    inbox = Inbox(db, owner="a")
    accepted = await inbox.accept(new_event("x.one", {"referenceId": "R"}))
    claimed = await inbox.claim()
    assert claimed is not None and claimed.id == accepted.event_id and claimed.attempts == 1
    assert await inbox.claim() is None
    await inbox.finish(claimed, "ok", _status(claimed.id))
    row = await _row(db, claimed.id)
    assert (row.status, row.outcome, row.lease_owner) == (EventStatus.DONE, "ok", None)
    assert await _count(db, TransactionStatus) == 1
    await inbox.aclose()


async def test_expired_lease_is_taken_over_and_the_late_result_is_dropped(db: Database) -> None:
    first = Inbox(db, owner="first", lease=1.0)  # long enough on a loaded machine
    second = Inbox(db, owner="second", lease=30)
    await first.accept(new_event("x.one", {"referenceId": "R"}))
    claimed = await first.claim()
    assert claimed is not None
    assert await second.claim() is None  # the lease still holds
    await asyncio.sleep(1.1)
    taken = await second.claim()
    assert taken is not None and taken.id == claimed.id and taken.attempts == 2
    with pytest.raises(LeaseLost):
        await first.finish(claimed, "late", _status(claimed.id))
    assert await _count(db, TransactionStatus) == 0  # rolled back with the lost lease
    await second.finish(taken, "ok", _status(taken.id))
    assert (await _row(db, taken.id)).status is EventStatus.DONE
    await first.aclose()


async def test_failures_back_off_then_go_dead(db: Database) -> None:
    inbox = Inbox(db, owner="a", policy=RetryPolicy(max_attempts=2, base=0.05, cap=0.1))
    await inbox.accept(new_event("x.one", {"referenceId": "R"}))
    claimed = await inbox.claim()
    assert claimed is not None
    failed_at = utcnow()
    delay = await inbox.fail(claimed, "boom 1", permanent=False)
    assert delay is not None and delay <= 0.1
    row = await _row(db, claimed.id)
    assert row.status is EventStatus.PENDING and row.last_error == "boom 1"
    # not due at once: due after the policy's (jittered, capped) wait
    assert failed_at <= row.next_attempt_at <= utcnow() + timedelta(seconds=0.1)
    await asyncio.sleep(max(delay, 0) + 0.05)
    again = await inbox.claim()
    assert again is not None and again.attempts == 2
    assert await inbox.fail(again, "boom 2", permanent=False) is None
    row = await _row(db, claimed.id)
    assert (row.status, row.last_error) == (EventStatus.DEAD, "boom 2")
    await inbox.aclose()


async def test_an_event_type_may_retry_without_limit(db: Database) -> None:
    forever = RetryPolicy(max_attempts=None, base=0.01, cap=0.01)
    inbox = Inbox(db, owner="a", policy=RetryPolicy(max_attempts=1), policies={"x.once": forever})
    await inbox.accept(new_event("x.once", {"referenceId": "KEEP"}))
    await inbox.accept(new_event("x.other", {"referenceId": "DROP"}))
    for _ in range(2):
        claimed = await inbox.claim()
        assert claimed is not None
        delay = await inbox.fail(claimed, "boom", permanent=False)
        assert (delay is not None) is (claimed.event_type == "x.once")
    await inbox.aclose()


async def test_permanent_failure_is_dead_at_once_with_its_effects(db: Database) -> None:
    inbox = Inbox(db, owner="a")
    await inbox.accept(new_event("x.one", {"referenceId": "R"}))
    claimed = await inbox.claim()
    assert claimed is not None
    assert (
        await inbox.fail(claimed, "bad payload", permanent=True, apply=_status(claimed.id)) is None
    )
    assert (await _row(db, claimed.id)).status is EventStatus.DEAD
    assert await _count(db, TransactionStatus) == 1
    await inbox.aclose()


async def test_one_reference_is_handled_by_one_worker_at_a_time(db: Database) -> None:
    inbox = Inbox(db, owner="a")
    await inbox.accept(new_event("x.one", {"referenceId": "SAME", "n": 1}))
    await inbox.accept(new_event("x.two", {"referenceId": "SAME", "n": 2}))
    await inbox.accept(new_event("x.three", {"referenceId": "OTHER"}))
    one = await inbox.claim()
    other = await inbox.claim()
    assert one is not None and other is not None
    assert (one.reference_id, other.reference_id) == ("SAME", "OTHER")
    assert await inbox.claim() is None
    await inbox.finish(one, "ok")
    two = await inbox.claim()
    assert two is not None and two.event_type == "x.two"
    await inbox.aclose()


async def test_replay(db: Database) -> None:
    inbox = Inbox(db, owner="a")
    accepted = await inbox.accept(new_event("x.one", {"referenceId": "R"}))
    claimed = await inbox.claim()
    assert claimed is not None
    with pytest.raises(Conflict):
        await inbox.replay(claimed.id)
    await inbox.fail(claimed, "nope", permanent=True)
    await inbox.replay(accepted.event_id)
    row = await _row(db, accepted.event_id)
    assert (row.status, row.attempts) == (EventStatus.PENDING, 0)
    with pytest.raises(NotFound):
        await inbox.replay(999_999)
    await inbox.aclose()


async def test_concurrent_claimers_never_share_an_event(db: Database) -> None:
    inboxes = [Inbox(db, owner=f"w{n}") for n in range(4)]
    for n in range(20):
        await inboxes[0].accept(new_event("x.one", {"referenceId": f"R{n}"}))

    async def take(inbox: Inbox) -> list[ClaimedEvent]:
        got = []
        while (claimed := await inbox.claim()) is not None:
            got.append(claimed)
        return got

    claimed = [c for batch in await asyncio.gather(*(take(i) for i in inboxes)) for c in batch]
    assert sorted(c.id for c in claimed) == sorted({c.id for c in claimed})
    assert len(claimed) == 20
    for inbox in inboxes:
        await inbox.aclose()


async def test_forward_rows_are_pending_for_new_events_only(db: Database) -> None:
    inbox = Inbox(db, owner="a", forward=True)
    event = new_event("refund.completed", {"referenceId": "R"})
    await inbox.accept(event)
    await inbox.accept(event)
    async with db.session() as session:
        rows = list((await session.execute(select(ForwardMessage))).scalars())
    assert len(rows) == 1 and rows[0].status is OutboxStatus.PENDING
    assert rows[0].message_id == f"msg_{event.delivery.dedup_key[:40]}"
    await inbox.aclose()
