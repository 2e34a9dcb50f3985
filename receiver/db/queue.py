"""The one durable queue: claim with a lease, close with effects, retry, dead letter, replay.

Both the inbox (``webhook_events``) and the forwarding outbox (``forward_outbox``) are tables of
jobs with the same columns: ``status``, ``attempts``, ``next_attempt_at``, ``lease_owner``,
``lease_expires_at``, ``last_error``. ``DurableQueue`` runs them all (after procrastinate):

- ``claim(limit)``: up to ``limit`` due jobs leased to this process in one unit of work, oldest
  first (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: replicas never claim the same row; SQLite
  has one writer). A job whose lease ran out (its process died) is due again. With
  ``QueueSpec.exclusive`` (the reference), jobs of a value another claimer holds are skipped,
  so one reference is handled by one worker at a time.
- ``close(closes)``: many jobs settled in one transaction (group commit: one fsync for a burst)
  with their effects (``apply``, or ``apply_many``: one call, one statement, for every job of
  the close that shares it), only while the lease is still ours: an effect is recorded exactly
  once, whenever the process dies. Should the transaction fail (one job's effects
  cannot be stored), the jobs are closed again one per transaction, so only the bad one fails
  (``Closed.error``) and its neighbours commit. (No savepoint per job: they cost two statements
  each, more than the rest of a close.)
- ``extend`` renews leases (heartbeat), ``release`` hands jobs back (shutdown), ``replay`` queues
  a finished or dead job again with a fresh attempt budget.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update
from sqlalchemy.engine import Connection, Row
from sqlalchemy.orm import Session

from receiver.db.engine import Database
from receiver.db.types import MAX_ID, utcnow

Apply = Callable[[Session], str | None]
"""Database effects of a job, run in the transaction that closes it; a returned string replaces
the job's note (``QueueSpec.note``) when it is done (for decisions that need the locked rows)."""
ApplyMany = Callable[[Session, list[Any]], list[str | None]]
"""Database effects of many jobs in one go (one statement for all, not one each): called once
per close transaction with the item of every job that named it, in close order; answers a note
(or None) per item, as ``Apply`` does."""


@dataclass(frozen=True)
class QueueSpec:
    """Which table, which statuses, which columns."""

    table: Any
    pending: StrEnum
    done: StrEnum
    dead: StrEnum
    processing: StrEnum | None
    """Status while leased; ``None``: a leased job stays ``pending`` (its lease says it is)."""
    returning: tuple[str, ...]
    """Columns a claim hands back (``id`` and ``attempts`` first)."""
    exclusive: str | None = None
    """One job per value of this column in flight at a time (and handled in claim order)."""
    note: str | None = None
    """Column ``Close.note`` (or ``apply``'s answer) goes to when a job is done."""
    finished_at: str | None = None
    """Column stamped when a job is done or dead."""


@dataclass(frozen=True)
class Close:
    """How one leased job ends: ``done``, back to ``pending`` at ``retry_at``, or ``dead``."""

    id: int
    status: StrEnum
    error: str | None = None
    note: str | None = None
    retry_at: datetime | None = None
    values: dict[str, Any] = field(default_factory=dict)
    """More columns to set (the outbox's ``last_status_code``)."""
    apply: Apply | None = None
    apply_many: tuple[ApplyMany, Any] | None = None
    """Effects shared with the other jobs of the close: (function, this job's item)."""


@dataclass(frozen=True)
class Closed:
    """What became of a ``Close``: ``lost`` (not ours any more) or its effects' ``error``."""

    lost: bool = False
    error: BaseException | None = None


