"""The durable inbox: accept (``receiver.inbox.ingest``), claim, finish, fail, replay.

``claim`` takes one due event with a lease: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, a single
``UPDATE … WHERE id = COALESCE(…) RETURNING`` on SQLite (one writer at a time anyway). An event
whose lease ran out (its worker died) is due again; events of a reference another worker holds
are skipped, so one reference is handled by one worker at a time. ``finish`` applies the
handler's database effects in the same transaction that marks the event done, and only while the
lease is still ours: an effect is recorded once even if the process dies at any point.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, bindparam, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from receiver.db import Database
from receiver.db.types import UTCDateTime, utcnow
from receiver.errors import Conflict, NotFound
from receiver.inbox.ingest import Accepted, Ingest, NewEvent
from receiver.inbox.models import (
    EventStatus,
    Verification,
    WebhookEvent,
)
from receiver.inbox.retry import DEFAULT_POLICY, RetryPolicy, next_delay
from receiver.logs import get_logger

log = get_logger("inbox")

Apply = Callable[[AsyncSession], Awaitable[str | None]]
"""Database effects of a handler, run inside the transaction that closes the event; a returned
string replaces the event's outcome line (for decisions that need the locked rows)."""

__all__ = ["Accepted", "Apply", "ClaimedEvent", "Inbox", "LeaseLost", "NewEvent"]


@dataclass(frozen=True, slots=True)
class ClaimedEvent:
    """An event leased to this process."""

    id: int
    event_type: str
    reference_id: str | None
    body: bytes
    attempts: int
    verification: Verification
    received_at: datetime


class LeaseLost(Exception):
    """Another worker took the event over (our lease ran out): our result is dropped."""


