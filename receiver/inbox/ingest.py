"""Accepting deliveries: persist before the 2xx, with group commit.

``Ingest.accept`` returns once its delivery is committed. Concurrent deliveries wait on one
writer task that inserts them in one transaction (``INSERT … ON CONFLICT (dedup_key) DO NOTHING
RETURNING``), so each 2xx still follows its own durable commit (SQLite ``synchronous=FULL``)
while a burst costs one fsync, not one per event. On SQLite the batch runs in one hop to a
writer thread with its own connection (``receiver.inbox.sqlite_writer``: through aiosqlite
every statement is a thread hop, and under load each hop waits behind the HTTP work on the
event loop). A duplicate gets the id of the first copy and bumps its ``duplicates`` counter;
when forwarding is on, the outbox row is written in the same transaction as the event.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from receiver.db import Database
from receiver.db.sqlite_conn import SqliteThread
from receiver.db.types import utcnow
from receiver.errors import StorageUnavailable
from receiver.inbox.models import (
    EventStatus,
    ForwardMessage,
    OutboxStatus,
    Verification,
    WebhookEvent,
)
from receiver.inbox.sqlite_writer import SqliteWriter
from receiver.logs import get_logger
from receiver.webhooks.delivery import Delivery

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
        dialect = sqlite if db.is_sqlite else postgresql
        events: Any = WebhookEvent.__table__
        outbox: Any = ForwardMessage.__table__
        # Built once, run as executemany: SQLAlchemy batches them into multi-row statements
        # with a cached compilation (compiling one statement per batch cost more than the fsync).
        self._insert_rows = (
            dialect.insert(events)
            .on_conflict_do_nothing(index_elements=["dedup_key"])
            .returning(events.c.id, events.c.dedup_key)
        )
        self._count_duplicates = (
            update(events)
            .where(events.c.dedup_key == bindparam("key"))
            .values(duplicates=events.c.duplicates + bindparam("extra"))
        )
        self._insert_outbox = insert(outbox)
        database = db.url.database
        self._sqlite = (
            SqliteWriter(database) if db.is_sqlite and database and database != ":memory:" else None
        )
        self._thread = SqliteThread("inbox-writer") if self._sqlite is not None else None

    @property
    def waiting(self) -> int:
        """Deliveries waiting for their commit."""
        return len(self._queue)

    async def accept(self, event: NewEvent) -> Accepted:
        """Store ``event`` durably (or find its earlier copy); return once committed."""
        if self._closing:
            raise StorageUnavailable("the service is shutting down; retry")
        future: asyncio.Future[Accepted] = asyncio.get_running_loop().create_future()
        self.last_accept = time.monotonic()
        self._queue.append((event, future))
        self._wake.set()
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_loop(), name="inbox-writer")
        return await future

    async def aclose(self) -> None:
        """Finish the writes in hand, then stop the writer."""
        if self._writer is None:
            self._close_writer_thread()
            return
        self._closing = True
        self._wake.set()
        await self._writer
        self._writer = None
        self._close_writer_thread()

    def _close_writer_thread(self) -> None:
        if self._thread is not None and self._sqlite is not None:
            # The connection belongs to the writer thread: close it there.
            self._thread.close(self._sqlite.close)
            self._thread = None

    async def _write_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                batch = self._queue[:MAX_BATCH]
                del self._queue[:MAX_BATCH]
                try:
                    results = await self._write([event for event, _ in batch])
                except Exception as exc:  # the writer must outlive any failure: requests wait on it
                    log.error(
                        "inbox.store_failed",
                        error=type(exc).__name__,
                        events=len(batch),
                        exc_info=not isinstance(exc, SQLAlchemyError | OSError),
                    )
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(
                                StorageUnavailable("the webhook could not be stored; retry")
                            )
                    continue
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                if self._on_accept is not None and any(not r.duplicate for r in results):
                    self._on_accept()
            if self._closing:
                return

    async def _write(self, events: list[NewEvent]) -> list[Accepted]:
        first: dict[str, NewEvent] = {}
        counts: dict[str, int] = {}
        for event in events:
            key = event.delivery.dedup_key
            first.setdefault(key, event)
            counts[key] = counts.get(key, 0) + 1
        if self._sqlite is not None:
            # One hop to the writer thread per batch (through aiosqlite every statement is a
            # hop, and under load each waits behind the HTTP work on the event loop).
            assert self._thread is not None
            sqlite, forward = self._sqlite, self.forward
            inserted, ids = await self._thread.run(lambda: sqlite.write(first, counts, forward))
        else:
            async with self.db.engine.begin() as connection:
                inserted, ids = await connection.run_sync(self._write_rows, first, counts)
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
        """The SQLAlchemy version of ``SqliteWriter.write`` (PostgreSQL, in-memory SQLite)."""
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
