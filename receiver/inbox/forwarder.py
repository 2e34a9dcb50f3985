"""Forwarding: deliver every stored event to the integrator's own app, signed (Standard Webhooks).

With ``RECEIVER_FORWARD_URL`` set, ``Inbox.accept`` writes a ``forward_outbox`` row in the same
transaction as each new event; this loop POSTs them in order of arrival:

    POST <RECEIVER_FORWARD_URL>
    webhook-id: msg_<dedup key>   webhook-timestamp: <unix s>   webhook-signature: v1,<base64>
    {"type": "refund.completed", "timestamp": "<received, RFC 3339>", "data": {...},
     "kotani": {"event_id": 12, "reference_id": "TXN-1", "verification": "signature"}}

``data`` is Kotani's ``data`` (or the bare direct-mode object) re-serialised JS-exactly. Any 2xx
is delivered; anything else, or no answer within ``timeout``, is retried with the retry policy
and ends ``dead`` (kept, visible) once attempts run out. The message id is stable across
retries, so the receiving app can deduplicate. The outbox is a ``DurableQueue`` run by the one
queue loop: up to ``concurrency`` POSTs in flight, the events they need loaded and their
outcomes recorded in shared transactions (group commit). Log events:
``webhook.forward.delivered|retry|dead``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.engine import Connection, Row

from receiver.db import Database
from receiver.db.batch import GroupCommit
from receiver.db.queue import Close, Closed, DurableQueue, QueueSpec
from receiver.db.types import utcnow
from receiver.errors import ReceiverError
from receiver.inbox.loop import QueueLoop
from receiver.inbox.models import ForwardMessage, OutboxStatus, WebhookEvent
from receiver.logs import get_logger
from receiver.outbound import OutboundError, classify, exchange, outbound_client
from receiver.retry import RetryPolicy
from receiver.webhooks import jsjson, standard
from receiver.webhooks.delivery import DIRECT_EVENT

log = get_logger("forwarder")

ANSWER_LIMIT = 64 * 1024
"""The integrator's answer is read up to this many (decoded) bytes; only its status counts."""
FORWARD_POLICY = RetryPolicy(max_attempts=15, base=5.0, cap=3600.0)
FORWARD_LINGER = 0.25
LANE = 2
"""Connections per httpx client; the forwarder has as many clients as its concurrency needs."""
OUTBOX = QueueSpec(
    table=ForwardMessage.__table__,
    pending=OutboxStatus.PENDING,
    done=OutboxStatus.DELIVERED,
    dead=OutboxStatus.DEAD,
    processing=None,
    returning=("id", "attempts", "event_id", "message_id"),
)
_EVENT_COLUMNS = (
    WebhookEvent.id,
    WebhookEvent.event_type,
    WebhookEvent.reference_id,
    WebhookEvent.body,
    WebhookEvent.verification,
    WebhookEvent.received_at,
)


