"""Status updates closed many at once (one statement for a close's statuses), on SQLite and real
PostgreSQL: the newest status per reference still wins, each event keeps its own outcome."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from receiver.db import Database
from receiver.handlers.events import handler_for
from receiver.inbox.models import TransactionStatus, WebhookEvent
from receiver.inbox.store import Inbox
from receiver.inbox.worker import Worker
from tests.inbox.conftest import new_event

EVENT = "transaction.offramp.status.updated"


def update(reference: str, status: str, at: str | None) -> dict[str, Any]:
    data = {"referenceId": reference, "status": status}
    return data if at is None else {**data, "updated_at": f"2024-11-22T{at}:00.000Z"}


async def close_together(db: Database, updates: list[dict[str, Any]]) -> list[int]:
    """Store ``updates``, claim them in one claim, handle each, close all in one transaction."""
    inbox = Inbox(db, owner="t")
    worker = Worker(inbox, None, handlers=handler_for)
    ids = [(await inbox.accept(new_event(EVENT, data))).event_id for data in updates]
    await inbox.aclose()
    rows = await inbox.queue.claim(len(ids))
    assert len(rows) == len(ids)
    closes = [await worker._handle(row) for row in rows]
    closed = await inbox.queue.close(closes)
    assert [c.error for c in closed] == [None] * len(ids)
    return ids


async def outcomes(db: Database, ids: list[int]) -> list[str | None]:
    async with db.session() as session:
        found = dict((await session.execute(select(WebhookEvent.id, WebhookEvent.outcome))).all())
    return [found[event_id] for event_id in ids]


async def statuses(db: Database) -> dict[str, str]:
    async with db.session() as session:
        rows = (await session.execute(select(TransactionStatus))).scalars().all()
        return {row.reference_id: row.status for row in rows}


async def test_one_close_records_many_statuses_and_keeps_the_newest(db: Database) -> None:
    (first,) = await close_together(db, [update("A", "SUCCESSFUL", "10:05")])
    ids = await close_together(
        db,
        [
            update("A", "CANCELLED", "10:02"),  # older than the recorded one: kept
            update("B", "PENDING", "10:00"),  # new reference
            update("C", "FAILED", None),  # no time: recorded where nothing is
        ],
    )
    assert await outcomes(db, ids) == [
        f"older than the recorded status: kept SUCCESSFUL (event {first})",
        "status PENDING recorded",
        "status FAILED recorded",
    ]
    ids = await close_together(
        db, [update("B", "SUCCESSFUL", "10:07"), update("C", "SUCCESSFUL", "10:01")]
    )
    assert await outcomes(db, ids) == ["status SUCCESSFUL recorded"] * 2
    assert await statuses(db) == {"A": "SUCCESSFUL", "B": "SUCCESSFUL", "C": "SUCCESSFUL"}


async def test_two_events_of_one_reference_in_one_close_still_end_newest(db: Database) -> None:
    # Not what the worker does (it runs the events of one reference one after the other, each
    # closed before the next starts), but should it happen, PostgreSQL refuses one statement
    # touching a row twice, and the queue closes the events one per transaction.
    inbox = Inbox(db, owner="t")
    worker = Worker(inbox, None, handlers=handler_for)
    for data in (update("D", "SUCCESSFUL", "10:09"), update("D", "PENDING", "10:01")):
        await inbox.accept(new_event(EVENT, data))
    await inbox.aclose()
    rows = await inbox.queue.claim(5)
    assert len(rows) == 2
    closed = await inbox.queue.close([await worker._handle(row) for row in rows])
    assert [c.error for c in closed] == [None, None]
    assert await statuses(db) == {"D": "SUCCESSFUL"}
