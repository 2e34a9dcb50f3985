"""Forwarding to the integrator's app: a real HTTP receiver, Standard Webhooks signatures checked
by an independent implementation of the spec, retries and the dead state."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable

import httpx
import pytest
from pydantic import ValidationError
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from receiver.app import create_app
from receiver.errors import ConfigError
from receiver.inbox.forwarder import Forwarder
from receiver.inbox.models import ForwardMessage, OutboxStatus
from receiver.inbox.store import Inbox
from receiver.retry import RetryPolicy
from receiver.runtime import open_webhooks
from receiver.services import open_services
from receiver.settings import Settings
from tests.inbox.conftest import SECRET, new_event, signed
from tests.support.server import serve_app

KEY = secrets.token_bytes(32)
FORWARD_SECRET = "whsec_" + base64.b64encode(KEY).decode()


class Receiver:
    """The integrator's app: records every request, answers from a script of statuses."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.statuses: list[int] = []

    async def hook(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.body()))
        return Response(status_code=self.statuses.pop(0) if self.statuses else 204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    app = Receiver()
    async with serve_app(Starlette(routes=[Route("/hook", app.hook, methods=["POST"])])) as url:
        yield app, f"{url}/hook"


def check_standard_webhook(headers: dict[str, str], body: bytes) -> None:
    """Verification as the spec describes it (not through the service's own code)."""
    msg_id, timestamp = headers["webhook-id"], headers["webhook-timestamp"]
    assert abs(int(timestamp) - time.time()) < 60
    expected = hmac.new(KEY, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    versions = dict(part.split(",", 1) for part in headers["webhook-signature"].split(" "))
    assert base64.b64decode(versions["v1"]) == expected
    assert headers["content-type"] == "application/json"


async def test_events_are_forwarded_signed_and_retried(
    make_settings: Callable[..., Settings], receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.statuses = [500]
    settings = make_settings(forward_url=url, forward_secret=FORWARD_SECRET)
    async with open_services(settings) as services, open_webhooks(services, start=False) as rt:
        assert rt.forwarder is not None
        rt.forwarder.policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
        event = new_event("refund.completed", {"referenceId": "FW-1", "refundAmount": 1e21})
        accepted = await rt.inbox.accept(event)
        assert await rt.forwarder.run_once()  # 500: retried later
        await asyncio.sleep(0.05)
        assert await rt.forwarder.run_once()  # 204: delivered
        assert not await rt.forwarder.run_once()
        async with services.db.session() as session:
            message = (await session.execute(select(ForwardMessage))).scalar_one()
    assert (message.status, message.attempts, message.last_status_code) == (
        OutboxStatus.DELIVERED,
        2,
        204,
    )
    assert len(app.requests) == 2
    (first_headers, _), (headers, body) = app.requests
    assert first_headers["webhook-id"] == headers["webhook-id"] == message.message_id
    check_standard_webhook(headers, body)
    payload = json.loads(body)
    assert payload["type"] == "refund.completed"
    assert payload["data"] == {"referenceId": "FW-1", "refundAmount": 1e21}
    assert payload["kotani"] == {
        "event_id": accepted.event_id,
        "reference_id": "FW-1",
        "verification": "signature",
    }
    assert b'"refundAmount":1e+21' in body  # Kotani's data re-serialised as JavaScript would


async def test_forwarding_gives_up_as_dead(
    make_settings: Callable[..., Settings], receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    app.statuses = [503, 400, 500]
    settings = make_settings(forward_url=url, forward_secret=FORWARD_SECRET)
    async with open_services(settings) as services, open_webhooks(services, start=False) as rt:
        assert rt.forwarder is not None
        rt.forwarder.policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
        await rt.inbox.accept(new_event("x.y", {"a": 1}))
        for _ in range(3):
            await asyncio.sleep(0.03)
            await rt.forwarder.run_once()
        async with services.db.session() as session:
            message = (await session.execute(select(ForwardMessage))).scalar_one()
    assert (message.status, message.last_error) == (OutboxStatus.DEAD, "answered 500")
    assert len(app.requests) == 3


async def test_the_running_service_forwards_what_it_accepts(
    make_settings: Callable[..., Settings], receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    settings = make_settings(forward_url=url, forward_secret=FORWARD_SECRET, webhook_secrets=SECRET)
    body, signature = signed(
        "transaction.offramp.status.updated", {"referenceId": "E2E", "status": "FAILED"}
    )
    async with serve_app(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            for _ in range(2):  # the duplicate is not forwarded twice
                response = await client.post(
                    "/webhooks/kotani", content=body, headers={"X-Kotani-Signature": signature}
                )
                assert response.status_code == 200
            for _ in range(100):
                if app.requests:
                    break
                await asyncio.sleep(0.05)
    assert len(app.requests) == 1
    headers, forwarded = app.requests[0]
    check_standard_webhook(headers, forwarded)
    assert json.loads(forwarded)["data"] == {"referenceId": "E2E", "status": "FAILED"}


async def test_a_slow_app_gets_every_forward_in_flight_at_once(
    make_settings: Callable[..., Settings],
) -> None:
    # The forwarder spreads its POSTs over small connection pools (LANE connections each): a
    # slow integrator app must still see ``concurrency`` of them at once, on as many connections.
    concurrency, inside, peak = 12, 0, 0
    everyone = asyncio.Event()
    peers: set[tuple[str, int]] = set()

    async def hook(request: Request) -> Response:
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        assert request.client is not None
        peers.add((request.client.host, request.client.port))
        if inside == concurrency:
            everyone.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(everyone.wait(), 5)
        inside -= 1
        return Response(status_code=204)

    async with serve_app(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as base:
        settings = make_settings(forward_url=f"{base}/hook", forward_secret=FORWARD_SECRET)
        async with open_services(settings) as services:
            forwarder = Forwarder(
                services.db, url=f"{base}/hook", key=KEY, owner="t", concurrency=concurrency
            )
            inbox = Inbox(services.db, owner="t", forward=True)
            for n in range(concurrency):
                await inbox.accept(new_event("x.y", {"referenceId": f"SLOW-{n}"}))
            forwarder.start()
            try:
                await asyncio.wait_for(everyone.wait(), 10)
            finally:
                await forwarder.stop(5)
                await inbox.aclose()
            async with services.db.session() as session:
                statuses = (await session.execute(select(ForwardMessage.status))).scalars().all()
    assert peak == concurrency and len(peers) == concurrency
    assert statuses == [OutboxStatus.DELIVERED] * concurrency


async def test_a_forward_url_without_its_secret_is_a_config_error(
    make_settings: Callable[..., Settings],
) -> None:
    settings = make_settings(forward_url="http://127.0.0.1:9/hook")
    async with open_services(settings) as services:
        with pytest.raises(ConfigError) as caught:
            async with open_webhooks(services, start=False):
                pass
    assert "RECEIVER_FORWARD_SECRET" in caught.value.message


@pytest.mark.parametrize("secret", ["not base64 !!", "whsec_c2hvcnQ="])
def test_a_malformed_forward_secret_fails_when_the_settings_load(
    make_settings: Callable[..., Settings], secret: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        make_settings(forward_url="http://127.0.0.1:9/hook", forward_secret=secret)
    message = caught.value.errors()[0]["msg"]
    assert "Standard Webhooks secret" in message or "at least 16 bytes" in message
    assert secret not in message
