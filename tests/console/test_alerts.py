"""Alerts: once per incident, a resolve, retried sends; end to end at a loopback Apprise
``json://`` endpoint with the service's own checker."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.console.alerts import Alerter, Notice, apprise_sender
from receiver.retry import RetryPolicy
from tests.console.conftest import Live, invoice_needed
from tests.support.server import serve_app

FAST = RetryPolicy(max_attempts=4, base=0.001, cap=0.001)


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.calls: list[Notice] = []
        self.failures = failures

    async def __call__(self, notice: Notice) -> bool:
        self.calls.append(notice)
        if self.failures:
            self.failures -= 1
            return False
        return True


async def test_one_message_per_incident_and_one_resolve() -> None:
    recorder = Recorder()
    alerter = Alerter(recorder, policy=FAST)
    alerter.start()
    assert alerter.raise_incident("dead:1", "delivery 1 is dead")
    assert not alerter.raise_incident("dead:1", "delivery 1 is dead")
    assert not alerter.resolve_incident("dead:2", "never opened")
    assert alerter.resolve_incident("dead:1", "delivery 1 is done")
    assert not alerter.resolve_incident("dead:1", "again")
    assert alerter.raise_incident("dead:1", "dead again")  # a new incident
    await alerter.stop()
    assert [(n.key, n.resolved) for n in recorder.calls] == [
        ("dead:1", False),
        ("dead:1", True),
        ("dead:1", False),
    ]
    assert recorder.calls[1].body == "RESOLVED: delivery 1 is done"


async def test_a_failed_send_is_retried_then_given_up() -> None:
    flaky = Recorder(failures=2)
    alerter = Alerter(flaky, policy=FAST)
    alerter.start()
    alerter.raise_incident("k", "text")
    await alerter.stop()
    assert len(flaky.calls) == 3  # two failures, then delivered once

    down = Recorder(failures=100)
    alerter = Alerter(down, policy=FAST)
    alerter.start()
    alerter.raise_incident("k", "text")
    alerter.raise_incident("j", "text")
    await alerter.stop()
    assert len(down.calls) == 8  # 4 attempts each, then the next message still goes


async def test_raising_never_waits_for_the_network() -> None:
    gate = asyncio.Event()

    async def stuck(notice: Notice) -> bool:
        await gate.wait()
        return True

    alerter = Alerter(stuck, policy=FAST)
    alerter.start()
    for i in range(50):  # returns at once although nothing can be sent
        assert alerter.raise_incident(f"k{i}", "text")
    gate.set()
    await alerter.stop()


def test_a_bad_apprise_url_is_refused() -> None:
    with pytest.raises(ValueError, match="RECEIVER_ALERT_URLS"):
        apprise_sender(["not a url at all"])


class Hook:
    """A loopback endpoint for Apprise's ``json://`` notifier."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        self.arrived = asyncio.Condition()

    def app(self) -> Starlette:
        async def take(request: Request) -> Response:
            body = json.loads(await request.body())
            async with self.arrived:
                self.received.append(body)
                self.arrived.notify_all()
            return Response(status_code=200)

        return Starlette(routes=[Route("/alerts", take, methods=["POST"])])

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(60), self.arrived:
            await self.arrived.wait_for(lambda: len(self.received) >= count)


@pytest.fixture
async def hook() -> AsyncIterator[tuple[Hook, str]]:
    receiver = Hook()
    async with serve_app(receiver.app()) as url:
        yield receiver, url.replace("http://", "json://") + "/alerts"


async def test_failing_submission_alerts_once_and_resolves_once(  # type: ignore[no-untyped-def]
    start_live, hook: tuple[Hook, str]
) -> None:
    receiver, url = hook
    async for live in start_live(
        seed=False, alert_urls=url, alert_after=0.005, alert_interval=0.05
    ):
        assert isinstance(live, Live)
        live.kotani.refuse["TXN-S"] = 503
        event_id = await live.deliver(
            "refund.lightning.invoice_needed", invoice_needed("TXN-S", 9_000)
        )
        await receiver.wait_for(1)
        [alert] = receiver.received
        assert alert["type"] == "failure" and "TXN-S" in alert["message"]
        assert alert["message"].startswith("ALERT: invoice_needed for TXN-S is still unsubmitted")
        # Several checks and retries later, still the one alert.
        for _ in range(3):
            await asyncio.sleep(0.2)
            assert (await live.api(f"/events/{event_id}"))["status"] in ("pending", "processing")
        assert len(receiver.received) == 1

        live.kotani.refuse.clear()  # Kotani takes it: the worker's next retry goes through
        assert (await live.settled(event_id))["status"] == "done"
        await receiver.wait_for(2)
        resolve = receiver.received[1]
        assert resolve["type"] == "success" and resolve["message"].startswith("RESOLVED:")
        assert "TXN-S" in resolve["message"]
        await asyncio.sleep(0.3)  # a few more checks: nothing new
        assert len(receiver.received) == 2