class Inbox:
    """Storage side of the webhook pipeline (one per process)."""

    def __init__(
        self,
        db: Database,
        *,
        owner: str,
        lease: float = 30.0,
        policy: RetryPolicy = DEFAULT_POLICY,
        forward: bool = False,
        on_accept: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.owner = owner
        self.lease = timedelta(seconds=lease)
        self.policy = policy
        self._on_accept = on_accept
        self.ingest = Ingest(db, forward=forward, on_accept=on_accept)
        self._claim = self._claim_statement()

    # --- accept -------------------------------------------------------------------------------

    async def accept(self, event: NewEvent) -> Accepted:
        """Store ``event`` durably (or find its earlier copy); return once committed."""
        return await self.ingest.accept(event)

    async def aclose(self) -> None:
        """Finish the writes in hand, then stop the writer."""
        await self.ingest.aclose()

    # --- claim / finish / fail ----------------------------------------------------------------

    def _claim_statement(self) -> Any:
        """Built once: ``UPDATE … WHERE id = COALESCE(<expired lease>, <next due>) RETURNING``.

        Two candidates rather than one ``OR`` so each walks its index in order and stops at the
        first row (no sort of every pending row); PostgreSQL skips rows other claimers locked.
        """
        now = bindparam("now", type_=UTCDateTime())
        busy = select(WebhookEvent.reference_id).where(
            WebhookEvent.status == EventStatus.PROCESSING,
            WebhookEvent.lease_expires_at >= now,
            WebhookEvent.reference_id.is_not(None),
        )
        free = or_(WebhookEvent.reference_id.is_(None), WebhookEvent.reference_id.not_in(busy))
        expired = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.status == EventStatus.PROCESSING,
                WebhookEvent.lease_expires_at < now,
                free,
            )
            .order_by(WebhookEvent.lease_expires_at)
            .limit(1)
        )
        due = (
            select(WebhookEvent.id)
            .where(
                WebhookEvent.status == EventStatus.PENDING,
                WebhookEvent.next_attempt_at <= now,
                free,
            )
            .order_by(WebhookEvent.next_attempt_at)
            .limit(1)
        )
        if not self.db.is_sqlite:
            expired = expired.with_for_update(skip_locked=True)
            due = due.with_for_update(skip_locked=True)
        return (
            update(WebhookEvent)
            .where(
                WebhookEvent.id == func.coalesce(expired.scalar_subquery(), due.scalar_subquery())
            )
            .values(
                status=EventStatus.PROCESSING,
                lease_owner=bindparam("owner", type_=String()),
                lease_expires_at=bindparam("until", type_=UTCDateTime()),
                attempts=WebhookEvent.attempts + 1,
                updated_at=now,
            )
            .returning(
                WebhookEvent.id,
                WebhookEvent.event_type,
                WebhookEvent.reference_id,
                WebhookEvent.body,
                WebhookEvent.attempts,
                WebhookEvent.verification,
                WebhookEvent.received_at,
            )
            .execution_options(synchronize_session=False)
        )

    async def claim(self) -> ClaimedEvent | None:
        """Lease the next due event to this process, or None when nothing is due."""
        now = utcnow()
        params = {"now": now, "owner": self.owner, "until": now + self.lease}
        async with self.db.session() as session, session.begin():
            row = (await session.execute(self._claim, params)).one_or_none()
        if row is None:
            return None
        return ClaimedEvent(*row)

    def under_pressure(self, window: float = 0.25) -> bool:
        """Deliveries are arriving (one was accepted within ``window`` s, or some wait)."""
        return bool(self.ingest.waiting) or time.monotonic() - self.ingest.last_accept < window

    async def extend(self, event: ClaimedEvent) -> bool:
        """Renew our lease on ``event`` (while a long handler runs); False if it was lost."""
        async with self.db.session() as session, session.begin():
            result = await session.execute(
                self._ours(event).values(lease_expires_at=utcnow() + self.lease)
            )
        return _rowcount(result) == 1

    async def finish(self, event: ClaimedEvent, outcome: str, apply: Apply | None = None) -> None:
        """Mark ``event`` done and apply its effects, atomically; ``LeaseLost`` if not ours."""
        now = utcnow()
        await self._close(
            event,
            {
                "status": EventStatus.DONE,
                "outcome": outcome[:2000],
                "last_error": None,
                "processed_at": now,
            },
            apply,
        )

    async def fail(
        self, event: ClaimedEvent, error: str, *, permanent: bool, apply: Apply | None = None
    ) -> timedelta | None:
        """Schedule a retry (returned: the wait) or, permanent or out of attempts, go ``dead``."""
        delay = None if permanent else next_delay(event.attempts, self.policy)
        now = utcnow()
        values: dict[str, Any] = {"last_error": error[:2000]}
        if delay is None:
            values.update(status=EventStatus.DEAD, processed_at=now)
        else:
            values.update(status=EventStatus.PENDING, next_attempt_at=now + delay)
        await self._close(event, values, apply)
        return delay

    async def release(self, event: ClaimedEvent) -> None:
        """Give an event back, due now, keeping its attempt count (shutdown cut it off)."""
        now = utcnow()
        async with self.db.session() as session, session.begin():
            await session.execute(
                self._ours(event).values(
                    status=EventStatus.PENDING,
                    lease_owner=None,
                    lease_expires_at=None,
                    next_attempt_at=now,
                    updated_at=now,
                )
            )

    def _ours(self, event: ClaimedEvent) -> Any:
        return (
            update(WebhookEvent)
            .where(
                WebhookEvent.id == event.id,
                WebhookEvent.status == EventStatus.PROCESSING,
                WebhookEvent.lease_owner == self.owner,
            )
            .execution_options(synchronize_session=False)
        )

    async def _close(
        self, event: ClaimedEvent, values: dict[str, Any], apply: Apply | None
    ) -> None:
        async with self.db.session() as session, session.begin():
            # The write comes first: it takes SQLite's write lock before any read, so another
            # connection's commit cannot invalidate this transaction's snapshot halfway.
            result = await session.execute(
                self._ours(event).values(
                    lease_owner=None, lease_expires_at=None, updated_at=utcnow(), **values
                )
            )
            if _rowcount(result) != 1:
                raise LeaseLost(f"event {event.id} is no longer leased to this worker")
            note = None if apply is None else await apply(session)
            if note and values.get("status") is EventStatus.DONE:
                await session.execute(
                    update(WebhookEvent)
                    .where(WebhookEvent.id == event.id)
                    .values(outcome=note[:2000])
                    .execution_options(synchronize_session=False)
                )

    # --- replay -------------------------------------------------------------------------------

    async def replay(self, event_id: int) -> None:
        """Queue a stored event to be handled again, with a fresh attempt budget."""
        async with self.db.session() as session, session.begin():
            current = await session.get(WebhookEvent, event_id)
            if current is None:
                raise NotFound(f"no event {event_id}")
            if current.status is EventStatus.PROCESSING and (
                current.lease_expires_at is not None and current.lease_expires_at > utcnow()
            ):
                raise Conflict(f"event {event_id} is being handled right now; try again")
            current.status = EventStatus.PENDING
            current.attempts = 0
            current.next_attempt_at = utcnow()
            current.lease_owner = None
            current.lease_expires_at = None
            current.updated_at = utcnow()
        if self._on_accept is not None:
            self._on_accept()


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
