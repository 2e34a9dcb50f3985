"""The worker's life cycle: started loops pick events up, stop() finishes or releases the one in
hand, and a new process resumes whatever is left."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from receiver.handlers.events.base import EventContext, Handled, InboxEvent
from receiver.inbox.models import EventStatus, WebhookEvent
from receiver.inbox.worker import Worker
from receiver.runtime import open_webhooks
from receiver.services import open_services
from receiver.settings import Settings
from tests.inbox.conftest import new_event


def slow_handler(seconds: float, seen: list[int]) -> Callable[[str], Any]:
    async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
        seen.append(event.id)
        await asyncio.sleep(seconds)
        return Handled("slow but done")

    return lambda _type: handle


async def _status(services: Any, event_id: int) -> tuple[EventStatus, int]:
    async with services.db.session() as session:
        row = await session.get(WebhookEvent, event_id)
        assert row is not None
        return row.status, row.attempts


async def _wait_for(seen: list[int]) -> None:
    for _ in range(200):
        if seen:
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the worker never picked the event up")


async def test_stop_finishes_the_event_in_hand(make_settings: Callable[..., Settings]) -> None:
    settings = make_settings()
    async with open_services(settings) as services, open_webhooks(services, start=False) as rt:
        seen: list[int] = []
        worker = Worker(
            rt.inbox,
            rt.worker.context,
            concurrency=2,
            poll=0.05,
            handlers=slow_handler(0.5, seen),
        )
        event_id = (await rt.inbox.accept(new_event("x.slow", {"n": 1}))).event_id
        worker.start()
        await _wait_for(seen)
        await worker.stop(grace=5)
        assert await _status(services, event_id) == (EventStatus.DONE, 1)


async def test_stop_releases_an_event_cut_off_and_the_next_start_resumes_it(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(worker_lease=60)
    async with open_services(settings) as services:
        async with open_webhooks(services, start=False) as rt:
            seen: list[int] = []
            worker = Worker(
                rt.inbox,
                rt.worker.context,
                poll=0.05,
                handlers=slow_handler(30, seen),
            )
            event_id = (await rt.inbox.accept(new_event("x.slow", {"n": 2}))).event_id
            worker.start()
            await _wait_for(seen)
            await worker.stop(grace=0.1)
            # released at once (not left leased for 60 s), its attempt still counted
            assert await _status(services, event_id) == (EventStatus.PENDING, 1)
        # the next process: the event is handled by the ordinary start-up path
        async with open_webhooks(services) as rt:
            for _ in range(200):
                if (await _status(services, event_id))[0] is EventStatus.DONE:
                    break
                await asyncio.sleep(0.02)
            assert await _status(services, event_id) == (EventStatus.DONE, 2)


async def test_a_batch_is_claimed_at_once_and_handled_concurrency_at_a_time(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings()
    async with open_services(settings) as services, open_webhooks(services, start=False) as rt:
        running = peak = 0

        async def handle(ctx: EventContext, event: InboxEvent) -> Handled:
            nonlocal running, peak
            running += 1
            peak = max(peak, running)
            await asyncio.sleep(0.05)
            running -= 1
            return Handled("done")

        worker = Worker(
            rt.inbox,
            rt.worker.context,
            concurrency=2,
            batch=6,
            poll=0.05,
            handlers=lambda _type: handle,
        )
        claims: list[int] = []
        claim = worker.loop.queue.claim

        async def counted(limit: int = 1) -> Any:
            rows = await claim(limit)
            claims.append(len(rows))
            return rows

        worker.loop.queue.claim = counted  # type: ignore[method-assign]
        ids = [
            (await rt.inbox.accept(new_event("x.batch", {"referenceId": f"B-{n}"}))).event_id
            for n in range(6)
        ]
        await asyncio.sleep(0.3)  # past the pressure window (deliveries were arriving)
        worker.start()
        for _ in range(300):
            states = [await _status(services, event_id) for event_id in ids]
            if all(status is EventStatus.DONE for status, _ in states):
                break
            await asyncio.sleep(0.02)
        await worker.stop(grace=5)
    assert states == [(EventStatus.DONE, 1)] * 6
    assert claims[0] == 6  # one claim for the whole batch...
    assert peak == 2  # ...but never more than ``concurrency`` handlers at once
