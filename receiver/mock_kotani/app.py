"""The imitation's HTTP API: Kotani's v3 paths, its envelope, its error bodies, plus ``/_mock``.

Every answer is ``{"success", "message", "data"}`` as Kotani's; refusals carry Kotani's status
(400 bad input or a broken rule, 401 no or wrong Bearer key, 404 unknown reference). Request
bodies are validated with the same pydantic models the service's client uses
(``receiver.kotani.models``), so the imitation and the client cannot drift apart.

``/_mock/...`` is not Kotani's: the control surface that makes a payout fail, confirms a payment
made by hand, expires a crypto-bridge invoice and reads the timeline and the outbox.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from receiver.kotani.models import OfframpRefundConfig
from receiver.lightning.base import BackendContext, Network
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.mock_kotani import bridge
from receiver.mock_kotani.http import api, body_of, ok, refused, validated
from receiver.mock_kotani.refunds import OFFRAMP, Payer, RefundEngine
from receiver.mock_kotani.rules import Refusal
from receiver.mock_kotani.store import MockStore
from receiver.mock_kotani.webhooks import WebhookSender

WEBHOOK_EVENTS = frozenset(
    {
        "transaction.status.updated",
        "transaction.deposit.status.updated",
        "transaction.withdrawal.status.updated",
        "transaction.onramp.status.updated",
        "transaction.offramp.status.updated",
        "payment.confirmed",
        "kyc.status.changed",
        "refund.lightning.invoice_needed",
        "refund.completed",
        "refund.failed",
        "system.event",
    }
)
"""``UpdateIntegratorWebhookDto.webhook_events`` enum (the settlement.* events of 2026-11 too)."""


class MockKotani:
    """State shared by the routes: store, webhook sender, refund engine, the API key."""

    def __init__(
        self,
        store: MockStore,
        sender: WebhookSender,
        *,
        api_key: str | None,
        payer: Payer | None,
        data_dir: Path,
        network: Network = Network.REGTEST,
    ) -> None:
        self.store = store
        self.sender = sender
        self.api_key = api_key
        self.data_dir = data_dir
        self.network = network
        self._minter: FakeBackend | None = None
        self.http = httpx.AsyncClient()
        self.refunds = RefundEngine(store, sender, payer, self.http, self.background)
        self.tasks: set[asyncio.Task[None]] = set()
        self.lock = asyncio.Lock()

    def minter(self) -> FakeBackend:
        """Kotani's own node for crypto-bridge refund invoices: a fake node in its data dir."""
        if self._minter is None:
            context = BackendContext(network=self.network, data_dir=self.data_dir / "kotani-node")
            self._minter = FakeBackend(FakeConfig(_env_file=None), context)
        return self._minter

    async def bridge_minter_close(self) -> None:
        if self._minter is not None:
            await self._minter.aclose()

    def background(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def idle(self) -> None:
        """Wait for background refund steps (tests)."""
        while self.tasks:
            await asyncio.gather(*self.tasks, return_exceptions=True)


# --- offramp ------------------------------------------------------------------------------------


async def create_offramp(request: Request) -> JSONResponse:
    mock: MockKotani = request.app.state.mock
    body = await body_of(request)
    missing = [
        k for k in ("cryptoAmount", "currency", "chain", "token", "referenceId") if k not in body
    ]
    if missing:
        raise Refusal(400, f"Bad Request: {', '.join(missing)} required")
    ref = body["referenceId"]
    if not isinstance(ref, str) or not ref.strip():
        raise Refusal(400, "Bad Request: referenceId must be a non-empty string")
    doc: dict[str, Any] = {
        "referenceId": ref,
        "cryptoAmount": body["cryptoAmount"],
        "currency": body["currency"],
        "chain": body["chain"],
        "token": body["token"],
        "status": "PENDING",
        "refundStatus": None,
        "submissions": 0,
        "_base_url": str(request.base_url).rstrip("/"),
    }
    if body.get("refund_config") is not None:
        if body["chain"] != "LIGHTNING":
            raise Refusal(400, "Bad Request: refund_config is for Lightning offramps")
        try:
            doc["refund_config"] = validated(OfframpRefundConfig, body["refund_config"])
        except ValidationError as exc:
            fields = sorted({".".join(str(p) for p in e["loc"]) for e in exc.errors()})
            raise Refusal(400, f"Bad Request: invalid refund_config {', '.join(fields)}") from None
    elif body["chain"] == "LIGHTNING" and not isinstance(body["cryptoAmount"], int):
        raise Refusal(400, "Bad Request: a Lightning cryptoAmount is a whole number of msat")
    if not await mock.store.add(OFFRAMP, ref, doc):
        raise Refusal(400, "Reference ID already exists")
    option = "refund_config given" if "refund_config" in doc else "no refund_config"
    await mock.store.note(ref, f"kotani: offramp created ({option})")
    return ok(_public(doc), "Offramp created", 201)


def _public(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


async def submit_refund_invoice(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    ref = request.path_params["ref"]
    body = await body_of(request)
    doc = await mock.refunds.submit(ref, body.get("invoice"))
    mock.background(mock.refunds.pay_submitted(ref))
    return JSONResponse(
        {"success": True, "message": "Refund invoice submitted", "data": _refund_view(doc)}
    )


async def retry_refund(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    await mock.refunds.retry(request.path_params["ref"])
    return JSONResponse({"success": True, "message": "Refund retry initiated", "data": {}})


async def retry_refunds(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    body = await body_of(request)
    ids = body.get("referenceIds")
    if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
        raise Refusal(400, "Bad Request: referenceIds must be a non-empty list of strings")
    results = []
    for ref in ids:
        try:
            await mock.refunds.retry(ref)
        except Refusal:
            results.append({"referenceId": ref, "success": False})
        else:
            results.append({"referenceId": ref, "success": True})
    return {"results": results}


def _refund_view(doc: dict[str, Any]) -> dict[str, Any]:
    return {
        "referenceId": doc["referenceId"],
        "status": doc["status"],
        "refundStatus": doc.get("refundStatus"),
        "refundTransactionHash": doc.get("refundTransactionHash"),
        "refundAmount": doc.get("refund_config", {}).get("amount_msat", doc["cryptoAmount"]),
        "chain": doc["chain"],
        "token": doc["token"],
        "currency": doc["currency"],
        "error": doc.get("refundError"),
        "totalRetries": doc.get("totalRetries", 0),
        "submissions": doc.get("submissions", 0),
    }


async def refund_status(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    return _refund_view(await mock.refunds.offramp(request.path_params["ref"]))


# --- integrator webhook ------------------------------------------------------------------------


async def update_webhook(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    body = await body_of(request)
    unknown = set(body) - {"webhook_url", "webhook_secret", "webhook_events"}
    if unknown:
        raise Refusal(400, f"Bad Request: property {sorted(unknown)[0]} should not exist")
    current = await mock.store.get("integrator", "webhook") or {}
    url = body.get("webhook_url", current.get("webhook_url"))
    if url is not None and (
        not isinstance(url, str) or not url.startswith(("http://", "https://"))
    ):
        raise Refusal(400, "Bad Request: webhook_url must be a URL address")
    secret = body.get("webhook_secret", current.get("webhook_secret"))
    if secret is not None and not isinstance(secret, str):
        raise Refusal(400, "Bad Request: webhook_secret must be a string")
    events = body.get("webhook_events", current.get("webhook_events"))
    if events is not None and (
        not isinstance(events, list) or not all(e in WEBHOOK_EVENTS for e in events)
    ):
        raise Refusal(400, "Bad Request: each value in webhook_events must be a valid event")
    updated = {"webhook_url": url, "webhook_secret": secret, "webhook_events": events}
    await mock.store.put("integrator", "webhook", updated)
    await mock.store.note(None, f"kotani: integrator webhook set to {url}")
    mock.sender.wake()
    return ok(
        {"webhook_url": url, "webhook_events": events, "has_webhook_secret": bool(secret)},
        "Integrator webhook settings updated successfully.",
    )


# --- /_mock control ----------------------------------------------------------------------------


async def mock_fail_payout(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    ref = request.path_params["ref"]
    doc = await mock.refunds.offramp(ref)
    if doc["status"] != "PENDING":
        raise Refusal(400, f"the payout is {doc['status']}, not PENDING")
    body = await body_of(request) if await request.body() else {}
    expired = bool(body.get("stored_invoice_expired", False))
    mock.background(mock.refunds.fail_payout(ref, stored_invoice_expired=expired))
    return JSONResponse({"success": True, "message": "payout failure started", "data": {}}, 202)


async def mock_paid(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    return _refund_view(await mock.refunds.complete(request.path_params["ref"]))


async def mock_timeline(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    return await mock.store.timeline(request.query_params.get("reference"))


async def mock_deliveries(request: Request) -> Any:
    mock: MockKotani = request.app.state.mock
    return await mock.store.deliveries()


def routes() -> list[Route]:
    v3 = "/api/v3"
    return [
        Route(f"{v3}/offramp", api(create_offramp), methods=["POST"]),
        Route(
            f"{v3}/offramp/submit-refund-invoice/{{ref}}",
            api(submit_refund_invoice),
            methods=["POST"],
        ),
        Route(f"{v3}/offramp/retry-refund/{{ref}}", api(retry_refund), methods=["POST"]),
        Route(f"{v3}/offramp/retry-refunds-multiple", api(retry_refunds), methods=["POST"]),
        Route(f"{v3}/offramp/refund-status/{{ref}}", api(refund_status), methods=["GET"]),
        Route(f"{v3}/integrator/webhook", api(update_webhook), methods=["PATCH"]),
        *bridge.routes(),
        Route(
            "/_mock/offramps/{ref}/fail-payout", api(mock_fail_payout, auth=False), methods=["POST"]
        ),
        Route("/_mock/offramps/{ref}/paid", api(mock_paid, auth=False), methods=["POST"]),
        Route("/_mock/timeline", api(mock_timeline, auth=False), methods=["GET"]),
        Route("/_mock/deliveries", api(mock_deliveries, auth=False), methods=["GET"]),
    ]


def create_mock_app(mock: MockKotani) -> Starlette:
    """The Starlette app; the lifespan opens the store and runs the webhook sender."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await mock.store.open()
        sender = asyncio.create_task(mock.sender.run())
        try:
            yield
        finally:
            sender.cancel()
            for task in list(mock.tasks):
                task.cancel()
            await asyncio.gather(sender, *mock.tasks, return_exceptions=True)
            await mock.http.aclose()
            await mock.sender.aclose()
            await mock.bridge_minter_close()
            await mock.store.close()

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return refused(404, f"Cannot {request.method} {request.url.path}")

    app = Starlette(
        routes=routes(), lifespan=lifespan, exception_handlers={404: not_found, 405: not_found}
    )
    app.state.mock = mock
    return app


def new_reference(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(6)}"
