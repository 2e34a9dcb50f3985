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

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from receiver.db import Database
from receiver.db.batch import GroupCommit
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
        self._commit: GroupCommit[NewEvent, Accepted] = GroupCommit(
            self._settle, max_batch=MAX_BATCH, name="inbox-writer"
        )
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
        return self._commit.waiting

    async def accept(self, event: NewEvent) -> Accepted:
        """Store ``event`` durably (or find its earlier copy); return once committed."""
        if self._closing:
            raise StorageUnavailable("the service is shutting down; retry")
        refuse_unstorable(event)
        self.last_accept = time.monotonic()
        return await self._commit.submit(event)

    async def aclose(self) -> None:
        """Finish the writes in hand, then stop the writer."""
        self._closing = True
        await self._commit.aclose()

    async def _settle(self, batch: list[NewEvent]) -> list[Accepted | BaseException]:
        """Write a batch; when it fails, each delivery alone (one bad row fails only itself)."""
        try:
            results: list[Accepted | BaseException] = list(await self._write(batch))
        except Exception as exc:
            if len(batch) > 1:
                return [(await self._settle([one]))[0] for one in batch]
            log.error(
                "inbox.store_failed",
                error=type(exc).__name__,
                exc_info=not isinstance(exc, SQLAlchemyError | OSError),
            )
            return [StorageUnavailable("the webhook could not be stored; retry")]
        if self._on_accept is not None and any(
            isinstance(r, Accepted) and not r.duplicate for r in results
        ):
            self._on_accept()
        return results

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
