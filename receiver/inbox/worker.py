"""The inbox worker: claim a due event, run its handler, record the outcome; repeat.

Started by the app's lifespan (``receiver.inbox.runtime``). ``concurrency`` loops share one
process; each holds at most one event, whose lease a heartbeat renews while the handler runs.
Outcomes:

- the handler returns -> ``done``, its database effects committed with that status;
- ``PermanentFailure`` -> ``dead`` at once (its effects, e.g. the refund marked rejected, kept);
- any other failure -> retried after ``next_delay(attempts)``, ``dead`` once attempts run out,
  the last error kept; an event type without handler -> ``done`` ("nothing to do").

``stop()`` lets every loop finish the event in hand (up to ``grace`` seconds), then cancels; an
event cut off is released at once so the next start picks it up. A process killed outright
leaves its events leased; they are due again when the lease runs out. Log events:
``webhook.event.done|retry|dead|released``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

from sqlalchemy.exc import SQLAlchemyError

from receiver.errors import ReceiverError
from receiver.handlers.events import handler_for
from receiver.handlers.events.base import (
    EventContext,
    Handled,
    Handler,
    InboxEvent,
    PermanentFailure,
)
from receiver.inbox.store import ClaimedEvent, Inbox, LeaseLost
from receiver.logs import get_logger
from receiver.webhooks import jsjson
from receiver.webhooks.delivery import DIRECT_EVENT

log = get_logger("worker")

HANDLER_TIMEOUT = 300.0
"""No handler runs longer than this (it is then retried)."""
PRESSURE_PAUSE = 0.05


class Worker:
    """Runs handlers for the inbox's due events."""

    def __init__(
        self,
        inbox: Inbox,
        context: EventContext,
        *,
        concurrency: int = 1,
        poll: float = 1.0,
        handler_timeout: float = HANDLER_TIMEOUT,
        handlers: Callable[[str], Handler | None] = handler_for,
    ) -> None:
        self.inbox = inbox
        self.context = context
        self.concurrency = concurrency
        self.poll = poll
        self.handler_timeout = handler_timeout
        self._handlers = handlers
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        """Look for work now (an event was just stored)."""
        self._wake.set()

    def start(self) -> None:
        self._stopping = False
        self._tasks = [
            asyncio.create_task(self._loop(n), name=f"inbox-worker-{n}")
            for n in range(self.concurrency)
        ]

    async def stop(self, grace: float = 30.0) -> None:
        """Finish the events in hand (up to ``grace`` s), then stop; cut-off events are released."""
        self._stopping = True
        self._wake.set()
        if not self._tasks:
            return
        _, pending = await asyncio.wait(self._tasks, timeout=grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        self._tasks = []

    async def _loop(self, index: int) -> None:
        while not self._stopping:
            if self.inbox.under_pressure():
                # Acknowledging deliveries comes first (Kotani is waiting on each answer, and
                # this process has one event loop and one SQLite connection): while they
                # arrive, one loop handles an event every PRESSURE_PAUSE s and the others wait.
                await asyncio.sleep(PRESSURE_PAUSE)
                if index:
                    continue
            try:
                worked = await self.run_once()
            except (SQLAlchemyError, OSError) as exc:
                log.error("webhook.worker.storage_failed", error=type(exc).__name__)
                worked = False
            if not worked and not self._stopping:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self.poll)

    async def run_once(self) -> bool:
        """Claim and handle one due event; False when none was due."""
        claimed = await self.inbox.claim()
        if claimed is None:
            return False
        try:
            await self._handle(claimed)
        except asyncio.CancelledError:
            # Shutdown ran out of patience: hand the event back, due now, for the next start.
            await self._release(claimed)
            raise
        return True

    async def drain(self, limit: int = 10_000) -> int:
        """Handle due events until none is left (tests, CLI); returns how many were handled."""
        done = 0
        while done < limit and await self.run_once():
            done += 1
        return done

    async def _handle(self, claimed: ClaimedEvent) -> None:
        handler = self._handlers(claimed.event_type)
        try:
            if handler is None:
                result = Handled("no handler for this event type: stored and forwarded only")
            else:
                event = _parse(claimed)
                async with asyncio.timeout(self.handler_timeout), self._heartbeat(claimed):
                    result = await handler(self.context, event)
        except PermanentFailure as exc:
            await self._fail(claimed, exc.message, permanent=True, failure=exc)
        except ReceiverError as exc:
            await self._fail(claimed, f"{exc.error_code}: {exc.message}", permanent=False)
        except TimeoutError:
            await self._fail(claimed, "handler.timeout: the handler ran too long", permanent=False)
        except Exception as exc:
            # A bug must not lose the event: it is retried, then dead, with the error kept.
            log.error("webhook.event.crashed", event_id=claimed.id, exc_info=exc)
            await self._fail(claimed, f"internal: {type(exc).__name__}", permanent=False)
        else:
            try:
                await self.inbox.finish(claimed, result.outcome, result.apply)
            except LeaseLost:
                log.warning("webhook.event.lease_lost", event_id=claimed.id)
                return
            log.info(
                "webhook.event.done",
                event_id=claimed.id,
                event_type=claimed.event_type,
                reference_id=claimed.reference_id,
                attempts=claimed.attempts,
                outcome=result.outcome,
            )

    async def _fail(
        self,
        claimed: ClaimedEvent,
        error: str,
        *,
        permanent: bool,
        failure: PermanentFailure | None = None,
    ) -> None:
        apply = failure.apply if failure is not None else None
        try:
            delay = await self.inbox.fail(claimed, error, permanent=permanent, apply=apply)
        except LeaseLost:
            log.warning("webhook.event.lease_lost", event_id=claimed.id)
            return
        fields = {
            "event_id": claimed.id,
            "event_type": claimed.event_type,
            "reference_id": claimed.reference_id,
            "attempts": claimed.attempts,
            "error": error,
        }
        if delay is None:
            log.warning("webhook.event.dead", **fields)
        else:
            log.info("webhook.event.retry", delay=round(delay.total_seconds(), 1), **fields)

    @contextlib.asynccontextmanager
    async def _heartbeat(self, claimed: ClaimedEvent) -> AsyncIterator[None]:
        interval = max(self.inbox.lease.total_seconds() / 3, 0.1)

        async def beat() -> None:
            while True:
                await asyncio.sleep(interval)
                with contextlib.suppress(SQLAlchemyError, OSError):
                    if not await self.inbox.extend(claimed):
                        return

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _release(self, claimed: ClaimedEvent) -> None:
        with contextlib.suppress(SQLAlchemyError, OSError):
            await self.inbox.release(claimed)
            log.info("webhook.event.released", event_id=claimed.id)


def _parse(claimed: ClaimedEvent) -> InboxEvent:
    """The stored body as the handler sees it: ``data`` of the envelope, or the bare object."""
    try:
        body = jsjson.loads(claimed.body)
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
