"""``/readyz`` asks each backend at most once per TTL, however many probes arrive."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import httpx

from receiver.app import create_app
from receiver.handlers.health import Readiness
from receiver.settings import Settings
from tests.support.server import serve_app


class SlowBackend:
    name = "slow"

    def __init__(self) -> None:
        self.calls = 0

    async def info(self) -> Any:
        self.calls += 1
        await asyncio.sleep(0.2)
        return SimpleNamespace(node_id="02" + "ab" * 32, network=None)


class Db:
    async def ping(self) -> bool:
        return True


def services(*backends: object) -> Any:
    return SimpleNamespace(db=Db(), chain=SimpleNamespace(backends=list(backends)))


async def test_concurrent_probes_share_one_backend_call() -> None:
    backend = SlowBackend()
    readiness = Readiness()
    bodies = await asyncio.gather(*(readiness.verdict(services(backend)) for _ in range(300)))
    assert backend.calls == 1
    assert all(b["status"] == "ready" for b in bodies)


async def test_verdict_is_reused_until_the_ttl_passes() -> None:
    now = [100.0]
    backend = SlowBackend()
    readiness = Readiness(ttl=5.0, clock=lambda: now[0])
    await readiness.verdict(services(backend))
    now[0] += 4.9
    await readiness.verdict(services(backend))
    assert backend.calls == 1
    now[0] += 0.2
    await readiness.verdict(services(backend))
    assert backend.calls == 2


async def test_a_cancelled_caller_does_not_cancel_the_shared_probe() -> None:
    backend = SlowBackend()
    readiness = Readiness()
    first = asyncio.create_task(readiness.verdict(services(backend)))
    await asyncio.sleep(0.05)
    first.cancel()
    body = await readiness.verdict(services(backend))
    assert body["status"] == "ready" and backend.calls == 1


async def test_readyz_over_http_calls_the_node_once_for_a_burst(settings: Settings) -> None:
    app = create_app(settings)
    async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=15) as client:
        backend = app.state.services.chain.backends[0]
        calls = 0
        real_info = backend.info

        async def counting_info() -> Any:
            nonlocal calls
            calls += 1
            return await real_info()

        backend.info = counting_info
        answers = await asyncio.gather(*(client.get("/readyz") for _ in range(50)))
        health = await client.get("/healthz")
    assert {a.status_code for a in answers} == {200}
    assert calls == 1
    assert health.json() == {"status": "ok"}
