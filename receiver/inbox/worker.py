"""The inbox worker: the queue loop (``receiver.inbox.loop``) running event handlers.

Started by the app's lifespan. Handlers are injected (``handlers``: event type -> handler, and
the ``context`` they receive); the inbox never imports them. Up to ``concurrency`` events are in
flight; events of one reference run one after the other. Outcomes:

- the handler returns -> ``done``, its database effects committed with that status;
- ``PermanentFailure`` -> ``dead`` at once (its effects, e.g. the refund marked rejected, kept);
- any other failure -> retried after the policy's wait, ``dead`` once attempts run out, the
  last error kept; an event type without handler -> ``done`` ("nothing to do").

Log events: ``webhook.event.done|retry|dead|released``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Row

from receiver.db.queue import Close, Closed
from receiver.errors import ReceiverError
from receiver.inbox.events import Handled, Handler, InboxEvent, PermanentFailure
from receiver.inbox.loop import QueueLoop
from receiver.inbox.models import EventStatus, Verification
from receiver.inbox.store import ClaimedEvent, Inbox
from receiver.logs import get_logger
from receiver.webhooks import jsjson
from receiver.webhooks.delivery import DIRECT_EVENT

log = get_logger("worker")

UNVERIFIED_OUTCOME = "unverified delivery (no valid signature): recorded for an operator, no effect"
BATCH = 64
"""Events leased at once (``concurrency`` of them in their handler): one claim and one close
for up to this many."""
HANDLER_TIMEOUT = 300.0
"""No handler runs longer than this (it is then retried)."""


class Worker:
    """Runs handlers for the inbox's due events."""

    def __init__(
        self,
        inbox: Inbox,
        context: Any,
        *,
        handlers: Callable[[str], Handler | None],
        unverified: Handler | None = None,
        concurrency: int = 16,
        batch: int = BATCH,
        poll: float = 1.0,
        handler_timeout: float = HANDLER_TIMEOUT,
    ) -> None:
        self.inbox = inbox
        self.context = context
        self.handler_timeout = handler_timeout
        self._handlers = handlers
        self._unverified = unverified
        self.loop = QueueLoop(
            inbox.queue,
            self._handle,
            name="webhook.worker",
            concurrency=concurrency,
            batch=batch,
            poll=poll,
            pause=inbox.under_pressure,
            report=self._report,
            recover=self._recover,
        )

    def wake(self) -> None:
        """Look for work now (an event was just stored)."""
        self.loop.wake()

    def start(self) -> None:
        self.loop.start()

    async def stop(self, grace: float = 30.0) -> None:
        """Finish the events in hand (up to ``grace`` s), then stop; cut-off events are released."""
        await self.loop.stop(grace)

    async def run_once(self) -> bool:
        """Claim and handle one due event; False when none was due."""
        return await self.loop.run_once()

    async def drain(self, limit: int = 10_000) -> int:
        """Handle due events until none is left (tests, CLI); returns how many were handled."""
        return await self.loop.drain(limit)

    async def _handle(self, row: Row[Any]) -> Close:
        claimed = ClaimedEvent.from_row(row)
        handler = self._handlers(claimed.event_type)
        try:
            if handler is None:
                result = Handled("no handler for this event type: stored and forwarded only")
            elif claimed.verification is not Verification.SIGNATURE:
                # Events are hints; effects are confirmed. Nobody vouches for an unsigned or
                # token-only delivery (the token may be known to others), so it never closes a
                # refund, pins a status or mints and submits by itself: ``unverified`` may ask
                # the source of truth (Kotani's API) and act on its answer, never on the hint.
                result = await self._hint(claimed)
            else:
                event = _parse(claimed)
                async with asyncio.timeout(self.handler_timeout):
                    result = await handler(self.context, event)
        except PermanentFailure as exc:
            return self.inbox.failed(claimed, exc.message, permanent=True, apply=exc.apply)
        except ReceiverError as exc:
            return self.inbox.failed(claimed, f"{exc.error_code}: {exc.message}", permanent=False)
        except TimeoutError:
            return self.inbox.failed(
                claimed, "handler.timeout: the handler ran too long", permanent=False
            )
        except Exception as exc:
            # A bug must not lose the event: it is retried, then dead, with the error kept.
            log.error("webhook.event.crashed", event_id=claimed.id, exc_info=exc)
            return self.inbox.failed(claimed, f"internal: {type(exc).__name__}", permanent=False)
        return self.inbox.done(claimed, result.outcome, result.apply, result.apply_many)

    async def _hint(self, claimed: ClaimedEvent) -> Handled:
        if self._unverified is None:
            return Handled(UNVERIFIED_OUTCOME)
        try:
            event = _parse(claimed)
        except PermanentFailure:
            # Nobody vouches for it: a malformed hint is no dead letter (no operator alert).
            return Handled(UNVERIFIED_OUTCOME)
        async with asyncio.timeout(self.handler_timeout):
            return await self._unverified(self.context, event)

    def _report(self, row: Row[Any], close: Close, closed: Closed) -> None:
        job = row._mapping
        fields = {
            "event_id": close.id,
            "event_type": job["event_type"],
            "reference_id": job["reference_id"],
            "attempts": job["attempts"],
        }
        if closed.error is not None:
            log.error("webhook.event.apply_failed", error=type(closed.error).__name__, **fields)
        elif close.status is EventStatus.DONE:
            log.info("webhook.event.done", outcome=close.note, **fields)
        elif close.retry_at is None:
            log.warning("webhook.event.dead", error=close.error, **fields)
        else:
            retry_at = close.retry_at.isoformat()
            log.info("webhook.event.retry", retry_at=retry_at, error=close.error, **fields)

    def _recover(self, row: Row[Any], close: Close, error: BaseException) -> Close:
        """The effects could not be committed (rolled back alone): retry the event later."""
        claimed = ClaimedEvent.from_row(row)
        message = f"internal: {type(error).__name__} while recording the effects"
        return self.inbox.failed(claimed, message, permanent=False)


def _parse(claimed: ClaimedEvent) -> InboxEvent:
    """The stored body as the handler sees it: ``data`` of the envelope, or the bare object."""
    try:
        # Act on what was signed: the signature covers JSON.stringify of the parsed body, so
        # the handler reads that canonical form (a re-spelled 1e400 is null, 3000000.0000000001
        # is 3000000), and every spelling of one signed delivery means the same thing.
        body = jsjson.loads(jsjson.dumps(jsjson.loads(claimed.body)))
    except ReceiverError as exc:
        raise PermanentFailure("the stored body is not JSON") from exc
    data = (
        body
        if claimed.event_type == DIRECT_EVENT
        else (body.get("data") if isinstance(body, dict) else None)
    )
    if not isinstance(data, dict):
        raise PermanentFailure("the stored body has no data object")
    return InboxEvent(
        id=claimed.id,
        event_type=claimed.event_type,
        reference_id=claimed.reference_id,
        data=data,
        attempts=claimed.attempts,
        received_at=claimed.received_at,
    )
