"""Accepting deliveries: persist before the 2xx, with group commit.

``Ingest.accept`` returns once its delivery is committed. Concurrent deliveries wait on one
writer task that inserts them in one unit of work (``INSERT … ON CONFLICT (dedup_key) DO NOTHING
RETURNING``), so each 2xx still follows its own durable commit (SQLite ``synchronous=FULL``)
while a burst costs one fsync, not one per event. A duplicate gets the id of the first copy and
bumps its ``duplicates`` counter; when forwarding is on, the outbox row is written in the same
transaction as the event.

Poison isolation: text that cannot be stored (a lone surrogate from a ``\\ud800`` escape has
no UTF-8 form) is refused before it joins a batch, with a 400 naming the field; should a batch
fail anyway, its deliveries are written again one by one, so only the bad one fails.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from receiver.db import Database
from receiver.db.sql import insert_ignore
from receiver.db.types import utcnow
from receiver.errors import RequestError, StorageUnavailable
from receiver.inbox.models import (
    EventStatus,
    ForwardMessage,
    OutboxStatus,
    Verification,
    WebhookEvent,
)
from receiver.logs import get_logger
from receiver.webhooks.delivery import REFERENCE_FIELDS, Delivery

log = get_logger("inbox")

MAX_BATCH = 200


@dataclass(frozen=True, slots=True)
class NewEvent:
    """A verified delivery on its way into the inbox."""

    delivery: Delivery
    verification: Verification
    detail: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True, slots=True)
class Accepted:
    """The stored event a delivery maps to; ``duplicate`` when it was stored before."""

    event_id: int
    duplicate: bool


class Ingest:
    """The accept path of the inbox (one per process)."""

    def __init__(
        self, db: Database, *, forward: bool, on_accept: Callable[[], None] | None = None
    ) -> None:
        self.db = db
        self.forward = forward
        self._on_accept = on_accept
        self._queue: list[tuple[NewEvent, asyncio.Future[Accepted]]] = []
        self._wake = asyncio.Event()
        self._writer: asyncio.Task[None] | None = None
        self._closing = False
        self.last_accept = 0.0
        """``time.monotonic()`` of the latest delivery (the worker yields while they arrive)."""
        events: Any = WebhookEvent.__table__
        outbox: Any = ForwardMessage.__table__
        # Built once, run as executemany: SQLAlchemy batches them into multi-row statements
        # with a cached compilation (compiling one statement per batch cost more than the fsync).
        self._insert_rows: Any = None
        self._count_duplicates = (
            update(events)
            .where(events.c.dedup_key == bindparam("key"))
            .values(duplicates=events.c.duplicates + bindparam("extra"))
        )
        self._insert_outbox = insert(outbox)

    @property
    def waiting(self) -> int:
        """Deliveries waiting for their commit."""
        return len(self._queue)

    async def accept(self, event: NewEvent) -> Accepted:
        """Store ``event`` durably (or find its earlier copy); return once committed."""
        if self._closing:
            raise StorageUnavailable("the service is shutting down; retry")
        refuse_unstorable(event)
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self.last_accept = time.monotonic()
        self._queue.append((event, future))
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="inbox-writer")
        return await future

    async def aclose(self) -> None:
        """Finish the writes in hand, then stop the writer."""
        self._closing = True
        if self._writer is None:
            return
        self._wake.set()
        await self._writer
        self._writer = None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                await self._settle(batch)
            if self._closing:
                return

    async def _settle(self, batch: list[tuple[NewEvent, asyncio.Future[Accepted]]]) -> None:
        """Write a batch; when it fails, each delivery alone (one bad row fails only itself)."""
        try:
            results = await self._write([event for event, _ in batch])
        except Exception as exc:  # the writer must outlive any failure: requests wait on it
            if len(batch) > 1:
                for one in batch:
                    await self._settle([one])
                return
            log.error(
                "inbox.store_failed",
                error=type(exc).__name__,
                exc_info=not isinstance(exc, SQLAlchemyError | OSError),
            )
            for _, future in batch:
                if not future.done():
                    future.set_exception(
                        StorageUnavailable("the webhook could not be stored; retry")
                    )
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)
        if self._on_accept is not None and any(not r.duplicate for r in results):
            self._on_accept()

    async def _write(self, events: list[NewEvent]) -> list[Accepted]:
        first: dict[str, NewEvent] = {}
        counts: dict[str, int] = {}
        for event in events:
            key = event.delivery.dedup_key
            first.setdefault(key, event)
            counts[key] = counts.get(key, 0) + 1
        inserted, ids = await self.db.run(lambda conn: self._write_rows(conn, first, counts))
        seen: set[str] = set()
        results = []
        for event in events:
            key = event.delivery.dedup_key
            results.append(Accepted(ids[key], duplicate=key not in inserted or key in seen))
            seen.add(key)
        return results

    def _write_rows(
        self, connection: Connection, first: dict[str, NewEvent], counts: dict[str, int]
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Insert the new events of a batch; (inserted ids by key, all ids by key)."""
        if self._insert_rows is None:
            events: Any = WebhookEvent.__table__
            self._insert_rows = insert_ignore(connection, events, "dedup_key").returning(
                events.c.id, events.c.dedup_key
            )
        now = utcnow()
        rows = [
            {
                "dedup_key": key,
                "event_type": event.delivery.event_type,
                "reference_id": event.delivery.reference_id,
                "verification": event.verification,
                "verification_detail": event.detail,
                "body": event.body,
                "headers": json.dumps(event.headers, ensure_ascii=False),
                "status": EventStatus.PENDING,
                "attempts": 0,
                "next_attempt_at": now,
                "duplicates": 0,
                "received_at": now,
                "updated_at": now,
            }
            for key, event in first.items()
        ]
        inserted = {key: id_ for id_, key in connection.execute(self._insert_rows, rows).all()}
        ids = dict(inserted)
        extra = [
            {"key": key, "extra": count - (key in inserted)}
            for key, count in counts.items()
            if count - (key in inserted)
        ]
        if extra:
            # Earlier copies: count the redeliveries and look their ids up (two statements
            # per batch, whatever the number of duplicates in it).
            connection.execute(self._count_duplicates, extra)
            found = connection.execute(
                select(WebhookEvent.id, WebhookEvent.dedup_key).where(
                    WebhookEvent.dedup_key.in_([e["key"] for e in extra])
                )
            )
            for id_, key in found.all():
                ids.setdefault(key, id_)
        if self.forward and inserted:
            connection.execute(
                self._insert_outbox,
                [
                    {
                        "event_id": id_,
                        "message_id": f"msg_{key[:40]}",
                        "status": OutboxStatus.PENDING,
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                    }
                    for key, id_ in inserted.items()
                ],
            )
        return inserted, ids


def refuse_unstorable(event: NewEvent) -> None:
    """``RequestError`` (400, naming the field) for text that has no UTF-8 form.

    JSON may carry a lone surrogate (``"\\ud800"``); no database can store it, and a 5xx
    would make Kotani retry the same delivery for a day.
    """
    delivery = event.delivery
    data = delivery.data
    reference_field = next(
        (name for name in REFERENCE_FIELDS if data.get(name) == delivery.reference_id),
        "reference_id",
    )
    fields = [
        ("event", delivery.event_type),
        (reference_field, delivery.reference_id),
        ("dedup_key", delivery.dedup_key),
        ("verification_detail", event.detail),
        *((f"header {name}", value) for name, value in event.headers.items()),
    ]
    for name, value in fields:
        if value is not None and not _encodable(value):
            raise RequestError(f"{name}: text that cannot be encoded as UTF-8 (a lone surrogate)")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True
