"""The crypto-bridge deposits we watch, in the database (tables in ``models_db``).

Each read or write is one unit of work (``Database.orm``). Every write compares with what is
stored and returns the ``BridgeEvent``s it caused, which are stored in the same transaction. A
regeneration is *reserved* before it is sent, with a conditional UPDATE on the count and time we
read (optimistic concurrency): of two replicas that both decide to regenerate, exactly one gets
the row, so the rules hold across processes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from receiver.db.engine import Database
from receiver.kotani.bridge_rules import MAX_REGENERATIONS, RegenerationState
from receiver.kotani.models import Chain, DepositStatus
from receiver.kotani.models_db import (
    BridgeDepositRecord,
    BridgeEventKind,
    BridgeEventRecord,
    DepositOrigin,
)
from receiver.kotani.refund_invoice import VerifiedRefundConfig


@dataclass(frozen=True)
class BridgeEvent:
    """One recorded change (also what is forwarded, as ``{"event": kind, "data": ...}``)."""

    reference: str
    kind: BridgeEventKind
    at: datetime
    detail: dict[str, Any] = field(default_factory=dict)

    def payload(self) -> dict[str, Any]:
        return {
            "event": self.kind.value,
            "data": {"kotani_reference_id": self.reference, "at": _iso(self.at), **self.detail},
        }


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def state_of(record: BridgeDepositRecord) -> RegenerationState:
    """The rules' view of a stored deposit."""
    return RegenerationState(
        reference=record.kotani_reference_id,
        chain=record.chain,
        status=record.status,
        expires_at=record.expires_at,
        regeneration_count=record.regeneration_count,
        last_regenerated_at=record.last_regenerated_at,
        regenerated_for=record.regenerated_for,
    )


