"""The durable inbox: accept (``receiver.inbox.ingest``), claim, finish, fail, replay.

The events table run as a ``receiver.db.queue.DurableQueue``: a claim leases due events
(``FOR UPDATE SKIP LOCKED`` on PostgreSQL); an event whose lease ran out (its worker died) is due
again; events of a reference another worker holds are skipped, so one reference is handled by
one worker at a time. ``finish`` applies the handler's database effects in the same transaction
that marks the event done, and only while the lease is still ours: an effect is recorded once
even if the process dies at any point.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Row

from receiver.db import Database
from receiver.db.queue import Apply, ApplyMany, Close, Closed, DurableQueue, QueueSpec
from receiver.db.types import utcnow
from receiver.errors import Conflict, NotFound
from receiver.inbox.ingest import Accepted, Ingest, NewEvent
from receiver.inbox.models import EventStatus, Verification, WebhookEvent
from receiver.logs import get_logger
from receiver.retry import RetryPolicy

log = get_logger("inbox")

__all__ = ["Accepted", "Apply", "ClaimedEvent", "Inbox", "LeaseLost", "NewEvent"]

DEFAULT_POLICY = RetryPolicy(max_attempts=10, base=2.0, cap=3600.0)

EVENTS = QueueSpec(
    table=WebhookEvent.__table__,
    pending=EventStatus.PENDING,
    done=EventStatus.DONE,
    dead=EventStatus.DEAD,
    processing=EventStatus.PROCESSING,
    returning=(
        "id",
        "attempts",
        "event_type",
        "reference_id",
        "body",
        "verification",
        "received_at",
    ),
    exclusive="reference_id",
    note="outcome",
    finished_at="processed_at",
)


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

    @classmethod
    def from_row(cls, row: Row[object]) -> ClaimedEvent:
        job = row._mapping
        return cls(
            id=job["id"],
            event_type=job["event_type"],
            reference_id=job["reference_id"],
            body=job["body"],
            attempts=job["attempts"],
            verification=job["verification"],
            received_at=job["received_at"],
        )


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
        policies: Mapping[str, RetryPolicy] | None = None,
        forward: bool = False,
        on_accept: Callable[[], None] | None = None,
    ) -> None:
        self.db = db
        self.owner = owner
        self.policy = policy
        self.policies = dict(policies or {})
        """Retry policies by event type, where one differs from ``policy``."""
        self._on_accept = on_accept
        self.ingest = Ingest(db, forward=forward, on_accept=on_accept)
        self.queue = DurableQueue(db, EVENTS, owner=owner, lease=lease)

    @property
    def lease(self) -> float:
        return self.queue.lease.total_seconds()

    async def accept(self, event: NewEvent) -> Accepted:
        """Store ``event`` durably (or find its earlier copy); return once committed."""
        return await self.ingest.accept(event)

    async def aclose(self) -> None:
        """Finish the writes in hand, then stop the writer."""
        await self.ingest.aclose()

    def under_pressure(self, window: float = 0.25) -> bool:
        """Deliveries are arriving (one was accepted within ``window`` s, or some wait)."""
        return bool(self.ingest.waiting) or time.monotonic() - self.ingest.last_accept < window

    # --- one event at a time (the worker closes through the queue in batches) ----------------

    async def claim(self) -> ClaimedEvent | None:
        """Lease the next due event to this process, or None when nothing is due."""
        rows = await self.queue.claim(1)
        return ClaimedEvent.from_row(rows[0]) if rows else None

    async def extend(self, event: ClaimedEvent) -> bool:
        """Renew our lease on ``event``; False if it was lost."""
        return event.id in await self.queue.extend([event.id])

    def done(
        self,
        event: ClaimedEvent,
        outcome: str,
        apply: Apply | None = None,
        apply_many: tuple[ApplyMany, Any] | None = None,
    ) -> Close:
        """The close of a handled event."""
        return Close(event.id, EventStatus.DONE, note=outcome, apply=apply, apply_many=apply_many)

    def failed(
        self, event: ClaimedEvent, error: str, *, permanent: bool, apply: Apply | None = None
    ) -> Close:
        """The close of a failed event: a retry after the policy's wait, or ``dead``."""
        policy = self.policies.get(event.event_type, self.policy)
        delay = None if permanent else policy.next_delay(event.attempts)
        if delay is None:
            return Close(event.id, EventStatus.DEAD, error=error, apply=apply)
        return Close(
            event.id,
            EventStatus.PENDING,
            error=error,
            retry_at=utcnow() + _seconds(delay),
            apply=apply,
        )

    async def finish(self, event: ClaimedEvent, outcome: str, apply: Apply | None = None) -> None:
        """Mark ``event`` done and apply its effects, atomically; ``LeaseLost`` if not ours."""
        await self._close(self.done(event, outcome, apply))

    async def fail(
        self, event: ClaimedEvent, error: str, *, permanent: bool, apply: Apply | None = None
    ) -> float | None:
        """Schedule a retry (returned: the wait, s) or, permanent or out of attempts, ``dead``."""
        close = self.failed(event, error, permanent=permanent, apply=apply)
        await self._close(close)
        return None if close.retry_at is None else (close.retry_at - utcnow()).total_seconds()

    async def release(self, event: ClaimedEvent) -> None:
        """Give an event back, due now, keeping its attempt count (shutdown cut it off)."""
        await self.queue.release([event.id])

    async def _close(self, close: Close) -> None:
        (closed,) = await self.queue.close([close])
        raise_for(close, closed)

    async def replay(self, event_id: int) -> None:
        """Queue a stored event to be handled again, with a fresh attempt budget."""
        refused = await self.queue.replay(event_id)
        if refused == "missing":
            raise NotFound(f"no event {event_id}")
        if refused == "busy":
            raise Conflict(f"event {event_id} is being handled right now; try again")
        if self._on_accept is not None:
            self._on_accept()


def raise_for(close: Close, closed: Closed) -> None:
    """``LeaseLost``, or the error of the close's effects."""
    if closed.lost:
        raise LeaseLost(f"event {close.id} is no longer leased to this worker")
    if closed.error is not None:
        raise closed.error


def _seconds(delay: float) -> timedelta:
    return timedelta(seconds=delay)
