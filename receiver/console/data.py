"""Everything the console reads and does, behind one small protocol (``ConsoleData``).

Pages, the export and the alert checker depend only on ``ConsoleData`` and the plain,
JSON-ready dicts it returns; ``StoreData`` implements it on today's storage. When the storage
layer changes, this module is the only one of the console that changes with it.

What ``StoreData`` uses of the storage modules:

- ``receiver.inbox.queries``: ``event_summary``, ``get_event``, ``refund_view``
- ``receiver.inbox.store.Inbox.replay``
- tables ``receiver.inbox.models`` (``Refund``, ``RefundHistory``, ``TransactionStatus``,
  ``WebhookEvent``, ``EventStatus``, ``RefundState``, ``PaymentCheck``),
  ``receiver.db.InvoiceRecord`` / ``InvoiceStatusDB``, ``receiver.kotani.models_db``
  (``BridgeDepositRecord``) and ``receiver.kotani.bridge_rules.MAX_REGENERATIONS``
- ``Services.chain`` (``backends``, ``breaker_states()``), the readiness probe cache of
  ``receiver.handlers.health`` (``Readiness.verdict``), and the process's metric families
  ``BACKEND_FAILURES`` / ``MINT_DURATION`` of ``receiver.metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import func, select

from receiver.db import Database, InvoiceRecord
from receiver.db.models import InvoiceStatusDB
from receiver.handlers.health import Readiness
from receiver.inbox import queries
from receiver.inbox.models import (
    EventStatus,
    PaymentCheck,
    Refund,
    RefundHistory,
    RefundState,
    TransactionStatus,
    WebhookEvent,
)
from receiver.inbox.store import Inbox
from receiver.kotani.bridge_rules import MAX_REGENERATIONS
from receiver.kotani.models_db import BridgeDepositRecord
from receiver.metrics import BACKEND_FAILURES, MINT_DURATION
from receiver.services import Services

PAGE = 200
REFUND_STATES = tuple(s.value for s in RefundState)
EVENT_STATUSES = tuple(s.value for s in EventStatus)
KOTANI_PAID = frozenset({"REVERSED", "REFUNDED", "SUCCESSFUL"})
"""Kotani statuses that mean the refund went out (``refund.completed`` carries REVERSED)."""
AUTH_REFUSED = "%refused our API key%"
"""How the handlers word Kotani's 401 in ``last_error`` (invoice_needed, refund.failed)."""
INVOICE_NEEDED = "refund.lightning.invoice_needed"
KOTANI_VERDICTS = ("refund.completed", "refund.failed")
"""Deliveries whose ``data.status`` is Kotani's word on a refund when no status update came."""


@dataclass(frozen=True)
class RefundFilters:
    """The refunds list's filters; empty means no filter."""

    state: str = ""
    search: str = ""
    """A substring of the reference id or the payment hash."""
    since: datetime | None = None


