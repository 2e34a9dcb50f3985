"""POST /invoices/{token} through real HTTP (uvicorn on an ephemeral port, fake backend)."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

import httpx
import pytest

from receiver.amounts import Msat
from receiver.lightning.fake import FakeBackend, FakeConfig
from receiver.services import backend_context
from receiver.settings import Settings
from tests.conftest import TOKEN
from tests.support import bolt11_ref

URL = f"/invoices/{TOKEN}"


def parse_expires(text: str) -> int:
    assert text.endswith("Z"), text
    return int(datetime.strptime(text, "%Y-%m-%dT%H:%M:%S%z").timestamp())


async def test_contract_answer_decodes_independently(
    live: httpx.AsyncClient, settings: Settings
) -> None:
    response = await live.post(URL, json={"amount_msat": 1_500_000, "reference_id": "TXN-001"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"bolt11", "payment_hash", "amount_msat", "expires_at"}
    assert body["amount_msat"] == 1_500_000 and type(body["amount_msat"]) is int
    ref = bolt11_ref.decode(body["bolt11"])
    assert ref.network == "regtest"
    assert ref.amount_msat == 1_500_000
    assert ref.payment_hash == body["payment_hash"]
    assert ref.timestamp + ref.expiry == parse_expires(body["expires_at"])
    assert ref.timestamp + ref.expiry - time.time() >= settings.min_validity
    assert ref.description == "Kotani Pay refund TXN-001"


@pytest.mark.parametrize("amount", [1, 10, 999, 1001, 123_456_789, 99_999_999_999])
async def test_odd_amounts_are_exact(live: httpx.AsyncClient, amount: int) -> None:
    response = await live.post(URL, json={"amount_msat": amount, "reference_id": f"ODD-{amount}"})
    assert response.status_code == 200, response.text
    assert bolt11_ref.decode(response.json()["bolt11"]).amount_msat == amount


async def test_camel_case_reference_and_extra_fields(live: httpx.AsyncClient) -> None:
    first = await live.post(URL, json={"amount_msat": 5000, "referenceId": "TXN-C", "x": [1]})
    second = await live.post(URL, json={"amount_msat": 5000, "reference_id": "TXN-C"})
    assert first.status_code == second.status_code == 200
    assert first.json()["bolt11"] == second.json()["bolt11"]


@pytest.mark.parametrize(
    "body",
    [
        {"amount_msat": 0, "reference_id": "R"},
        {"amount_msat": -5, "reference_id": "R"},
        {"amount_msat": 100_000_000_001, "reference_id": "R"},
        {"amount_msat": 1500.0, "reference_id": "R"},
        {"amount_msat": 1.5, "reference_id": "R"},
        {"amount_msat": True, "reference_id": "R"},
        {"amount_msat": "1500000", "reference_id": "R"},
        {"amount_msat": None, "reference_id": "R"},
        {"amount_msat": [1], "reference_id": "R"},
        {"reference_id": "R"},
        {"amount_msat": 1000},
        {"amount_msat": 1000, "reference_id": ""},
        {"amount_msat": 1000, "reference_id": "   "},
        {"amount_msat": 1000, "reference_id": "x" * 129},
        {"amount_msat": 1000, "reference_id": "A\x00B"},
        {"amount_msat": 1000, "reference_id": "A\nB"},
        {"amount_msat": 1000, "reference_id": "A\u202eB"},
        {"amount_msat": 1000, "reference_id": 42},
        {"amount_msat": 1000, "reference_id": "A", "referenceId": "B"},
    ],
)
async def test_invalid_fields_are_422(live: httpx.AsyncClient, body: dict[str, object]) -> None:
    response = await live.post(URL, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "request.validation"


@pytest.mark.parametrize(
    ("content", "content_type", "status", "code"),
    [
        (b"not json", "application/json", 400, "request.invalid_json"),
        (b"", "application/json", 400, "request.invalid_json"),
        (b"[1, 2]", "application/json", 400, "request.invalid_json"),
        (b'{"amount_msat": 1', "application/json", 400, "request.invalid_json"),
        (b"\xff\xfe", "application/json", 400, "request.invalid_json"),
        (b'{"amount_msat": ' + b"9" * 5000 + b', "reference_id": "R"}', None, 400, None),
        (b"amount_msat=1000", "application/x-www-form-urlencoded", 415, None),
        (b"x" * (16 * 1024 + 1), "application/json", 413, "request.too_large"),
    ],
)
async def test_malformed_bodies(
    live: httpx.AsyncClient, content: bytes, content_type: str | None, status: int, code: str | None
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = await live.post(URL, content=content, headers=headers)
    assert response.status_code == status, response.text
    if code:
        assert response.json()["error"]["code"] == code


async def test_json_with_a_wrong_content_type_is_still_served(live: httpx.AsyncClient) -> None:
    response = await live.post(
        URL,
        content=b'{"amount_msat": 2000, "reference_id": "CT"}',
        headers={"content-type": "text/plain"},
    )
    assert response.status_code == 200


async def test_unknown_token_is_404_and_not_echoed(live: httpx.AsyncClient) -> None:
    for token in ("nope", TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
        response = await live.post(
            f"/invoices/{token}", json={"amount_msat": 1, "reference_id": "R"}
        )
        assert response.status_code == 404
        assert token not in response.text
        assert response.json()["error"]["code"] == "not_found"


async def test_wrong_method_and_path_are_json(live: httpx.AsyncClient) -> None:
    assert (await live.get(URL)).status_code == 405
    missing = await live.get("/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


async def test_repeat_returns_same_invoice_until_paid(
    live: httpx.AsyncClient, settings: Settings
) -> None:
    body = {"amount_msat": 1_500_000, "reference_id": "TXN-IDEM"}
    first = (await live.post(URL, json=body)).json()
    again = (await live.post(URL, json=body)).json()
    assert again == first
    other = (await live.post(URL, json={**body, "amount_msat": 1_500_001})).json()
    assert other["bolt11"] != first["bolt11"]

    # A second handle on the service's fake node (same data dir: same key and preimage store),
    # exactly what `kotani-receiver fake pay` uses from another process.
    node = FakeBackend(FakeConfig(), backend_context(settings))
    try:
        await node.pay(first["payment_hash"], Msat(1_500_000))
    finally:
        await node.aclose()
    after = (await live.post(URL, json=body)).json()
    assert after["payment_hash"] != first["payment_hash"]
    assert bolt11_ref.decode(after["bolt11"]).amount_msat == 1_500_000


async def test_concurrent_identical_requests_mint_once(
    live: httpx.AsyncClient, settings: Settings
) -> None:
    body = {"amount_msat": 777_000, "reference_id": "TXN-CONC"}
    responses = await asyncio.gather(*(live.post(URL, json=body) for _ in range(20)))
    assert all(r.status_code == 200 for r in responses)
    assert len({r.json()["bolt11"] for r in responses}) == 1
    from receiver.db import Database

    db = Database(settings.database_url)
    try:
        from sqlalchemy import func, select

        from receiver.db import InvoiceRecord

        async with db.session() as session:
            count = await session.scalar(
                select(func.count()).where(InvoiceRecord.reference_id == "TXN-CONC")
            )
        assert count == 1
    finally:
        await db.dispose()


async def test_health_and_ready(live: httpx.AsyncClient) -> None:
    assert (await live.get("/healthz")).json() == {"status": "ok"}
    ready = await live.get("/readyz")
    assert ready.status_code == 200
    body = ready.json()
    assert body["database"]["ok"] is True
    assert body["backends"][0]["name"] == "fake" and body["backends"][0]["ok"] is True