class BridgeStore:
    """Reads and writes ``bridge_deposits`` and ``bridge_deposit_events``."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, reference: str) -> BridgeDepositRecord | None:
        return await self._db.orm(
            lambda session: session.get(BridgeDepositRecord, reference), durable=False
        )

    async def ensure(
        self,
        reference: str,
        origin: DepositOrigin,
        *,
        provider_reference_id: str | None = None,
        now: datetime,
    ) -> None:
        """Start tracking ``reference`` (idempotent; concurrent inserts are harmless)."""

        def work(session: Session) -> None:
            if session.get(BridgeDepositRecord, reference) is None:
                session.add(
                    BridgeDepositRecord(
                        kotani_reference_id=reference,
                        provider_reference_id=provider_reference_id,
                        origin=origin,
                        active=True,
                        regeneration_count=0,
                        created_at=now,
                        updated_at=now,
                    )
                )

        try:
            await self._db.orm(work)
        except IntegrityError:
            pass  # another process inserted it first

    async def active(self) -> list[str]:
        """References the keeper still polls."""
        query = (
            select(BridgeDepositRecord.kotani_reference_id)
            .where(BridgeDepositRecord.active.is_(True))
            .order_by(BridgeDepositRecord.created_at)
        )
        return await self._db.orm(lambda session: list(session.scalars(query)), durable=False)

    async def events(self, reference: str) -> list[BridgeEvent]:
        query = (
            select(BridgeEventRecord)
            .where(BridgeEventRecord.kotani_reference_id == reference)
            .order_by(BridgeEventRecord.id)
        )
        rows = await self._db.orm(lambda session: list(session.scalars(query)), durable=False)
        return [
            BridgeEvent(row.kotani_reference_id, row.kind, row.created_at, json.loads(row.detail))
            for row in rows
        ]

    async def record_status(
        self, reference: str, *, chain: Chain, status: DepositStatus, now: datetime
    ) -> list[BridgeEvent]:
        """Store the deposit's chain and status; a terminal status ends polling."""

        def work(session: Session) -> list[BridgeEvent]:
            record = self._row(session, reference)
            events = []
            if record.status is not status:
                events.append(
                    BridgeEvent(
                        reference,
                        BridgeEventKind.STATUS_CHANGED,
                        now,
                        {
                            "status": status.value,
                            "previous_status": record.status.value if record.status else None,
                        },
                    )
                )
            record.chain = chain
            record.status = status
            record.active = not status.is_terminal
            record.updated_at = now
            self._add(session, events)
            return events

        return await self._db.orm(work)

    async def record_refund_config(
        self, reference: str, verified: VerifiedRefundConfig, *, now: datetime
    ) -> list[BridgeEvent]:
        """Store a refund config (its invoice only if it passed the checks)."""
        config = verified.config

        def work(session: Session) -> list[BridgeEvent]:
            record = self._row(session, reference)
            events: list[BridgeEvent] = []
            problem = None if verified.problem is None else verified.problem.error_code
            changed = (
                record.refund_payment_hash != config.refund_payment_hash
                or record.expires_at != verified.expires_at
                or record.refund_amount_msat != config.refund_amount_msat
                or record.invoice_problem != problem
            )
            if changed:
                events.append(
                    BridgeEvent(
                        reference,
                        BridgeEventKind.REFUND_CONFIG_CHANGED,
                        now,
                        {
                            "refund_payment_hash": config.refund_payment_hash,
                            "refund_amount_msat": config.refund_amount_msat,
                            "expires_at": _iso(verified.expires_at),
                            "refund_invoice_check": problem or "ok",
                        },
                    )
                )
            if verified.problem is not None and record.invoice_problem != problem:
                events.append(
                    BridgeEvent(
                        reference,
                        BridgeEventKind.INVOICE_INVALID,
                        now,
                        {"code": problem, "message": verified.problem.message},
                    )
                )
            if config.chain is not None:
                record.chain = config.chain
            record.refund_invoice = verified.bolt11
            record.refund_payment_hash = config.refund_payment_hash
            record.refund_amount_msat = config.refund_amount_msat
            record.expires_at = verified.expires_at
            record.invoice_problem = problem
            if config.regeneration_count is not None:
                # Kotani's count wins when higher (regenerations made elsewhere); ours never drops.
                record.regeneration_count = max(
                    record.regeneration_count, config.regeneration_count
                )
            if config.regenerations_remaining == 0:
                record.regeneration_count = max(record.regeneration_count, MAX_REGENERATIONS)
            record.updated_at = now
            self._add(session, events)
            return events

        return await self._db.orm(work)

    async def reserve_regeneration(self, seen: RegenerationState, *, now: datetime) -> bool:
        """Claim the next regeneration if the row is still as ``seen`` (False: someone else did)."""
        last = BridgeDepositRecord.last_regenerated_at

        def work(session: Session) -> bool:
            result = session.execute(
                update(BridgeDepositRecord)
                .where(
                    BridgeDepositRecord.kotani_reference_id == seen.reference,
                    BridgeDepositRecord.regeneration_count == seen.regeneration_count,
                    last.is_(None)
                    if seen.last_regenerated_at is None
                    else last == seen.last_regenerated_at,
                )
                .values(
                    regeneration_count=seen.regeneration_count + 1,
                    last_regenerated_at=now,
                    regenerated_for=seen.expires_at,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0) == 1)

        return await self._db.orm(work)

    async def release_regeneration(
        self, seen: RegenerationState, *, limit_reached: bool, now: datetime
    ) -> None:
        """Kotani definitely refused the reserved regeneration: give the slot back.

        The request time stays (Kotani counts its 30 s from requests); when Kotani says the
        limit is reached, the count is raised to the limit instead.
        """

        def work(session: Session) -> None:
            record = self._row(session, seen.reference)
            if limit_reached:
                record.regeneration_count = max(record.regeneration_count, MAX_REGENERATIONS)
            else:
                record.regeneration_count = max(
                    seen.regeneration_count, record.regeneration_count - 1
                )
            record.regenerated_for = seen.regenerated_for
            record.updated_at = now

        await self._db.orm(work)

    async def add_events(self, events: list[BridgeEvent]) -> None:
        def work(session: Session) -> None:
            self._add(session, events)

        await self._db.orm(work)

    @staticmethod
    def _row(session: Session, reference: str) -> BridgeDepositRecord:
        record = session.get(BridgeDepositRecord, reference)
        if record is None:
            raise LookupError(f"{reference} is not tracked (call ensure first)")
        return record

    @staticmethod
    def _add(session: Session, events: list[BridgeEvent]) -> None:
        for event in events:
            session.add(
                BridgeEventRecord(
                    kotani_reference_id=event.reference,
                    kind=event.kind,
                    detail=json.dumps(event.detail, sort_keys=True),
                    created_at=event.at,
                )
            )