class ConsoleData(Protocol):
    """What the console needs from storage (views are JSON-ready dicts, times ISO-8601 UTC)."""

    async def list_refunds(self, filters: RefundFilters) -> list[dict[str, Any]]:
        """Refunds, most recently changed first: reference, state, amount, backend, last event."""

    async def refund_timeline(self, reference: str) -> dict[str, Any]:
        """A refund's record, invoices and one chronological ``timeline``; NotFound if unknown."""

    async def list_events(
        self, status: str, event_type: str, reference: str, since: datetime | None
    ) -> list[dict[str, Any]]:
        """Deliveries, newest first, filtered (empty strings: no filter)."""

    async def get_event(self, event_id: int) -> dict[str, Any]:
        """One delivery with body, headers and forwarding state; NotFound if unknown."""

    async def replay(self, event_id: int) -> None:
        """Queue one delivery to be handled again (fresh attempt budget)."""

    async def dead_since(self, since: datetime) -> list[int]:
        """Ids of the dead deliveries received at or after ``since``."""

    async def replay_dead_since(self, since: datetime) -> int:
        """Replay every dead delivery received at or after ``since``; how many."""

    async def backends_health(self) -> list[dict[str, Any]]:
        """Per backend: reachable, network, node id, breaker, failures by code, mint latency."""

    async def bridge_deposits(self) -> list[dict[str, Any]]:
        """Crypto-bridge deposits: status, regenerations left, refund-invoice expiry."""

    async def export_refunds(self, since: datetime | None, state: str) -> list[dict[str, Any]]:
        """One reconciliation row per refund, with its ``mismatch`` flag."""

    async def incidents(self, unsubmitted_after: timedelta) -> dict[str, str]:
        """What is wrong now, ``key -> text``: dead deliveries, ``invoice_needed`` waiting
        longer than ``unsubmitted_after``, failed refunds, open breakers, Kotani refusing our
        key. A key stays the same while its incident lasts."""


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _reported_status(body: bytes) -> str | None:
    """``data.status`` of a stored delivery's body (what Kotani said), if it has one."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    data = parsed.get("data") if isinstance(parsed, dict) else None
    status = data.get("status") if isinstance(data, dict) else None
    return status[:64] if isinstance(status, str) else None


def mismatch(kotani_paid: bool, node_paid: bool) -> str:
    """``kotani_paid_node_unpaid``, ``node_paid_kotani_open`` or "" when both agree."""
    if kotani_paid and not node_paid:
        return "kotani_paid_node_unpaid"
    if node_paid and not kotani_paid:
        return "node_paid_kotani_open"
    return ""


class StoreData:
    """``ConsoleData`` on the inbox, invoice and bridge tables of today's storage."""

    def __init__(
        self,
        db: Database,
        *,
        services: Services | None = None,
        inbox: Inbox | None = None,
        readiness: Callable[[], Readiness] | None = None,
    ) -> None:
        self.db = db
        self._services = services
        self._inbox = inbox
        self._readiness = readiness

    @classmethod
    def of_app(cls, state: Any) -> StoreData:
        """From a running app's ``state`` (services, webhook runtime, readiness cache)."""

        def readiness() -> Readiness:
            cached: Readiness | None = getattr(state, "readiness", None)
            if cached is None:
                cached = state.readiness = Readiness()
            return cached

        return cls(
            state.services.db,
            services=state.services,
            inbox=state.webhooks.inbox,
            readiness=readiness,
        )

    # --- refunds ------------------------------------------------------------------------------

    async def list_refunds(self, filters: RefundFilters) -> list[dict[str, Any]]:
        query = select(Refund).order_by(Refund.updated_at.desc()).limit(PAGE)
        if filters.state:
            query = query.where(Refund.state == RefundState(filters.state))
        if filters.search:
            needle = f"%{filters.search}%"
            query = query.where(Refund.reference_id.like(needle) | Refund.payment_hash.like(needle))
        if filters.since is not None:
            query = query.where(Refund.updated_at >= filters.since)
        async with self.db.session() as session:
            refunds = list((await session.execute(query)).scalars())
            references = [r.reference_id for r in refunds]
            backends = await self._backends_of(session, references)
            last_events = await self._last_events(session, references)
        now = datetime.now(UTC)
        return [
            {
                "reference_id": r.reference_id,
                "state": r.state.value,
                "amount_msat": r.amount_msat,
                "backend": backends.get(r.reference_id),
                "last_event": last_events.get(r.reference_id),
                "updated_at": iso(r.updated_at),
                "age_seconds": int((now - r.created_at).total_seconds()),
            }
            for r in refunds
        ]

    @staticmethod
    async def _backends_of(session: Any, references: list[str]) -> dict[str, str]:
        if not references:
            return {}
        rows = await session.execute(
            select(InvoiceRecord.reference_id, InvoiceRecord.backend)
            .where(InvoiceRecord.reference_id.in_(references))
            .order_by(InvoiceRecord.id)
        )
        return {reference: backend for reference, backend in rows}  # newest wins

    @staticmethod
    async def _last_events(session: Any, references: list[str]) -> dict[str, str]:
        if not references:
            return {}
        newest = (
            select(func.max(WebhookEvent.id))
            .where(WebhookEvent.reference_id.in_(references))
            .group_by(WebhookEvent.reference_id)
        )
        rows = await session.execute(
            select(WebhookEvent.reference_id, WebhookEvent.event_type).where(
                WebhookEvent.id.in_(newest)
            )
        )
        return {reference: event_type for reference, event_type in rows}

    async def refund_timeline(self, reference: str) -> dict[str, Any]:
        view = await queries.refund_view(self.db, reference)
        steps: list[dict[str, Any]] = []
        for event in view["events"]:
            steps.append(
                {
                    "at": event["received_at"],
                    "kind": "event",
                    "what": event["type"],
                    "detail": f"{event['status']}: {event['outcome'] or event['last_error'] or ''}",
                    "event_id": event["id"],
                }
            )
        for step in view["history"]:
            steps.append(
                {
                    "at": step["at"],
                    "kind": "kotani" if step["action"].startswith("invoice.") else "status",
                    "what": step["action"],
                    "detail": step["detail"],
                    "event_id": step["event_id"],
                }
            )
        for invoice in view["invoices"]:
            steps.append(
                {
                    "at": invoice["created_at"],
                    "kind": "mint",
                    "what": f"invoice minted by {invoice['backend']}",
                    "detail": f"{invoice['payment_hash']} ({invoice['amount_msat']} msat), "
                    f"now {invoice['status']}",
                    "event_id": None,
                }
            )
        steps.sort(key=lambda s: s["at"] or "")
        view["timeline"] = steps
        return view

    async def export_refunds(self, since: datetime | None, state: str) -> list[dict[str, Any]]:
        query = select(Refund).order_by(Refund.created_at, Refund.reference_id)
        if since is not None:
            query = query.where(Refund.created_at >= since)
        if state:
            query = query.where(Refund.state == RefundState(state))
        async with self.db.session() as session:
            refunds = list((await session.execute(query)).scalars())
            references = [r.reference_id for r in refunds]
            outcome: dict[str, str] = {}
            statuses = {
                s.reference_id: s.status
                for s in (
                    await session.execute(
                        select(TransactionStatus).where(
                            TransactionStatus.reference_id.in_(references)
                        )
                    )
                ).scalars()
            }
            for reference, body in await session.execute(
                select(WebhookEvent.reference_id, WebhookEvent.body)
                .where(
                    WebhookEvent.reference_id.in_(references),
                    WebhookEvent.event_type.in_(KOTANI_VERDICTS),
                    WebhookEvent.status == EventStatus.DONE,
                )
                .order_by(WebhookEvent.id)
            ):
                reported = _reported_status(body)
                if reported and reference is not None and reference not in statuses:
                    outcome[reference] = reported
            invoices: dict[str, list[InvoiceRecord]] = {}
            for invoice in (
                await session.execute(
                    select(InvoiceRecord).where(InvoiceRecord.reference_id.in_(references))
                )
            ).scalars():
                invoices.setdefault(invoice.reference_id, []).append(invoice)
            submitted: dict[str, datetime] = {}
            for reference, at in await session.execute(
                select(RefundHistory.reference_id, func.min(RefundHistory.at))
                .where(
                    RefundHistory.reference_id.in_(references),
                    RefundHistory.action == "invoice.submitted",
                )
                .group_by(RefundHistory.reference_id)
            ):
                submitted[reference] = at
        rows = []
        for r in refunds:
            minted = invoices.get(r.reference_id, [])
            paid = [i for i in minted if i.status is InvoiceStatusDB.PAID]
            kotani_status = statuses.get(r.reference_id) or outcome.get(r.reference_id)
            kotani_paid = r.state is RefundState.COMPLETED or kotani_status in KOTANI_PAID
            node_paid = bool(paid) or r.payment is PaymentCheck.PAID
            rows.append(
                {
                    "reference_id": r.reference_id,
                    "state": r.state.value,
                    "amount_msat": r.amount_msat,
                    "amount_sats": r.amount_sats,
                    "refund_amount": r.refund_amount,
                    "payment_hash": r.payment_hash,
                    "created_at": iso(r.created_at),
                    "submitted_at": iso(submitted.get(r.reference_id)),
                    "paid_at": iso(min((i.paid_at for i in paid if i.paid_at), default=None)),
                    "completed_at": iso(r.completed_at),
                    "kotani_status": kotani_status,
                    "node_payment": r.payment.value if r.payment else ("paid" if paid else ""),
                    "mismatch": mismatch(kotani_paid, node_paid),
                }
            )
        return rows

    # --- deliveries ---------------------------------------------------------------------------

    async def list_events(
        self, status: str, event_type: str, reference: str, since: datetime | None
    ) -> list[dict[str, Any]]:
        query = select(WebhookEvent).order_by(WebhookEvent.id.desc()).limit(PAGE)
        if status:
            query = query.where(WebhookEvent.status == EventStatus(status))
        if event_type:
            query = query.where(WebhookEvent.event_type == event_type)
        if reference:
            query = query.where(WebhookEvent.reference_id == reference)
        if since is not None:
            query = query.where(WebhookEvent.received_at >= since)
        async with self.db.session() as session:
            return [queries.event_summary(e) for e in (await session.execute(query)).scalars()]

    async def get_event(self, event_id: int) -> dict[str, Any]:
        return await queries.get_event(self.db, event_id)

    async def replay(self, event_id: int) -> None:
        if self._inbox is None:
            raise RuntimeError("replay needs the running service's inbox")
        await self._inbox.replay(event_id)

    async def dead_since(self, since: datetime) -> list[int]:
        query = (
            select(WebhookEvent.id)
            .where(WebhookEvent.status == EventStatus.DEAD, WebhookEvent.received_at >= since)
            .order_by(WebhookEvent.id)
        )
        async with self.db.session() as session:
            return list((await session.execute(query)).scalars())

    async def replay_dead_since(self, since: datetime) -> int:
        ids = await self.dead_since(since)
        for event_id in ids:
            await self.replay(event_id)
        return len(ids)

    # --- backends and bridge ------------------------------------------------------------------

    async def backends_health(self) -> list[dict[str, Any]]:
        if self._services is None or self._readiness is None:
            return []
        verdict = await self._readiness().verdict(self._services)
        listed = verdict.get("backends")
        probes = {
            p["name"]: p
            for p in (listed if isinstance(listed, list) else [])
            if isinstance(p, dict)
        }
        breakers = self._services.chain.breaker_states()
        failures: dict[str, dict[str, int]] = {}
        for metric in BACKEND_FAILURES.collect():
            for sample in metric.samples:
                if sample.name.endswith("_total") and sample.value:
                    labels = sample.labels
                    failures.setdefault(labels["backend"], {})[labels["code"]] = int(sample.value)
        latency: dict[str, tuple[float, float]] = {}
        for metric in MINT_DURATION.collect():
            for sample in metric.samples:
                name = sample.labels.get("backend", "")
                total, count = latency.get(name, (0.0, 0.0))
                if sample.name.endswith("_sum"):
                    latency[name] = (sample.value, count)
                elif sample.name.endswith("_count"):
                    latency[name] = (total, sample.value)
        rows = []
        for backend in self._services.chain.backends:
            probe = probes.get(backend.name, {})
            total, count = latency.get(backend.name, (0.0, 0.0))
            rows.append(
                {
                    "name": backend.name,
                    "reachable": bool(probe.get("ok")),
                    "error": probe.get("error"),
                    "network": probe.get("network"),
                    "node_id": probe.get("node_id"),
                    "breaker": str(breakers.get(backend.name, "")),
                    "failures": failures.get(backend.name, {}),
                    "mints": int(count),
                    "mean_mint_ms": round(total / count * 1000, 1) if count else None,
                }
            )
        return rows

    async def bridge_deposits(self) -> list[dict[str, Any]]:
        query = (
            select(BridgeDepositRecord).order_by(BridgeDepositRecord.updated_at.desc()).limit(PAGE)
        )
        async with self.db.session() as session:
            deposits = list((await session.execute(query)).scalars())
        return [
            {
                "reference_id": d.kotani_reference_id,
                "status": d.status.value if d.status else None,
                "chain": d.chain.value if d.chain else None,
                "active": d.active,
                "regenerations_left": max(0, MAX_REGENERATIONS - d.regeneration_count),
                "refund_amount_msat": d.refund_amount_msat,
                "expires_at": iso(d.expires_at),
                "invoice_problem": d.invoice_problem,
            }
            for d in deposits
        ]

    # --- alerts -------------------------------------------------------------------------------

    async def incidents(self, unsubmitted_after: timedelta) -> dict[str, str]:
        found: dict[str, str] = {}
        waiting_since = datetime.now(UTC) - unsubmitted_after
        open_states = (EventStatus.PENDING, EventStatus.PROCESSING)
        async with self.db.session() as session:
            dead = await session.execute(
                select(WebhookEvent.id, WebhookEvent.event_type, WebhookEvent.reference_id)
                .where(WebhookEvent.status == EventStatus.DEAD)
                .order_by(WebhookEvent.id)
            )  # every one: a dead delivery cut off by a page limit would read as resolved
            for event_id, event_type, reference in dead:
                found[f"dead:{event_id}"] = (
                    f"delivery {event_id} ({event_type}, {reference or 'no reference'}) is dead"
                )
            waiting = await session.execute(
                select(WebhookEvent.reference_id, WebhookEvent.received_at).where(
                    WebhookEvent.event_type == INVOICE_NEEDED,
                    WebhookEvent.status.in_(open_states),
                    WebhookEvent.received_at <= waiting_since,
                )
            )
            for reference, received in waiting:
                found[f"unsubmitted:{reference}"] = (
                    f"invoice_needed for {reference} is still unsubmitted "
                    f"(received {iso(received)})"
                )
            failed = await session.execute(
                select(Refund.reference_id, Refund.error).where(Refund.state == RefundState.FAILED)
            )
            for reference, error in failed:
                found[f"refund_failed:{reference}"] = (
                    f"refund {reference} failed: {error or 'no reason given'}"
                )
            refused = await session.scalar(
                select(func.count(WebhookEvent.id)).where(
                    WebhookEvent.status.in_((EventStatus.DEAD, *open_states)),
                    WebhookEvent.last_error.like(AUTH_REFUSED),
                )
            )
            if refused:
                found["kotani_auth"] = (
                    f"Kotani refuses our API key (401) on {refused} deliver"
                    f"{'y' if refused == 1 else 'ies'}: check RECEIVER_KOTANI_API_KEY"
                )
        if self._services is not None:
            for name, state in self._services.chain.breaker_states().items():
                if str(state) == "open":
                    found[f"breaker:{name}"] = f"backend {name}: circuit breaker open"
        return found
