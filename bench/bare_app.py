"""The baseline: a bare Starlette endpoint that answers a canned invoice-shaped JSON."""

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

CANNED = {
    "bolt11": "lnbcrt15u1" + "q" * 300,
    "payment_hash": "00" * 32,
    "amount_msat": 1_500_000,
    "expires_at": "2030-01-01T00:00:00Z",
}


async def canned(request: Request) -> JSONResponse:
    await request.body()
    return JSONResponse(CANNED)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


app = Starlette(
    routes=[Route("/invoices/{token}", canned, methods=["POST"]), Route("/healthz", healthz)]
)
