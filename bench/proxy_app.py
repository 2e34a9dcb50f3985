"""The floor of ``bench/backends.py``: a bare Starlette endpoint that forwards to LNbits.

The same request and answer shapes as the service's ``/invoices/{token}``, the same uvicorn, one
``httpx.AsyncClient`` kept open: every cost of one more HTTP hop in front of LNbits, and none of
the service's (no validation, no verification of the invoice, no lease, no durable record).
LNbits' URL and invoice key come from ``PROXY_LNBITS_URL`` and ``PROXY_LNBITS_KEY``.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CLIENT: dict[str, httpx.AsyncClient] = {}


@asynccontextmanager
async def lifespan(_app: Starlette) -> AsyncIterator[None]:
    async with httpx.AsyncClient(
        base_url=os.environ["PROXY_LNBITS_URL"],
        headers={"X-Api-Key": os.environ["PROXY_LNBITS_KEY"]},
        timeout=10,
    ) as client:
        CLIENT["lnbits"] = client
        yield


async def invoice(request: Request) -> JSONResponse:
    wanted = await request.json()
    body = {
        "out": False,
        "amount": wanted["amount_msat"] // 1000,
        "memo": f"Kotani Pay refund {wanted['reference_id']}",
        "expiry": 3600,
    }
    answer = (await CLIENT["lnbits"].post("/api/v1/payments", json=body)).json()
    return JSONResponse(
        {
            "bolt11": answer["bolt11"],
            "payment_hash": answer["payment_hash"],
            "amount_msat": wanted["amount_msat"],
        }
    )


async def healthz(_request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/invoices/{token}", invoice, methods=["POST"]), Route("/healthz", healthz)],
    lifespan=lifespan,
)
