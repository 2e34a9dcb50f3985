"""POST /webhooks/kotani[/token] and the internal API, over real HTTP (uvicorn, SQLite)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from receiver.app import create_app
from receiver.settings import Settings
from receiver.webhooks.signature import sign, signed_bytes
from tests.conftest import TOKEN
from tests.support.server import serve_app

SECRET = "whsec_kotani_test_0123456789abcdef"
OLD_SECRET = "old-secret-ünïcode-🔑"
API_KEY = "internal-api-key-for-tests"
DIRECT = "direct-token-for-tests-0123456789"
VECTORS = json.loads((Path(__file__).parent / "vectors" / "vectors.json").read_text("utf-8"))
UNAUTHORIZED = {
    "error": {"code": "webhook.unauthorized", "message": "webhook signature missing or invalid"}
}


def signed_body(event: str, data: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    message = signed_bytes(event, data)
    signature = sign(SECRET, message)
    body = message[:-1] + f',"signature":"{signature}"}}'.encode()
    return body, {"X-Kotani-Signature": signature, "Content-Type": "application/json"}


@pytest.fixture
def start(make_settings: Callable[..., Settings]):  # type: ignore[no-untyped-def]
    async def run(**overrides: Any) -> AsyncIterator[httpx.AsyncClient]:
        values = {"webhook_secrets": f"{SECRET},{OLD_SECRET}", "api_key": API_KEY, **overrides}
        settings = make_settings(**values)
        async with serve_app(create_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url, timeout=15) as client:
                yield client

    return run


@pytest.fixture
async def live(start) -> AsyncIterator[httpx.AsyncClient]:  # type: ignore[no-untyped-def]
    async for client in start():
        yield client


async def api(client: httpx.AsyncClient, path: str, method: str = "GET") -> httpx.Response:
    return await client.request(method, path, headers={"Authorization": f"Bearer {API_KEY}"})


async def wait_for_status(client: httpx.AsyncClient, event_id: int, status: str) -> dict[str, Any]:
    for _ in range(200):
        event = (await api(client, f"/events/{event_id}")).json()
        if event["status"] == status:
            return dict(event)
        await asyncio.sleep(0.05)
    raise AssertionError(f"event {event_id} stayed {event['status']}")


async def test_every_node_vector_through_http(live: httpx.AsyncClient) -> None:
    vectors = [v for v in VECTORS["vectors"] if v["secrets"]]  # the server has both secrets

    async def post(vector: dict[str, Any]) -> httpx.Response:
        return await live.post(
            "/webhooks/kotani",
            content=vector["body"].encode("utf-8"),
            headers={"Content-Type": "application/json", **vector["headers"]},
        )

    responses: list[httpx.Response] = []
    for start in range(0, len(vectors), 25):
        responses += await asyncio.gather(*(post(v) for v in vectors[start : start + 25]))
    for vector, response in zip(vectors, responses, strict=True):
        if vector["valid"]:
            assert response.status_code == 200, (vector["name"], response.text)
        else:
            assert response.status_code == 401, vector["name"]
            assert response.json() == UNAUTHORIZED
    assert len(responses) >= 350


async def test_signed_delivery_is_stored_raw_and_handled(live: httpx.AsyncClient) -> None:
    body, headers = signed_body("kyc.status.changed", {"kycId": "k-1", "status": "APPROVED"})
    headers["X-Kotani-Event"] = "kyc.status.changed"
    response = await live.post("/webhooks/kotani", content=body, headers=headers)
    assert response.status_code == 200
    answer = response.json()
    assert answer["ok"] is True and answer["duplicate"] is False
    event = await wait_for_status(live, answer["event_id"], "done")
    assert event["body"] == json.loads(body)
    assert event["verification"] == "signature" and event["verification_detail"] == "raw#0"
    assert event["headers"]["x-kotani-event"] == "kyc.status.changed"
    assert event["outcome"].startswith("no handler")


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (b"not json", 400, "request.invalid_json"),
        (b"[1,2]", 400, "webhook.malformed"),
        (b'{"event":"x","data":"s","signature":"sha256=00"}', 400, "webhook.malformed"),
        (b" " * (256 * 1024 + 1), 413, "request.too_large"),
    ],
)
async def test_bad_bodies(live: httpx.AsyncClient, body: bytes, status: int, code: str) -> None:
    response = await live.post("/webhooks/kotani", content=body)
    assert response.status_code == status
    assert response.json()["error"]["code"] == code


async def test_rejections_do_not_say_which_part_failed(live: httpx.AsyncClient) -> None:
    body, headers = signed_body("refund.completed", {"referenceId": "R-401"})
    unsigned = json.dumps({"event": "refund.completed", "data": {"referenceId": "R-401"}})
    attempts = [
        (body, {"X-Kotani-Signature": "sha256=" + "0" * 64}),
        (body, {"X-Kotani-Signature": "garbage"}),
        (body.replace(b"R-401", b"R-402"), headers),
        (unsigned.encode(), {}),
        (body, {"X-Kotani-Signature": sign("wrong", signed_bytes("refund.completed", {}))}),
    ]
    for content, extra in attempts:
        response = await live.post("/webhooks/kotani", content=content, headers=extra)
        assert (response.status_code, response.json()) == (401, UNAUTHORIZED)
    assert (await api(live, "/events")).json()["events"] == []


async def test_ten_concurrent_duplicates_one_record_one_effect(live: httpx.AsyncClient) -> None:
    body, headers = signed_body(
        "refund.completed", {"referenceId": "DUP-10", "status": "REVERSED", "refundAmount": 38.5}
    )
    responses = await asyncio.gather(
        *(live.post("/webhooks/kotani", content=body, headers=headers) for _ in range(10))
    )
    assert [r.status_code for r in responses] == [200] * 10
    answers = [r.json() for r in responses]
    assert len({a["event_id"] for a in answers}) == 1
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * 9
    event = await wait_for_status(live, answers[0]["event_id"], "done")
    assert event["duplicates"] == 9 and event["attempts"] == 1
    refund = (await api(live, "/refunds/DUP-10")).json()
    assert [h["action"] for h in refund["history"]] == ["refund.completed"]
    assert len(refund["events"]) == 1 and refund["refund"]["state"] == "completed"


async def test_direct_mode_needs_its_own_token(start) -> None:  # type: ignore[no-untyped-def]
    bare = {"referenceId": "OFF-1", "status": "SUCCESSFUL", "updated_at": "2024-11-22T14:05:00Z"}
    async for live in start(direct_tokens=DIRECT, allow_direct_with_secrets=True):
        assert (await live.post("/webhooks/kotani", json=bare)).status_code == 401
        wrong = await live.post("/webhooks/kotani/not-the-token-at-all", json=bare)
        assert wrong.status_code == 404 and "not-the-token" not in wrong.text
        invoice_token = await live.post(f"/webhooks/kotani/{TOKEN}", json=bare)
        assert invoice_token.status_code == 404  # the invoice token never opens direct mode
        response = await live.post(f"/webhooks/kotani/{DIRECT}", json=bare)
        assert response.status_code == 200
        event = await wait_for_status(live, response.json()["event_id"], "done")
        assert (event["type"], event["verification"], event["reference_id"]) == (
            "direct.transaction",
            "token",
            "OFF-1",
        )
        assert event["outcome"].startswith("unverified delivery")
        # a hint, recorded for an operator: no status is taken from it
        assert (await api(live, "/refunds/OFF-1")).json()["transaction_status"] is None


async def test_token_url_still_checks_a_signature_it_can_check(start) -> None:  # type: ignore[no-untyped-def]
    body, _ = signed_body("refund.completed", {"referenceId": "R-T"})
    forged = body.replace(b"R-T", b"R-X")
    async for live in start(direct_tokens=DIRECT, allow_direct_with_secrets=True):
        assert (await live.post(f"/webhooks/kotani/{DIRECT}", content=forged)).status_code == 401
        assert (await live.post(f"/webhooks/kotani/{DIRECT}", content=body)).status_code == 200


async def test_crypto_bridge_callbacks_are_keyed_by_whatever_reference_they_carry(
    start,  # type: ignore[no-untyped-def]
) -> None:
    async for live in start(direct_tokens=DIRECT, allow_direct_with_secrets=True):
        for payload, reference in [
            (
                {"kotani_reference_id": "KB-1", "provider_reference_id": "P-1", "status": "X"},
                "KB-1",
            ),
            ({"provider_reference_id": "P-2", "state": {"nested": [1.5, 1e21]}}, "P-2"),
            ({"amount": 1}, None),
        ]:
            response = await live.post(f"/webhooks/kotani/{DIRECT}", json=payload)
            event = (await api(live, f"/events/{response.json()['event_id']}")).json()
            assert event["reference_id"] == reference and event["body"] == payload


async def test_allow_unsigned_accepts_unsigned_deliveries(start) -> None:  # type: ignore[no-untyped-def]
    async for client in start(webhook_secrets="", allow_unsigned=True):
        envelope = {
            "event": "transaction.status.updated",
            "data": {"referenceId": "U-1", "status": "FAILED"},
        }
        response = await client.post("/webhooks/kotani", json=envelope)
        assert response.status_code == 200
        event = await wait_for_status(client, response.json()["event_id"], "done")
        assert (event["type"], event["verification"]) == ("transaction.status.updated", "unsigned")


async def test_internal_api_needs_the_key(live: httpx.AsyncClient) -> None:
    for path in ["/events", "/events/1", "/refunds/X"]:
        assert (await live.get(path)).status_code == 401
        assert (await live.get(path, headers={"Authorization": "Bearer nope"})).status_code == 401
    assert (await live.post("/events/1/replay")).status_code == 401
    assert (await live.get("/events", headers={"X-API-Key": API_KEY})).status_code == 200


async def test_internal_api_list_show_replay(live: httpx.AsyncClient) -> None:
    body, headers = signed_body("refund.failed", {"referenceId": "API-1", "error": "gas"})
    event_id = (await live.post("/webhooks/kotani", content=body, headers=headers)).json()[
        "event_id"
    ]
    await wait_for_status(live, event_id, "done")
    listed = (await api(live, "/events?status=done&type=refund.failed")).json()
    assert [e["id"] for e in listed["events"]] == [event_id]
    assert (await api(live, "/events?status=nope")).status_code == 422
    assert (await api(live, "/events/999999")).status_code == 404
    replay = await api(live, f"/events/{event_id}/replay", "POST")
    assert (replay.status_code, replay.json()) == (202, {"event_id": event_id, "status": "pending"})
    await wait_for_status(live, event_id, "done")
    refund = (await api(live, "/refunds/API-1")).json()
    assert [h["action"] for h in refund["history"]] == ["refund.failed", "refund.failed"]
    assert (await api(live, "/refunds/UNKNOWN")).status_code == 404


async def test_internal_api_is_off_without_a_key(start) -> None:  # type: ignore[no-untyped-def]
    async for client in start(api_key=None):
        response = await client.get("/events", headers={"Authorization": "Bearer anything"})
        assert response.status_code == 401


async def test_an_event_id_beyond_any_bigint_is_404(live: httpx.AsyncClient) -> None:
    for path in ("/events/99999999999999999999", "/events/99999999999999999999/replay"):
        method = live.post if path.endswith("replay") else live.get
        answer = await method(path, headers={"Authorization": f"Bearer {API_KEY}"})
        assert answer.status_code == 404, (path, answer.status_code)
