"""Bodies: refused over the size limit before being read, and when they arrive too slowly."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from receiver.app import create_app
from receiver.handlers import _body
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support.server import serve_app


async def test_a_stalled_body_is_408_and_frees_the_request(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_body, "BODY_TIMEOUT", 0.5)
    async with serve_app(create_app(settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            f"POST /invoices/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            'Content-Length: 200\r\n\r\n{"amount_msat":'.encode()
        )
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        writer.close()
        assert head.startswith(b"HTTP/1.1 408")
        async with httpx.AsyncClient(base_url=url) as client:
            ok = await client.post(
                f"/invoices/{TOKEN}", json={"amount_msat": 1000, "reference_id": "R"}
            )
        assert ok.status_code == 200


async def test_signed_webhook_body_cap_is_64_kib(make_settings: object) -> None:
    settings: Settings = make_settings(webhook_secrets="whsec_body_cap_0123456789")  # type: ignore[operator]
    async with serve_app(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        over = await client.post("/webhooks/kotani", content=b" " * (64 * 1024 + 1))
        under = await client.post("/webhooks/kotani", content=b" " * (64 * 1024))
    assert over.status_code == 413 and over.json()["error"]["code"] == "request.too_large"
    assert under.status_code == 400  # read, then refused as not JSON
