"""A live service seeded through its real webhook endpoint, and a loopback stand-in for Kotani.

The seeded run (every event signed, POSTed to /webhooks/kotani, handled by the real worker):

    TXN-A     invoice_needed -> submitted; refund.completed, our node never saw it paid
    TXN-B     invoice_needed -> submitted; our node saw it paid, Kotani never said completed
    TXN-C     invoice_needed -> submitted; paid; refund.completed (both agree)
    TXN-DEAD  invoice_needed; Kotani answers 401 -> the delivery is dead (until replayed)
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver.amounts import Msat
from receiver.app import create_app
from receiver.lightning.fake import FakeBackend
from receiver.settings import Settings
from receiver.webhooks.signature import sign, signed_bytes
from tests.inbox.test_handlers import invoice_needed
from tests.support.server import serve_app

__all__ = ["invoice_needed"]

SECRET = "whsec_console_test_0123456789"
API_KEY = "console-api-key-for-tests-0123"
KOTANI_KEY = "kp_console_test_key"
SEEDED = {"TXN-A": 21_000, "TXN-B": 5_000, "TXN-C": 8_000, "TXN-DEAD": 7_000}


@dataclass
class FakeKotani:
    """Answers submit-refund-invoice: 200, or ``refuse[reference]`` while it is set."""

    refuse: dict[str, int] = field(default_factory=dict)
    submitted: list[tuple[str, str]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def submit(request: Request) -> JSONResponse:
            reference = request.path_params["reference"]
            assert request.headers["authorization"] == f"Bearer {KOTANI_KEY}"
            status = self.refuse.get(reference)
            if status is not None:
                return JSONResponse(
                    {"success": False, "message": "Unauthorized", "data": {}}, status_code=status
                )
            self.submitted.append((reference, json.loads(await request.body())["invoice"]))
            return JSONResponse(
                {"success": True, "message": "Invoice submitted successfully", "data": {}}
            )

        return Starlette(
            routes=[
                Route("/api/v3/offramp/submit-refund-invoice/{reference}", submit, methods=["POST"])
            ]
        )


def completed(reference: str, msat: int) -> dict[str, Any]:
    return {
        "referenceId": reference,
        "status": "REVERSED",
        "refundStatus": "SUCCESSFUL",
        "refundTransactionHash": f"hash-{reference}",
        "refundAmount": msat,
        "chain": "LIGHTNING",
        "token": "BTC",
        "currency": "KES",
        "timestamp": "2026-12-01T10:00:00Z",
    }


@dataclass
class Live:
    url: str
    app: Starlette
    kotani: FakeKotani
    client: httpx.AsyncClient

    async def deliver(self, event: str, data: dict[str, Any]) -> int:
        message = signed_bytes(event, data)
        signature = sign(SECRET, message)
        body = message[:-1] + f',"signature":"{signature}"}}'.encode()
        response = await self.client.post(
            "/webhooks/kotani",
            content=body,
            headers={"X-Kotani-Signature": signature, "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.text
        return int(response.json()["event_id"])

    async def api(self, path: str) -> Any:
        response = await self.client.get(path, headers={"Authorization": f"Bearer {API_KEY}"})
        assert response.status_code == 200, response.text
        return response.json()

    async def settled(self, event_id: int) -> dict[str, Any]:
        """The event once the worker is through with it (done or dead); 30 s at most."""
        event: dict[str, Any] = {}
        try:
            async with asyncio.timeout(30):
                while event.get("status") not in ("done", "dead"):
                    await asyncio.sleep(0.05)
                    event = await self.api(f"/events/{event_id}")
        except TimeoutError:
            raise AssertionError(f"event {event_id} stayed {event.get('status')}") from None
        return event

    async def pay(self, reference: str) -> None:
        """Our node sees the refund invoice of ``reference`` paid (and the service records it)."""
        services = self.app.state.services
        [record] = await services.invoices.for_reference(reference)
        backend = services.chain.backends[0]
        assert isinstance(backend, FakeBackend)
        await backend.pay(record.payment_hash, Msat(record.amount_msat))
        status = await services.invoices.refresh_status(record.payment_hash)
        assert status is not None and status.state.value == "paid"


@pytest.fixture
def start_live(make_settings: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    async def run(seed: bool = True, **overrides: Any) -> AsyncIterator[Live]:
        kotani = FakeKotani(refuse={"TXN-DEAD": 401})
        async with serve_app(kotani.app()) as kotani_url:
            values = {
                "webhook_secrets": SECRET,
                "api_key": API_KEY,
                "kotani_base_url": kotani_url,
                "kotani_api_key": KOTANI_KEY,
                **overrides,
            }
            settings = make_settings(**values)
            app = create_app(settings)
            async with serve_app(app) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
                live = Live(url, app, kotani, client)
                if seed:
                    await seed_run(live)
                yield live

    return run


async def seed_run(live: Live) -> None:
    needed = [
        await live.deliver("refund.lightning.invoice_needed", invoice_needed(ref, msat))
        for ref, msat in SEEDED.items()
    ]
    outcomes = [await live.settled(event_id) for event_id in needed]
    assert [e["status"] for e in outcomes] == ["done", "done", "done", "dead"]
    await live.pay("TXN-B")
    await live.pay("TXN-C")
    done = [
        await live.deliver("refund.completed", completed(ref, SEEDED[ref]))
        for ref in ("TXN-A", "TXN-C")
    ]
    # TXN-A is unpaid: the handler re-asks the node for a few seconds before "unconfirmed".
    for event_id in done:
        assert (await live.settled(event_id))["status"] == "done"


@pytest.fixture
async def seeded(start_live) -> AsyncIterator[Live]:  # type: ignore[no-untyped-def]
    async for live in start_live():
        yield live
