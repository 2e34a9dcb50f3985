"""Webhooks as Kotani sends them: signed, redelivered, and (on request) out of order.

Signed mode (CONTRACT.md §3): body ``JSON.stringify({event, data, signature})``, headers
``X-Kotani-Signature: sha256=<hex>`` (HMAC-SHA256 over ``JSON.stringify({event, data})``, built
by ``receiver.webhooks.jsjson``, the same JS-exact serialiser the receiver verifies with),
``X-Kotani-Event`` and ``X-Kotani-Integrator``. Each delivery is signed when it is sent, with the
secret configured at that moment (``PATCH /api/v3/integrator/webhook`` can change it between
attempts, as a rotation does).

Redelivery: a non-2xx answer or no answer within ``ATTEMPT_TIMEOUT`` is retried with the one
retry policy (``receiver.retry.RetryPolicy``: exponential, full jitter, every wait capped at 2 h)
until 24 h after the first attempt. ``clock_scale`` divides every wait and the 24 h window, so
``--clock-scale 3600`` plays a day of retries in 24 s.

Chaos (``Chaos``), for Kotani's documented "order not guaranteed, retried up to 24 h":
``duplicates`` sends every delivered webhook a second time; ``reorder`` waits until the outbox
has been quiet for ``REORDER_HOLD`` and sends each batch newest first; ``drop_first`` loses
every delivery's first attempt (counted as a timeout, then retried).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from typing import Any

import httpx

from receiver.logs import get_logger
from receiver.mock_kotani.store import Delivery, MockStore
from receiver.retry import RetryPolicy
from receiver.webhooks import jsjson
from receiver.webhooks.signature import sign, signed_bytes

ATTEMPT_TIMEOUT = 10.0
WINDOW = 24 * 3600.0
RETRY = RetryPolicy(max_attempts=None, base=60.0, cap=2 * 3600.0)
REORDER_HOLD = 0.5
"""With ``--reorder``, nothing is sent until no webhook was queued for this many real seconds;
then the whole batch goes newest first."""

log = get_logger("mock_kotani.webhooks")


@dataclass(frozen=True)
class Chaos:
    """Deliberate misbehaviour of the delivery, all off by default."""

    duplicates: bool = False
    reorder: bool = False
    drop_first: bool = False


def envelope(event: str, data: dict[str, Any], secret: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and headers of one delivery (signed when ``secret`` is set, else direct mode)."""
    if not secret:
        return jsjson.dumps(data).encode("utf-8"), {"content-type": "application/json"}
    signature = sign(secret, signed_bytes(event, data))
    body = jsjson.dumps({"event": event, "data": data, "signature": signature}).encode("utf-8")
    headers = {
        "content-type": "application/json",
        "x-kotani-signature": signature,
        "x-kotani-event": event,
        "x-kotani-integrator": "mock-integrator",
    }
    return body, headers


class WebhookSender:
    """Polls the outbox and delivers; ``emit`` queues, ``run`` loops until cancelled."""

    def __init__(
        self,
        store: MockStore,
        *,
        clock_scale: float = 1.0,
        chaos: Chaos | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if clock_scale <= 0:
            raise ValueError("clock_scale must be positive")
        self.store = store
        self.clock_scale = clock_scale
        self.chaos = chaos or Chaos()
        self._wake = asyncio.Event()
        self._last_enqueue = 0.0
        self._http = httpx.AsyncClient(timeout=ATTEMPT_TIMEOUT, transport=transport)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def emit(self, event: str, data: dict[str, Any], reference: str | None) -> None:
        body = json.dumps({"event": event, "data": data})
        self._last_enqueue = time.monotonic()
        await self.store.enqueue(event, body, time.time())
        await self.store.note(reference, f"kotani: queued webhook {event}")
        self.wake()

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        while True:
            self._wake.clear()
            quiet = time.monotonic() - self._last_enqueue
            if self.chaos.reorder and quiet < REORDER_HOLD:
                await asyncio.sleep(REORDER_HOLD - quiet)
                continue
            batch = await self.store.due(time.time())
            target = await self.store.get("integrator", "webhook")
            if batch and target and target.get("webhook_url"):
                if self.chaos.reorder:
                    batch.reverse()
                for delivery in batch:
                    await self._attempt(delivery, target)
                continue
            nxt = await self.store.next_due()
            wait = 1.0 if nxt is None or not target else max(0.0, min(1.0, nxt - time.time()))
            try:
                await asyncio.wait_for(self._wake.wait(), timeout=wait)
            except TimeoutError:
                pass

    async def _attempt(self, delivery: Delivery, target: dict[str, Any]) -> None:
        doc = json.loads(delivery.body)
        event, data = str(doc["event"]), dict(doc["data"])
        reference = data.get("referenceId") or data.get("reference_id")
        attempt = delivery.attempts + 1
        wanted = target.get("webhook_events")
        if wanted and event not in wanted:
            await self.store.settle(
                delivery.id,
                attempts=attempt,
                status="skipped",
                result="event not subscribed",
                due_at=time.time(),
            )
            return
        ok, result = await self._send(
            event, data, target, drop=self.chaos.drop_first and attempt == 1
        )
        if ok and self.chaos.duplicates:
            _, second = await self._send(event, data, target, drop=False)
            result += f"; duplicate sent: {second}"
        await self.store.note(
            str(reference) if reference else None,
            f"kotani: delivered {event} (attempt {attempt}): {result}",
        )
        if ok:
            await self.store.settle(
                delivery.id, attempts=attempt, status="delivered", result=result, due_at=time.time()
            )
            return
        delay = RETRY.next_delay(attempt)
        elapsed = (time.time() - delivery.created_at) * self.clock_scale
        if delay is None or elapsed + delay > WINDOW:
            await self.store.settle(
                delivery.id, attempts=attempt, status="failed", result=result, due_at=time.time()
            )
            return
        await self.store.settle(
            delivery.id,
            attempts=attempt,
            status="pending",
            result=result,
            due_at=time.time() + delay / self.clock_scale,
        )

    async def _send(
        self, event: str, data: dict[str, Any], target: dict[str, Any], *, drop: bool
    ) -> tuple[bool, str]:
        if drop:
            return False, "dropped (chaos --drop-first)"
        body, headers = envelope(event, data, target.get("webhook_secret"))
        try:
            response = await self._http.post(
                str(target["webhook_url"]), content=body, headers=headers
            )
        except httpx.HTTPError as exc:
            return False, f"no answer ({type(exc).__name__})"
        return 200 <= response.status_code < 300, f"HTTP {response.status_code}"
