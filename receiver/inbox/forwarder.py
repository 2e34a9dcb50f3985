"""Forwarding: deliver every stored event to the integrator's own app, signed (Standard Webhooks).

With ``RECEIVER_FORWARD_URL`` set, ``Inbox.accept`` writes a ``forward_outbox`` row in the same
transaction as each new event; this loop POSTs them in order of arrival:

    POST <RECEIVER_FORWARD_URL>
    webhook-id: msg_<dedup key>   webhook-timestamp: <unix s>   webhook-signature: v1,<base64>
    {"type": "refund.completed", "timestamp": "<received, RFC 3339>", "data": {...},
     "kotani": {"event_id": 12, "reference_id": "TXN-1", "verification": "signature"}}

``data`` is Kotani's ``data`` (or the bare direct-mode object) re-serialised JS-exactly. Any 2xx
is delivered; anything else, or no answer within ``timeout``, is retried with the same
``next_delay`` policy and ends ``dead`` (kept, visible) once attempts run out. The message id is
stable across retries, so the receiving app can deduplicate. Log events:
``webhook.forward.delivered|retry|dead``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import or_, select, update
from sqlalchemy.exc import SQLAlchemyError

from receiver.db import Database
from receiver.db.types import utcnow
from receiver.errors import ReceiverError
from receiver.inbox.models import ForwardMessage, OutboxStatus, WebhookEvent
from receiver.inbox.retry import RetryPolicy, next_delay
from receiver.logs import get_logger
from receiver.webhooks import jsjson, standard
from receiver.webhooks.delivery import DIRECT_EVENT

log = get_logger("forwarder")

FORWARD_POLICY = RetryPolicy(max_attempts=15, base=5.0, cap=3600.0)


@dataclass(frozen=True, slots=True)
class _Claimed:
    id: int
    event_id: int
    message_id: str
    attempts: int


def payload(event: WebhookEvent) -> bytes:
    """The JSON forwarded for ``event``."""
    try:
        body = jsjson.loads(event.body)
    except ReceiverError:
        body = None
    data = (
        body
        if event.event_type == DIRECT_EVENT
        else (body.get("data") if isinstance(body, dict) else None)
    )
    document: dict[str, jsjson.JSValue] = {
        "type": event.event_type,
        "timestamp": event.received_at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "data": data,
        "kotani": {
            "event_id": event.id,
            "reference_id": event.reference_id,
            "verification": event.verification.value,
        },
    }
    return jsjson.dumps(document).encode("utf-8")


class Forwarder:
    """Delivers the forwarding outbox (one loop per process)."""

    def __init__(
        self,
        db: Database,
        *,
        url: str,
        key: bytes,
        owner: str,
        lease: float = 30.0,
        policy: RetryPolicy = FORWARD_POLICY,
        timeout: float = 10.0,
        poll: float = 1.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.db = db
        self.url = url
        self._key = key
        self.owner = owner
        self.lease = timedelta(seconds=max(lease, timeout + 5))
        self.policy = policy
        self.poll = poll
        self._http = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def __repr__(self) -> str:
        return f"Forwarder(url={self.url!r})"

    def wake(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop(), name="forwarder")

    async def stop(self, grace: float = 15.0) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            _, pending = await asyncio.wait([self._task], timeout=grace)
            for task in pending:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            self._task = None
        await self._http.aclose()

    async def _loop(self) -> None:
        while not self._stopping:
            try:
                worked = await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                log.error("webhook.forward.storage_failed", error=type(exc).__name__)
                worked = False
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def drain(self, limit: int = 10_000) -> int:
        done = 0
        while done < limit and await self.run_once():
            done += 1
        return done

    async def run_once(self) -> bool:
        """Deliver one due message; False when none was due."""
        claimed = await self._claim()
        if claimed is None:
            return False
        async with self.db.session() as session:
            event = await session.get(WebhookEvent, claimed.event_id)
        if event is None:  # pragma: no cover - foreign key
            await self._close(claimed, OutboxStatus.DEAD, "the event is gone", None)
            return True
        body = payload(event)
        headers = standard.headers(self._key, claimed.message_id, int(time.time()), body)
        status_code: int | None = None
        try:
            response = await self._http.post(self.url, content=body, headers=headers)
            status_code = response.status_code
            error = None if 200 <= status_code < 300 else f"answered {status_code}"
        except httpx.HTTPError as exc:
            error = f"no answer: {type(exc).__name__}"
        if error is None:
            await self._close(claimed, OutboxStatus.DELIVERED, None, status_code)
            log.info("webhook.forward.delivered", event_id=claimed.event_id, status=status_code)
            return True
        delay = next_delay(claimed.attempts, self.policy)
        if delay is None:
            await self._close(claimed, OutboxStatus.DEAD, error, status_code)
            log.warning("webhook.forward.dead", event_id=claimed.event_id, error=error)
        else:
            await self._close(claimed, OutboxStatus.PENDING, error, status_code, delay)
            log.info(
                "webhook.forward.retry",
                event_id=claimed.event_id,
                error=error,
                delay=round(delay.total_seconds(), 1),
            )
        return True

    async def _claim(self) -> _Claimed | None:
        now = utcnow()
        due = (
            select(ForwardMessage.id)
            .where(
                ForwardMessage.status == OutboxStatus.PENDING,
                ForwardMessage.next_attempt_at <= now,
                or_(
                    ForwardMessage.lease_expires_at.is_(None),
                    ForwardMessage.lease_expires_at < now,
                ),
            )
            .order_by(ForwardMessage.next_attempt_at, ForwardMessage.id)
            .limit(1)
        )
        if not self.db.is_sqlite:
            due = due.with_for_update(skip_locked=True)
        statement = (
            update(ForwardMessage)
            .where(ForwardMessage.id == due.scalar_subquery())
            .values(
                lease_owner=self.owner,
                lease_expires_at=now + self.lease,
                attempts=ForwardMessage.attempts + 1,
            )
            .returning(
                ForwardMessage.id,
                ForwardMessage.event_id,
                ForwardMessage.message_id,
                ForwardMessage.attempts,
            )
            .execution_options(synchronize_session=False)
        )
        async with self.db.session() as session, session.begin():
            row = (await session.execute(statement)).one_or_none()
        return None if row is None else _Claimed(*row)

    async def _close(
        self,
        claimed: _Claimed,
        status: OutboxStatus,
        error: str | None,
        status_code: int | None,
        delay: timedelta | None = None,
    ) -> None:
        now = utcnow()
        values: dict[str, Any] = {
            "status": status,
            "lease_owner": None,
            "lease_expires_at": None,
            "last_status_code": status_code,
        }
        if error is not None:
            values["last_error"] = error[:2000]
        if status is OutboxStatus.DELIVERED:
            values["delivered_at"] = now
        if delay is not None:
            values["next_attempt_at"] = now + delay
        async with self.db.session() as session, session.begin():
            await session.execute(
                update(ForwardMessage)
                .where(ForwardMessage.id == claimed.id, ForwardMessage.lease_owner == self.owner)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
