"""The bridge keeper across two replicas on one real PostgreSQL: one leads and polls; when its
app stops, the other takes over; the expired refund invoice is regenerated once in all."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import respx

from tests.support.server import serve_app

from .conftest import API_KEY, BASE, Spec
from .test_bridge_service import REF, FakeKotani, RealClock

TAKEOVER = 10.0  # seconds; leadership retries every 2 s


async def test_one_replica_keeps_and_the_other_takes_over(
    make_settings: Any, spec: Spec, fresh_postgres_url: str
) -> None:
    from receiver.app import create_app

    clock = RealClock()
    kotani = FakeKotani(spec, clock)
    kotani._new_config(clock() - timedelta(minutes=20))  # the current invoice expired 5 min ago
    settings = make_settings(
        database_url=fresh_postgres_url,
        kotani_api_key=API_KEY,
        bridge_keeper=True,
        bridge_poll_interval=0.05,
    )
    first, second = create_app(settings), create_app(settings)
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        kotani.mount(router)
        async with contextlib.AsyncExitStack() as second_stack:
            async with serve_app(first):
                await first.state.kotani.bridge.watch(REF)
                await until(lambda: first.state.kotani.keeper.is_leader)
                await second_stack.enter_async_context(serve_app(second))
                await asyncio.sleep(1.0)  # 20 keeper intervals, several leadership retries
                assert not second.state.kotani.keeper.is_leader
                assert first.state.kotani.keeper.is_leader
            # `first` stopped and released the lock on its way out
            await until(lambda: second.state.kotani.keeper.is_leader)
            await asyncio.sleep(0.3)  # the new leader's keeper ticks too
    assert len(kotani.regenerations) == 1
    assert kotani.violations == []


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + TAKEOVER
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
