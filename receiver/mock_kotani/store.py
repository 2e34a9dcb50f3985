"""The imitation's state: one SQLite file through SQLAlchemy (aiosqlite).

Kotani's objects (offramps, crypto-bridge deposits, rate quotes, the integrator's webhook
settings) are kept as JSON documents by kind and key: the imitation reads and rewrites whole
objects, and their shapes are the API's. Webhook deliveries are an outbox table the sender polls,
and every step is a timeline row (what ``simulate`` prints).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

metadata = MetaData()

documents = Table(
    "documents",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("key", String(200), primary_key=True),
    Column("doc", Text, nullable=False),
)

deliveries = Table(
    "deliveries",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("event", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("due_at", Float, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("status", String(16), nullable=False, default="pending"),
    Column("last_result", String(200), nullable=True),
)

timeline = Table(
    "timeline",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("reference", String(200), nullable=True),
    Column("what", Text, nullable=False),
)


@dataclass(frozen=True)
class Delivery:
    """One queued webhook: its event name, the exact body, attempts made so far."""

    id: int
    event: str
    body: str
    created_at: float
    attempts: int


class MockStore:
    """Async access to the imitation's SQLite file (``:memory:`` for a throwaway one)."""

    def __init__(self, path: Path | None) -> None:
        url = "sqlite+aiosqlite://" if path is None else f"sqlite+aiosqlite:///{path}"
        self.engine: AsyncEngine = create_async_engine(url)

    async def open(self) -> None:
        async with self.engine.begin() as conn:
            await conn.run_sync(metadata.create_all)

    async def close(self) -> None:
        await self.engine.dispose()

    # --- documents ------------------------------------------------------------------------------

    async def get(self, kind: str, key: str) -> dict[str, Any] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(documents.c.doc).where(documents.c.kind == kind, documents.c.key == key)
                )
            ).first()
        return None if row is None else dict(json.loads(row[0]))

    async def put(self, kind: str, key: str, doc: dict[str, Any]) -> None:
        text = json.dumps(doc)
        async with self.engine.begin() as conn:
            done = await conn.execute(
                update(documents)
                .where(documents.c.kind == kind, documents.c.key == key)
                .values(doc=text)
            )
            if done.rowcount == 0:
                await conn.execute(insert(documents).values(kind=kind, key=key, doc=text))

    async def add(self, kind: str, key: str, doc: dict[str, Any]) -> bool:
        """Insert a new document; False when ``key`` exists already."""
        async with self.engine.begin() as conn:
            found = (
                await conn.execute(
                    select(documents.c.key).where(documents.c.kind == kind, documents.c.key == key)
                )
            ).first()
            if found is not None:
                return False
            await conn.execute(insert(documents).values(kind=kind, key=key, doc=json.dumps(doc)))
        return True

    async def remove(self, kind: str, key: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                delete(documents).where(documents.c.kind == kind, documents.c.key == key)
            )

    # --- outbox ---------------------------------------------------------------------------------

    async def enqueue(self, event: str, body: str, due_at: float) -> int:
        async with self.engine.begin() as conn:
            result = await conn.execute(
                insert(deliveries).values(
                    event=event,
                    body=body,
                    created_at=time.time(),
                    due_at=due_at,
                    attempts=0,
                    status="pending",
                )
            )
        key = result.inserted_primary_key
        assert key is not None
        return int(key[0])

    async def due(self, now: float) -> list[Delivery]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(deliveries)
                .where(deliveries.c.status == "pending", deliveries.c.due_at <= now)
                .order_by(deliveries.c.id)
            )
            return [
                Delivery(r.id, r.event, r.body, r.created_at, r.attempts) for r in rows.fetchall()
            ]

    async def next_due(self) -> float | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(deliveries.c.due_at)
                    .where(deliveries.c.status == "pending")
                    .order_by(deliveries.c.due_at)
                    .limit(1)
                )
            ).first()
        return None if row is None else float(row[0])

    async def settle(
        self, delivery_id: int, *, attempts: int, status: str, result: str, due_at: float
    ) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                update(deliveries)
                .where(deliveries.c.id == delivery_id)
                .values(attempts=attempts, status=status, last_result=result[:200], due_at=due_at)
            )

    async def deliveries(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(deliveries).order_by(deliveries.c.id))
            return [dict(r._mapping) for r in rows.fetchall()]

    # --- timeline -------------------------------------------------------------------------------

    async def note(self, reference: str | None, what: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(
                insert(timeline).values(at=time.time(), reference=reference, what=what)
            )

    async def timeline(self, reference: str | None = None) -> list[dict[str, Any]]:
        query = select(timeline).order_by(timeline.c.id)
        if reference is not None:
            query = query.where(timeline.c.reference == reference)
        async with self.engine.connect() as conn:
            rows = await conn.execute(query)
            return [dict(r._mapping) for r in rows.fetchall()]
