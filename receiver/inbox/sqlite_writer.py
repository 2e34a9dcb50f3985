"""The accept path's own SQLite connection: one batch, one transaction, one thread hop.

Measured on the webhook bench: through SQLAlchemy every row of a batch pays ~75 µs of Python
type processing in the writer thread, which under load waits for the GIL behind the HTTP work;
the batch itself (multi-row INSERT, RETURNING, fsync) costs well under a millisecond. So on
SQLite the accept path writes with the stdlib ``sqlite3`` module and values converted once per
batch by the very SQLAlchemy column types the ORM reads them back with (same storage format).
PostgreSQL keeps the SQLAlchemy path (``Ingest._write_batch``): asyncpg has no such cost.

Same settings as ``receiver.db.engine``: WAL and ``synchronous=FULL`` (each acknowledged
delivery is on disk before its 2xx); the write lock is awaited in short steps (15 s at most),
``receiver.db.sqlite_conn``.
Used from a single thread (the ingest's ``SqliteThread``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from receiver.db.sqlite_conn import begin_immediate, connect
from receiver.db.types import sqlite_bind, utcnow
from receiver.inbox.models import EventStatus, ForwardMessage, OutboxStatus, WebhookEvent

COLUMNS = (
    "dedup_key",
    "event_type",
    "reference_id",
    "verification",
    "verification_detail",
    "body",
    "headers",
    "status",
    "attempts",
    "next_attempt_at",
    "duplicates",
    "received_at",
    "updated_at",
)


class SqliteWriter:
    """Inserts batches of deliveries into ``webhook_events`` (and ``forward_outbox``)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._statements: dict[int, str] = {}
        events: Any = WebhookEvent.__table__
        outbox: Any = ForwardMessage.__table__
        self._time = sqlite_bind(events.c.received_at)
        self._verification = sqlite_bind(events.c.verification)
        self._pending = sqlite_bind(events.c.status)(EventStatus.PENDING)
        self._outbox_pending = sqlite_bind(outbox.c.status)(OutboxStatus.PENDING)

    def _connect(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = connect(self.path)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _insert_sql(self, rows: int) -> str:
        statement = self._statements.get(rows)
        if statement is None:
            values = ",".join(["(" + ",".join("?" * len(COLUMNS)) + ")"] * rows)
            statement = (  # built from constants and "?" placeholders only
                f"INSERT INTO webhook_events ({','.join(COLUMNS)}) VALUES {values} "  # noqa: S608
                "ON CONFLICT (dedup_key) DO NOTHING RETURNING id, dedup_key"
            )
            self._statements[rows] = statement
        return statement

    def write(
        self, first: dict[str, Any], counts: dict[str, int], forward: bool
    ) -> tuple[dict[str, int], dict[str, int]]:
        """Insert the new events of a batch; (inserted ids by key, all ids by key).

        ``first`` maps each dedup key to its first ``NewEvent`` in the batch, ``counts`` to how
        often the key occurs in it.
        """
        conn = self._connect()
        now = self._time(utcnow())
        params: list[Any] = []
        for key, event in first.items():
            params += (
                key,
                event.delivery.event_type,
                event.delivery.reference_id,
                self._verification(event.verification),
                event.detail,
                event.body,
                json.dumps(event.headers, ensure_ascii=False),
                self._pending,
                0,
                now,
                0,
                now,
                now,
            )
        begin_immediate(conn)
        try:
            found = conn.execute(self._insert_sql(len(first)), params).fetchall()
            inserted = {key: id_ for id_, key in found}
            ids = dict(inserted)
            extra = [
                (count - (key in inserted), key)
                for key, count in counts.items()
                if count - (key in inserted)
            ]
            if extra:
                conn.executemany(
                    "UPDATE webhook_events SET duplicates = duplicates + ? WHERE dedup_key = ?",
                    extra,
                )
                keys = [key for _, key in extra]
                marks = ",".join("?" * len(keys))
                query = f"SELECT id, dedup_key FROM webhook_events WHERE dedup_key IN ({marks})"  # noqa: S608 (placeholders only)
                for id_, key in conn.execute(query, keys):
                    ids.setdefault(key, id_)
            if forward and inserted:
                conn.executemany(
                    "INSERT INTO forward_outbox (event_id, message_id, status, attempts, "
                    "next_attempt_at, created_at) VALUES (?, ?, ?, 0, ?, ?)",
                    [
                        (id_, f"msg_{key[:40]}", self._outbox_pending, now, now)
                        for key, id_ in inserted.items()
                    ],
                )
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return inserted, ids