def payload(event: WebhookEvent | Row[Any]) -> bytes:
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
    """Delivers the forwarding outbox (one queue loop per process)."""

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
        concurrency: int = 32,
        transport: httpx.AsyncBaseTransport | None = None,
        pause: Callable[[], bool] | None = None,
    ) -> None:
        self.db = db
        self.url = url
        self._key = key
        self.policy = policy
        self.queue = DurableQueue(db, OUTBOX, owner=owner, lease=max(lease, timeout + 5))
        self.timeout = timeout
        # Small pools, the least busy one per POST: httpx checks every connection of its pool
        # on each request and each close, so 32 POSTs in flight cost ~2.7x the CPU per POST in
        # one pool of 32 (4.4 ms) that they cost in pools of 2 (1.6 ms). One TLS context for
        # all (each costs ~35 ms and ~1 MB to build); the trust is httpx's default, as before.
        tls = httpx.create_ssl_context(trust_env=False)
        self._clients = [
            outbound_client(
                timeout=timeout, max_connections=LANE, transport=transport, verify=tls
            )
            for _ in range(max(1, -(-concurrency // LANE)))
        ]
        self._busy = dict.fromkeys(self._clients, 0)
        self._events: GroupCommit[int, Row[Any]] = GroupCommit(self._load, name="forwarder-events")
        self.loop = QueueLoop(
            self.queue,
            self._handle,
            name="webhook.forward",
            concurrency=concurrency,
            poll=poll,
            pause=pause,
            report=_report,
            # A delivered message recorded late is at worst delivered again after a crash
            # (same webhook-id): gather the answers of a whole claim into one transaction.
            linger=FORWARD_LINGER,
        )

    def __repr__(self) -> str:
        return f"Forwarder(url={self.url!r})"

    @property
    def lease(self) -> timedelta:
        return self.queue.lease

    def wake(self) -> None:
        self.loop.wake()

    def start(self) -> None:
        self.loop.start()

    async def stop(self, grace: float = 15.0) -> None:
        await self.loop.stop(grace)
        await self._events.aclose()
        for client in self._clients:
            await client.aclose()

    async def run_once(self) -> bool:
        """Deliver one due message; False when none was due."""
        return await self.loop.run_once()

    async def drain(self, limit: int = 10_000) -> int:
        return await self.loop.drain(limit)

    async def _load(self, ids: list[int]) -> list[Row[Any] | BaseException]:
        """The events of many messages in one read."""

        def work(conn: Connection) -> dict[int, Row[Any]]:
            query = select(*_EVENT_COLUMNS).where(WebhookEvent.id.in_(set(ids)))
            rows: list[Row[Any]] = list(conn.execute(query))
            return {row.id: row for row in rows}

        found = await self.db.run(work, durable=False)
        return [found.get(i) or LookupError(f"event {i} is gone") for i in ids]

    async def _handle(self, row: Row[Any]) -> Close:
        job = row._mapping
        try:
            event = await self._events.submit(job["event_id"])
        except LookupError:  # pragma: no cover - foreign key
            return Close(job["id"], OutboxStatus.DEAD, error="the event is gone")
        body = payload(event)
        headers = standard.headers(self._key, job["message_id"], int(time.time()), body)
        status_code: int | None = None
        client = min(self._clients, key=self._busy.__getitem__)  # the least busy pool
        self._busy[client] += 1
        try:
            answer = await exchange(
                client,
                "POST",
                self.url,
                timeout=self.timeout,
                content=body,
                headers=headers,
                limit=ANSWER_LIMIT,
            )
            status_code = answer.status
            error = None if 200 <= status_code < 300 else f"answered {status_code}"
        except (httpx.HTTPError, TimeoutError, OutboundError) as exc:
            error = f"no answer: {classify(exc)[1]}"
        finally:
            self._busy[client] -= 1
        values: dict[str, Any] = {"last_status_code": status_code}
        if error is None:
            values["delivered_at"] = utcnow()
            return Close(job["id"], OutboxStatus.DELIVERED, values=values)
        delay = self.policy.next_delay(job["attempts"])
        if delay is None:
            return Close(job["id"], OutboxStatus.DEAD, error=error, values=values)
        retry_at = utcnow() + timedelta(seconds=delay)
        return Close(job["id"], OutboxStatus.PENDING, error=error, retry_at=retry_at, values=values)


def _report(row: Row[Any], close: Close, closed: Closed) -> None:
    event_id = row._mapping["event_id"]
    if closed.error is not None:
        log.error("webhook.forward.storage_failed", event_id=event_id)
    elif close.status is OutboxStatus.DELIVERED:
        status = close.values.get("last_status_code")
        log.info("webhook.forward.delivered", event_id=event_id, status=status)
    elif close.retry_at is None:
        log.warning("webhook.forward.dead", event_id=event_id, error=close.error)
    else:
        retry_at = close.retry_at.isoformat()
        log.info("webhook.forward.retry", event_id=event_id, error=close.error, retry_at=retry_at)