class DurableQueue:
    """One table of jobs, for one owner (this process)."""

    def __init__(self, db: Database, spec: QueueSpec, *, owner: str, lease: float) -> None:
        self.db = db
        self.spec = spec
        self.owner = owner
        self.lease = timedelta(seconds=lease)
        t = spec.table
        self._columns = [t.c[name] for name in spec.returning]

    # --- claim --------------------------------------------------------------------------------

    def _candidates(self, now: datetime, limit: int, expired: bool) -> Any:
        t, spec = self.spec.table, self.spec
        if expired:
            # Leased by a process whose lease ran out.
            status = spec.processing or spec.pending
            where = [t.c.status == status, t.c.lease_expires_at < now]
            order = [t.c.lease_expires_at, t.c.id]
        else:
            where = [t.c.status == spec.pending, t.c.next_attempt_at <= now]
            if spec.processing is None:
                where.append(t.c.lease_expires_at.is_(None))
            order = [t.c.next_attempt_at, t.c.id]
        if spec.exclusive is not None:
            column = t.c[spec.exclusive]
            busy = select(column).where(self._leased(now), column.is_not(None))
            where.append(or_(column.is_(None), column.not_in(busy)))
        return (
            select(t.c.id)
            .where(*where)
            .order_by(*order)
            .limit(limit)
            .with_for_update(skip_locked=True)  # SQLite has no row locks: rendered as nothing
        )

    def _leased(self, now: datetime) -> Any:
        t, spec = self.spec.table, self.spec
        status = spec.processing or spec.pending
        return and_(t.c.status == status, t.c.lease_expires_at >= now)

    async def claim(self, limit: int = 1) -> list[Row[Any]]:
        """Lease up to ``limit`` due jobs to this process (their ``attempts`` counted)."""
        now = utcnow()
        t, spec = self.spec.table, self.spec
        values: dict[str, Any] = {
            "lease_owner": self.owner,
            "lease_expires_at": now + self.lease,
            "attempts": t.c.attempts + 1,
        }
        if spec.processing is not None:
            values["status"] = spec.processing
        if "updated_at" in t.c:
            values["updated_at"] = now

        def work(conn: Connection) -> list[Row[Any]]:
            order: list[int] = []
            by_id: dict[int, Row[Any]] = {}
            for expired in (True, False):
                wanted = limit - len(order)
                if wanted <= 0:
                    break
                # The ids first: PostgreSQL locks (SKIP LOCKED) exactly the rows it then
                # updates, and the claim order is the candidates' order.
                ids = list(conn.execute(self._candidates(now, wanted, expired)).scalars())
                if ids:
                    statement = (
                        update(t).where(t.c.id.in_(ids)).values(**values).returning(*self._columns)
                    )
                    by_id.update((row[0], row) for row in conn.execute(statement))
                    order += ids
            return [by_id[key] for key in order if key in by_id]

        # Not flushed to disk: a claim lost with the machine only leaves the job due again.
        return await self.db.run(work, durable=False)

    # --- close --------------------------------------------------------------------------------

    async def close(self, closes: Sequence[Close]) -> list[Closed]:
        """Settle leased jobs in one transaction (see module); if it fails, one by one."""
        if not closes:
            return []
        now = utcnow()
        try:
            return await self.db.run(lambda conn: self._close_batch(conn, closes, now))
        except Exception as exc:
            if len(closes) == 1:
                return [Closed(error=exc)]
        # Someone's effects failed (or the database did): each job alone, so only it fails.
        return [(await self.close([close]))[0] for close in closes]

    def _close_batch(
        self, conn: Connection, closes: Sequence[Close], now: datetime
    ) -> list[Closed]:
        t, spec = self.spec.table, self.spec
        # Ours first (locked on PostgreSQL; SQLite holds its write lock since BEGIN): a job
        # another process took over is left alone, effects and all.
        ours_now = select(t.c.id).where(*self._ours([c.id for c in closes])).with_for_update()
        ours = set(conn.execute(ours_now).scalars())
        shapes: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for close in closes:
            if close.id in ours:
                values = self._values(close, now)
                shapes.setdefault(tuple(sorted(values)), []).append(
                    {"job_id": close.id, **{f"v_{k}": v for k, v in values.items()}}
                )
        for shape, rows in shapes.items():
            # One executemany per set of columns: the driver loops, not Python.
            statement = (
                update(t)
                .where(t.c.id == bindparam("job_id"))
                .values({name: bindparam(f"v_{name}") for name in shape})
            )
            conn.execute(statement, rows)
        notes: list[dict[str, Any]] = []
        effects = [c for c in closes if c.id in ours and c.apply is not None]
        shared: dict[ApplyMany, list[Close]] = {}
        for close in closes:
            if close.id in ours and close.apply_many is not None:
                shared.setdefault(close.apply_many[0], []).append(close)
        if effects or shared:
            answers: list[tuple[Close, str | None]] = []
            with Session(bind=conn) as session:
                for close in effects:
                    assert close.apply is not None
                    answers.append((close, close.apply(session)))
                for apply_many, members in shared.items():
                    items = [close.apply_many[1] for close in members if close.apply_many]
                    answers += zip(members, apply_many(session, items), strict=True)
                session.commit()  # a flush: the unit commits
            for close, note in answers:
                if note and close.status is spec.done and spec.note is not None:
                    notes.append({"job_id": close.id, "v_note": note[:2000]})
        if notes and spec.note is not None:
            statement = (
                update(t)
                .where(t.c.id == bindparam("job_id"))
                .values({spec.note: bindparam("v_note")})
            )
            conn.execute(statement, notes)
        return [Closed(lost=close.id not in ours) for close in closes]

    def _values(self, close: Close, now: datetime) -> dict[str, Any]:
        t, spec = self.spec.table, self.spec
        values: dict[str, Any] = {
            "status": close.status,
            "lease_owner": None,
            "lease_expires_at": None,
            **close.values,
        }
        if close.error is not None or close.status is spec.done:
            values["last_error"] = None if close.error is None else close.error[:2000]
        if close.retry_at is not None:
            values["next_attempt_at"] = close.retry_at
        if close.status is not spec.pending and spec.finished_at is not None:
            values[spec.finished_at] = now
        if close.note is not None and spec.note is not None:
            values[spec.note] = close.note[:2000]
        if "updated_at" in t.c:
            values["updated_at"] = now
        return values

    def _ours(self, ids: Sequence[int]) -> list[Any]:
        """The conditions for the jobs among ``ids`` still leased to this process."""
        t, spec = self.spec.table, self.spec
        leased = spec.processing or spec.pending
        return [t.c.id.in_(list(ids)), t.c.status == leased, t.c.lease_owner == self.owner]

    # --- extend / release / replay ------------------------------------------------------------

    async def extend(self, ids: Sequence[int]) -> set[int]:
        """Renew our leases on ``ids``; the ids still ours."""
        if not ids:
            return set()
        t = self.spec.table
        until = utcnow() + self.lease

        def work(conn: Connection) -> set[int]:
            renew = update(t).where(*self._ours(ids)).values(lease_expires_at=until)
            return set(conn.execute(renew.returning(t.c.id)).scalars())

        return await self.db.run(work, durable=False)

    async def release(self, ids: Sequence[int]) -> None:
        """Give jobs back, due now, keeping their attempt counts (shutdown cut them off)."""
        if not ids:
            return
        t, now = self.spec.table, utcnow()
        values: dict[str, Any] = {
            "status": self.spec.pending,
            "lease_owner": None,
            "lease_expires_at": None,
            "next_attempt_at": now,
        }
        if "updated_at" in t.c:
            values["updated_at"] = now

        def work(conn: Connection) -> None:
            conn.execute(update(t).where(*self._ours(ids)).values(**values))

        await self.db.run(work)

    async def replay(self, job_id: int) -> str | None:
        """Queue a job again with a fresh attempt budget; None, "missing" or "busy"."""
        t, spec, now = self.spec.table, self.spec, utcnow()
        values: dict[str, Any] = {
            "status": spec.pending,
            "attempts": 0,
            "next_attempt_at": now,
            "lease_owner": None,
            "lease_expires_at": None,
        }
        if "updated_at" in t.c:
            values["updated_at"] = now
        if job_id > MAX_ID:
            return "missing"

        def work(conn: Connection) -> str | None:
            found = conn.execute(
                select(t.c.status, t.c.lease_expires_at).where(t.c.id == job_id).with_for_update()
            ).first()
            if found is None:
                return "missing"
            status, until = found
            if status == (spec.processing or spec.pending) and until is not None and until > now:
                return "busy"
            conn.execute(update(t).where(t.c.id == job_id).values(**values))
            return None

        return await self.db.run(work)
