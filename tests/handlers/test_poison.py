"""Poison isolation: a delivery that cannot be stored fails alone, with a 400 naming the field."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from receiver.app import create_app
from receiver.settings import Settings
from receiver.webhooks.signature import sign, signed_bytes
from tests.support.server import serve_app

SECRET = "whsec_poison_test_0123456789abcdef"
EVENT = "transaction.offramp.status.updated"


def signed_body(data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    message = signed_bytes(EVENT, data)
    signature = sign(SECRET, message)
    body = message[:-1] + f',"signature":"{signature}"}}'.encode()
    return body, {"X-Kotani-Signature": signature, "Content-Type": "application/json"}


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest) -> str:
    return "" if request.param == "sqlite" else str(request.getfixturevalue("fresh_postgres_url"))


@pytest.fixture
async def live(
    database_url: str, make_settings: Callable[..., Settings]
) -> AsyncIterator[httpx.AsyncClient]:
    settings = make_settings(webhook_secrets=SECRET, database_url=database_url)
    async with serve_app(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base, timeout=30) as client:
            yield client


async def test_poison_deliveries_fail_alone_with_a_400(live: httpx.AsyncClient) -> None:
    valid = [signed_body({"referenceId": f"OK-{n}", "status": "SUCCESSFUL"}) for n in range(60)]
    # The JSON escape "\ud800" is a lone surrogate: valid JSON, valid signature, no UTF-8 form.
    poison = [signed_body({"referenceId": f"\ud800x{n}", "status": "FAILED"}) for n in range(10)]
    bodies = [*valid[:30], *poison, *valid[30:]]
    answers = await asyncio.gather(
        *(live.post("/webhooks/kotani", content=body, headers=h) for body, h in bodies)
    )
    good = [a for a, (body, _) in zip(answers, bodies, strict=True) if b"OK-" in body]
    bad = [a for a, (body, _) in zip(answers, bodies, strict=True) if b"OK-" not in body]
    assert [a.status_code for a in good] == [200] * 60
    assert len({a.json()["event_id"] for a in good}) == 60
    assert [a.status_code for a in bad] == [400] * 10
    error = bad[0].json()["error"]
    assert error["code"] == "request.invalid" and "referenceId" in error["message"]
