"""A small LND REST double served over real HTTP, signing real invoices, with injectable faults.

It answers ``POST /v1/invoices``, ``GET /v1/invoice/{hash}`` and ``GET /v1/getinfo`` in LND's
documented shapes (see ``receiver/lightning/lnd.py``) and checks the macaroon header. ``fault``
makes it misbehave: ``hang`` (never answers until the test ends), ``slow`` (answers after
``delay`` seconds), ``error500`` (grpc-gateway's error shape with HTTP 500), ``wrong_amount``
(a valid, signed invoice for 1 sat more than asked). Every invoice it minted is kept in ``minted``
so a test can assert none of them left the service.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import coincurve
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from receiver.lightning.base import Network
from tests.support.faulty import sign
from tests.support.server import serve_app

MACAROON = "0201036c6e64" + "cd" * 30


class LndDouble:
    def __init__(self, fault: str = "", *, delay: float = 0.0, network: Network = Network.REGTEST):
        self.fault = fault
        self.delay = delay
        self.network = network
        self.key = coincurve.PrivateKey(os.urandom(32))
        self.node_id = self.key.public_key.format(compressed=True).hex()
        self.minted: list[str] = []
        self.calls = 0
        self.release = asyncio.Event()
        self.url = ""

    async def _add_invoice(self, request: Request) -> Response:
        if request.headers.get("Grpc-Metadata-macaroon") != MACAROON:
            return JSONResponse({"code": 2, "message": "verification failed", "details": []}, 401)
        self.calls += 1
        body = await request.json()
        if self.fault == "hang":
            await self.release.wait()
        if self.fault == "slow":
            await asyncio.sleep(self.delay)
        if self.fault == "error500":
            return JSONResponse({"code": 2, "message": "wallet locked", "details": []}, 500)
        amount = int(body["value_msat"]) + (1000 if self.fault == "wrong_amount" else 0)
        payment_hash = hashlib.sha256(os.urandom(32)).hexdigest()
        invoice = sign(
            self.key,
            currency=self.network.bolt11_currency,
            amount_msat=amount,
            payment_hash=payment_hash,
            expiry=int(body.get("expiry", 3600)),
            memo=body.get("memo", ""),
        )
        self.minted.append(invoice)
        return JSONResponse(
            {
                "r_hash": base64.b64encode(bytes.fromhex(payment_hash)).decode(),
                "payment_request": invoice,
                "add_index": str(len(self.minted)),
            }
        )

    async def _lookup(self, request: Request) -> Response:
        return JSONResponse({"state": "OPEN", "creation_date": "0", "expiry": "0"})

    async def _getinfo(self, request: Request) -> Response:
        if self.fault == "hang":
            await self.release.wait()
        network = "mainnet" if self.network is Network.BITCOIN else self.network.value
        return JSONResponse(
            {
                "identity_pubkey": self.node_id,
                "alias": f"double-{self.fault or 'ok'}",
                "chains": [{"chain": "bitcoin", "network": network}],
            }
        )

    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/v1/invoices", self._add_invoice, methods=["POST"]),
                Route("/v1/invoice/{r_hash}", self._lookup),
                Route("/v1/getinfo", self._getinfo),
            ]
        )

    @asynccontextmanager
    async def running(self, *, tls: tuple[str, str] | None = None) -> AsyncIterator[LndDouble]:
        async with serve_app(self.app(), tls=tls) as url:
            self.url = url
            try:
                yield self
            finally:
                self.release.set()  # let hanging handlers finish so the server can stop
