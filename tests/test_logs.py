"""No configured secret reaches a log line, however a request spells it; disconnects are INFO."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator

import httpx
import pytest
import structlog

from receiver import logs
from receiver.app import create_app
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support.server import serve_app

API_KEY = "api-key-0123456789-secret"


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """The service's own log configuration (JSON), written to a buffer."""
    buffer = io.StringIO()
    logs.configure("info", "json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.reset_defaults()
        logging.getLogger().handlers.clear()


def lines(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines() if line.startswith("{")]


def test_mask_path_any_case_and_slashes() -> None:
    for path in (f"/invoices/{TOKEN}", f"//invoices/{TOKEN}", f"/Invoices/{TOKEN}",
                 f"/webhooks/kotani//{TOKEN}", f"/WEBHOOKS//Kotani/{TOKEN}/x"):
        assert TOKEN not in logs.mask_path(path)
    assert logs.mask_path("/events/12") == "/events/12"


def test_redactor_masks_inside_nested_values() -> None:
    redactor = logs.Redactor([TOKEN, "short"])
    out = redactor.value({"a": [f"x{TOKEN}y", ("short",)], "n": 3})
    assert out == {"a": ["x***y", ("short",)], "n": 3}  # under 6 characters: not a secret


async def test_secrets_never_reach_the_access_log(
    make_settings: object, json_logs: io.StringIO
) -> None:
    settings: Settings = make_settings(api_key=API_KEY)  # type: ignore[operator]
    escaped = "".join(f"%{ord(c):02x}" for c in TOKEN)
    async with serve_app(create_app(settings)) as url:
        async with httpx.AsyncClient(base_url=url) as client:
            for path in (f"//invoices/{TOKEN}", f"/Invoices/{TOKEN}",
                         f"/webhooks/kotani//{TOKEN}", f"/anything/{TOKEN}",
                         f"/healthz?t={TOKEN}", f"/healthz?k={API_KEY}", f"/healthz?t={escaped}"):
                await client.get(path)
    records = lines(json_logs)
    requests = [r for r in records if r.get("event") == "http.request"]
    assert len(requests) == 7
    text = json.dumps(records)
    assert TOKEN not in text and API_KEY not in text
    assert text.count("***") >= 7


async def test_client_disconnect_is_info_without_traceback(
    settings: Settings, json_logs: io.StringIO
) -> None:
    async with serve_app(create_app(settings)) as url:
        host, port = url.removeprefix("http://").split(":")
        for _ in range(3):
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(
                f"POST /invoices/{TOKEN} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                "Content-Length: 5000\r\n\r\n{\"amount_msat\":".encode()
            )
            await writer.drain()
            await asyncio.sleep(0.1)
            writer.close()
            await writer.wait_closed()
        await asyncio.sleep(0.3)
    records = lines(json_logs)
    assert not [r for r in records if r.get("level") in ("error", "critical")]
    assert not any("Traceback" in json.dumps(r) for r in records)
    assert [r for r in records if r.get("event") == "http.client_disconnected"]
