"""KotaniClient against respx mocks of Kotani built from its OpenAPI examples.

Every test asserts what left the machine: method, path, ``Authorization: Bearer``, JSON body
(validated against the OpenAPI request schema). Kotani cannot run here, hence respx.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import respx
from pydantic import SecretStr
from structlog.testing import capture_logs

from receiver.errors import ConfigError, ReceiverError, ValidationFailed
from receiver.kotani.client import RETRY as POLICY
from receiver.kotani.client import KotaniClient
from receiver.kotani.errors import (
    KotaniBadRequest,
    KotaniError,
    KotaniNotFound,
    KotaniProtocolError,
    KotaniRateLimited,
    KotaniRejected,
    KotaniServerError,
    KotaniTimeout,
    KotaniUnauthorized,
    KotaniUnavailable,
)
from receiver.kotani.models import (
    BridgeDepositRequest,
    BridgeRateRequest,
    Chain,
    DepositStatus,
    RefundMethod,
)
from receiver.settings import Settings

from .conftest import API_KEY, BASE, Sleeps, Spec, envelope

SUBMIT = "/api/v3/offramp/submit-refund-invoice/{referenceId}"
RETRY = "/api/v3/offramp/retry-refund/{referenceId}"
STATUS = "/api/v3/offramp/refund-status/{referenceId}"
MULTI = "/api/v3/offramp/retry-refunds-multiple"
RATE = "/api/v3/rate/crypto-bridge"
DEPOSIT = "/api/v3/deposit/crypto-bridge"
BRIDGE_STATUS = "/api/v3/deposit/crypto-bridge/status/{kotani_reference_id}"
REFUND_CONFIG = "/api/v3/deposit/crypto-bridge/{kotani_reference_id}/refund-config"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False, assert_all_mocked=True) as mock:
        yield mock


def sent(route: respx.Route, index: int = -1) -> httpx.Request:
    return route.calls[index].request


def assert_sent(request: httpx.Request, method: str, path: str) -> None:
    assert request.method == method
    assert request.url.raw_path.decode() == path
    assert request.url.host == "sandbox-api.kotanipay.com"
    assert request.headers["Authorization"] == f"Bearer {API_KEY}"
    assert request.headers["Accept"] == "application/json"


def body(request: httpx.Request) -> Any:
    return json.loads(request.content)


# --- offramp refunds: the four calls ----------------------------------------------------------


async def test_submit_refund_invoice_posts_the_documented_body(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    payload = spec.request_example(SUBMIT, "POST")
    route = router.post("/api/v3/offramp/submit-refund-invoice/TXN-001").respond(
        200, json=envelope({}, "Refund invoice submitted")
    )
    ack = await kotani.submit_refund_invoice("TXN-001", payload["invoice"])
    assert route.call_count == 1
    request = sent(route)
    assert_sent(request, "POST", "/api/v3/offramp/submit-refund-invoice/TXN-001")
    assert request.headers["Content-Type"] == "application/json"
    assert body(request) == payload
    spec.check(spec.request_schema(SUBMIT, "POST"), body(request))
    assert ack.message == "Refund invoice submitted"
    assert ack.data == {}


async def test_retry_refund_posts_without_body_and_quotes_the_path(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.post(url__regex=r"/api/v3/offramp/retry-refund/.*").respond(
        200, json=envelope({"referenceId": "a/b c?"}, "Refund retry initiated")
    )
    ack = await kotani.retry_refund("a/b c?")
    request = sent(route)
    assert_sent(request, "POST", "/api/v3/offramp/retry-refund/a%2Fb%20c%3F")
    assert request.content == b""
    assert ack.data == {"referenceId": "a/b c?"}


async def test_refund_status_gets_and_parses(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    # The OpenAPI documents no 200 body here; the fields are those of refund.completed (§3).
    data = {
        "referenceId": "TXN-001",
        "status": "REVERSED",
        "refundStatus": "SUCCESSFUL",
        "refundTransactionHash": "ab" * 32,
        "refundAmount": 1500,
        "chain": "LIGHTNING",
        "token": "MSAT",
        "currency": "KES",
        "somethingNew": 1,
    }
    route = router.get("/api/v3/offramp/refund-status/TXN-001").respond(200, json=envelope(data))
    status = await kotani.refund_status("TXN-001")
    assert_sent(sent(route), "GET", "/api/v3/offramp/refund-status/TXN-001")
    assert status.reference_id == "TXN-001"
    assert status.refund_status == "SUCCESSFUL"
    assert status.refund_amount == Decimal(1500)
    assert status.model_extra == {"somethingNew": 1}


async def test_retry_refunds_posts_reference_ids(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    payload = spec.request_example(MULTI, "POST")
    route = router.post(MULTI).respond(200, json=envelope([{"referenceId": "x", "ok": True}]))
    ack = await kotani.retry_refunds(payload["referenceIds"])
    request = sent(route)
    assert_sent(request, "POST", MULTI)
    assert body(request) == payload
    spec.check(spec.request_schema(MULTI, "POST"), body(request))
    assert ack.data == [{"referenceId": "x", "ok": True}]


@pytest.mark.parametrize("ids", [[], ["TXN-1", " "]])
async def test_retry_refunds_refuses_empty_input_locally(
    kotani: KotaniClient, router: respx.MockRouter, ids: list[str]
) -> None:
    with pytest.raises(ValidationFailed):
        await kotani.retry_refunds(ids)
    assert not router.calls


async def test_empty_reference_never_leaves(kotani: KotaniClient, router: respx.MockRouter) -> None:
    with pytest.raises(ValidationFailed):
        await kotani.retry_refund("  ")
    assert not router.calls


# --- crypto bridge ----------------------------------------------------------------------------


async def test_bridge_rate_round_trips_the_documented_request(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    payload = spec.request_example(RATE, "POST")
    route = router.post(RATE).respond(200, json=spec.response(RATE, "POST", 200))
    rate = await kotani.bridge_rate(BridgeRateRequest.model_validate(payload))
    request = sent(route)
    assert_sent(request, "POST", RATE)
    assert body(request) == payload
    spec.check(spec.request_schema(RATE, "POST"), body(request))
    assert rate.rate_id == "RATE-CB-1732454321-XYZ123"
    assert rate.crypto_amount == 150_000_000
    assert rate.chain is Chain.LIGHTNING
    assert rate.total_cost == Decimal(1015)


async def test_bridge_create_deposit_sends_seed_004_body(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    payload = spec.request_example(DEPOSIT, "POST")
    route = router.post(DEPOSIT).respond(200, json=spec.response(DEPOSIT, "POST", 200))
    deposit = await kotani.bridge_create_deposit(BridgeDepositRequest.model_validate(payload))
    request = sent(route)
    assert_sent(request, "POST", DEPOSIT)
    # Decimals go out as JSON numbers, datetimes as the same ISO strings: byte-for-byte the example.
    assert body(request) == payload
    spec.check(spec.request_schema(DEPOSIT, "POST"), body(request))
    assert deposit.kotani_reference_id == "KOTANI-REF-789"
    assert deposit.status is DepositStatus.DEPOSIT_INITIATED
    assert deposit.refund_config.refund_amount_msat == 150_000_000
    assert deposit.refund_config.primary_method is RefundMethod.CRYPTO_INVOICE


async def test_bridge_status_parses_seed_003(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    answer = spec.response(BRIDGE_STATUS, "GET", 200)
    route = router.get("/api/v3/deposit/crypto-bridge/status/KOTANI-REF-789").respond(
        200, json=answer
    )
    status = await kotani.bridge_status("KOTANI-REF-789")
    assert_sent(sent(route), "GET", "/api/v3/deposit/crypto-bridge/status/KOTANI-REF-789")
    assert status.status is DepositStatus.PAYMENT_SENT
    assert status.stages.deposit.amount_msat == 150_000_000
    assert status.refund_config is not None
    assert status.refund_config.expires_at is not None
    assert status.refund_config.expires_at.isoformat() == "2024-11-22T13:00:00+00:00"


async def test_bridge_refund_config_get(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    # 200 body: RefundConfigDto plus the counters listed on the GET refund-config page (seed 001).
    data = spec.example("RefundConfigDto") | {"regeneration_count": 1, "regenerations_remaining": 2}
    path = "/api/v3/deposit/crypto-bridge/KOTANI-BR-1/refund-config"
    route = router.get(path).respond(200, json=envelope(data))
    config = await kotani.bridge_refund_config("KOTANI-BR-1")
    assert_sent(sent(route), "GET", path)
    assert config.regeneration_count == 1
    assert config.refund_payment_hash == "a1b2c3d4e5f6..."


@pytest.mark.parametrize("with_config", [True, False])
async def test_bridge_regenerate_posts_once(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec, with_config: bool
) -> None:
    data = spec.example("RefundConfigDto") if with_config else {}
    path = "/api/v3/deposit/crypto-bridge/KOTANI-BR-1/refund-config"
    route = router.post(path).respond(200, json=envelope(data, "Refund config regenerated"))
    config = await kotani.bridge_regenerate_refund_config("KOTANI-BR-1")
    assert route.call_count == 1
    assert_sent(sent(route), "POST", path)
    assert sent(route).content == b""
    assert (config is not None) is with_config


# --- Kotani's error answers -------------------------------------------------------------------

KES_1000 = BridgeRateRequest(source_currency="KES", source_amount=Decimal(1000))
ERRORS = {
    400: KotaniBadRequest,
    401: KotaniUnauthorized,
    404: KotaniNotFound,
    422: KotaniBadRequest,
    429: KotaniRateLimited,
}


@pytest.mark.parametrize(
    ("path", "method", "call"),
    [
        (SUBMIT, "POST", lambda k: k.submit_refund_invoice("TXN-1", "lnbc1")),
        (RETRY, "POST", lambda k: k.retry_refund("TXN-1")),
        (MULTI, "POST", lambda k: k.retry_refunds(["TXN-1"])),
        (RATE, "POST", lambda k: k.bridge_rate(KES_1000)),
        (BRIDGE_STATUS, "GET", lambda k: k.bridge_status("TXN-1")),
        (REFUND_CONFIG, "GET", lambda k: k.bridge_refund_config("TXN-1")),
        (REFUND_CONFIG, "POST", lambda k: k.bridge_regenerate_refund_config("TXN-1")),
    ],
)
async def test_documented_error_answers_become_typed_errors(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec, path: str, method: str, call: Any
) -> None:
    statuses = [s for s in spec.documented_statuses(path, method) if s >= 400]
    assert statuses, "the OpenAPI documents at least one error answer"
    for status in statuses:
        router.routes.clear()
        answer = spec.response(path, method, status)
        route = router.route(method=method).respond(status, json=answer)
        with pytest.raises(ERRORS[status]) as caught:
            await call(kotani)
        assert caught.value.status_code == status
        assert caught.value.kotani_message == answer["message"]
        assert isinstance(caught.value, KotaniError | ReceiverError)
        assert route.call_count == 1  # a 4xx is never retried


async def test_rate_limited_get_honours_retry_after(
    kotani: KotaniClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = router.get(url__regex=r"/status/").mock(
        side_effect=[
            httpx.Response(
                429, headers={"Retry-After": "1"}, json=envelope({}, "Too Many Requests", False)
            ),
            httpx.Response(404, json=envelope({}, "Transaction not found", False)),
        ]
    )
    with pytest.raises(KotaniNotFound):
        await kotani.bridge_status("X")
    assert route.call_count == 2
    assert sleeps.delays == [1.0]


async def test_rate_limited_post_is_not_retried(
    kotani: KotaniClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    route = router.post(RETRY.replace("{referenceId}", "T")).respond(
        429, headers={"Retry-After": "7"}, json=envelope({}, "Too Many Requests", False)
    )
    with pytest.raises(KotaniRateLimited) as caught:
        await kotani.retry_refund("T")
    assert route.call_count == 1
    assert caught.value.retry_after == 7.0
    assert caught.value.headers() == {"Retry-After": "7"}
    assert sleeps.delays == []


async def test_server_error_on_get_is_retried_then_succeeds(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec, sleeps: Sleeps
) -> None:
    route = router.get(url__regex=r"/status/").mock(
        side_effect=[
            httpx.Response(502, text="<html>bad gateway</html>"),
            httpx.Response(503, json=envelope({}, "maintenance", False)),
            httpx.Response(200, json=spec.response(BRIDGE_STATUS, "GET", 200)),
        ]
    )
    status = await kotani.bridge_status("KOTANI-REF-789")
    assert status.kotani_reference_id == "KOTANI-REF-789"
    assert route.call_count == 3
    assert len(sleeps.delays) == 2
    assert all(0 <= d <= POLICY.cap for d in sleeps.delays)


async def test_server_error_on_get_gives_up_after_the_attempts(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.get(url__regex=r"/refund-config").respond(500, json=envelope({}, "boom", False))
    with pytest.raises(KotaniServerError) as caught:
        await kotani.bridge_refund_config("X")
    assert route.call_count == 3
    assert caught.value.status_code == 500
    assert caught.value.kotani_message == "boom"


async def test_server_error_on_post_is_not_retried(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.post(url__regex=r"/submit-refund-invoice/").respond(503)
    with pytest.raises(KotaniServerError):
        await kotani.submit_refund_invoice("T", "lnbc1")
    assert route.call_count == 1


async def test_post_retried_only_when_the_connection_never_opened(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.post(url__regex=r"/retry-refund/").mock(
        side_effect=[httpx.ConnectError("refused"), httpx.Response(200, json=envelope({}))]
    )
    await kotani.retry_refund("T")
    assert route.call_count == 2


@pytest.mark.parametrize("exc", [httpx.ReadTimeout("slow"), httpx.WriteTimeout("slow")])
async def test_post_that_may_have_arrived_is_not_retried(
    kotani: KotaniClient, router: respx.MockRouter, exc: Exception
) -> None:
    route = router.post(url__regex=r"/retry-refund/").mock(side_effect=exc)
    with pytest.raises(KotaniTimeout) as caught:
        await kotani.retry_refund("T")
    assert route.call_count == 1
    assert caught.value.status_code is None
    assert isinstance(caught.value.__cause__, httpx.TimeoutException)


async def test_post_read_error_is_unavailable_and_not_retried(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.post(url__regex=r"/retry-refund/").mock(side_effect=httpx.ReadError("reset"))
    with pytest.raises(KotaniUnavailable) as caught:
        await kotani.retry_refund("T")
    assert not isinstance(caught.value, KotaniTimeout)
    assert route.call_count == 1


async def test_get_timeouts_are_retried_then_reported(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.get(url__regex=r"/refund-status/").mock(side_effect=httpx.ReadTimeout("slow"))
    with pytest.raises(KotaniTimeout) as caught:
        await kotani.refund_status("T")
    assert route.call_count == 3
    assert caught.value.status_code is None


async def test_connect_errors_exhausted_are_unavailable(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    route = router.post(RATE).mock(side_effect=httpx.ConnectError("refused"))
    with pytest.raises(KotaniUnavailable):
        await kotani.bridge_rate(BridgeRateRequest(source_currency="KES", source_amount=Decimal(1)))
    assert route.call_count == 3


async def test_deadline_bounds_a_server_that_never_answers(router: respx.MockRouter) -> None:
    calls: list[httpx.Request] = []

    async def hang(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        await asyncio.sleep(30)
        raise AssertionError("unreachable")

    router.get(url__regex=r"/status/").mock(side_effect=hang)
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with KotaniClient(BASE, SecretStr(API_KEY), 0.3) as client:
        with pytest.raises(KotaniTimeout):
            await client.bridge_status("X")
    assert loop.time() - started < 2.0
    assert len(calls) == 1  # the one deadline covers retries too


async def test_deadline_is_real_against_a_real_slow_server() -> None:
    """No mock: a TCP server that accepts and never answers."""

    release = asyncio.Event()
    handlers: list[asyncio.Task[Any]] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        handlers.append(asyncio.current_task())  # type: ignore[arg-type]
        await release.wait()
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with KotaniClient(f"http://127.0.0.1:{port}", SecretStr(API_KEY), 0.4) as client:
            started = asyncio.get_running_loop().time()
            with pytest.raises(KotaniTimeout):
                await client.retry_refund("T")
            assert asyncio.get_running_loop().time() - started < 2.0
    finally:
        release.set()
        await asyncio.gather(*handlers)
        server.close()
        await server.wait_closed()
    assert len(handlers) == 1  # one connection: the POST was sent once, never repeated


# --- shapes Kotani does not document ----------------------------------------------------------


async def test_success_false_in_a_200_is_a_rejection(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    router.post(url__regex=r"/retry-refund/").respond(
        200, json=envelope({}, "Cannot retry refund", False)
    )
    with pytest.raises(KotaniRejected) as caught:
        await kotani.retry_refund("T")
    assert caught.value.kotani_message == "Cannot retry refund"


@pytest.mark.parametrize("answer", [b"<html>ok</html>", b"[]", b'{"data": {}}'])
async def test_200_without_envelope_is_a_protocol_error(
    kotani: KotaniClient, router: respx.MockRouter, answer: bytes
) -> None:
    router.get(url__regex=r"/status/").respond(200, content=answer)
    with pytest.raises(KotaniProtocolError):
        await kotani.bridge_status("X")


async def test_200_with_wrong_data_is_a_protocol_error(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    answer = spec.response(BRIDGE_STATUS, "GET", 200)
    answer["data"]["status"] = "SOMETHING_ELSE"
    router.get(url__regex=r"/status/").respond(200, json=answer)
    with pytest.raises(KotaniProtocolError) as caught:
        await kotani.bridge_status("X")
    assert "status" in str(caught.value)


async def test_fractional_msat_is_refused(
    kotani: KotaniClient, router: respx.MockRouter, spec: Spec
) -> None:
    data = spec.example("RefundConfigDto") | {"refund_amount_msat": 1500.5}
    router.get(url__regex=r"/refund-config").respond(200, json=envelope(data))
    with pytest.raises(KotaniProtocolError):
        await kotani.bridge_refund_config("X")


async def test_nest_validation_messages_are_joined(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    router.post(RATE).respond(
        400, json={"statusCode": 400, "message": ["a must be x", "b must be y"], "error": "Bad"}
    )
    with pytest.raises(KotaniBadRequest) as caught:
        await kotani.bridge_rate(BridgeRateRequest(source_currency="KES", source_amount=Decimal(1)))
    assert caught.value.kotani_message == "a must be x; b must be y"


# --- secrets and configuration ----------------------------------------------------------------


async def test_api_key_never_in_errors_logs_or_repr(
    kotani: KotaniClient, router: respx.MockRouter
) -> None:
    router.get(url__regex=r"/status/").mock(side_effect=httpx.ConnectError("refused"))
    router.post(url__regex=r"/retry-refund/").respond(401, json=envelope({}, "Unauthorized", False))
    texts = [repr(kotani), str(kotani)]
    with capture_logs() as logs:
        for call in (kotani.bridge_status("X"), kotani.retry_refund("X")):
            with pytest.raises(KotaniError) as caught:
                await call
            texts += [str(caught.value), repr(caught.value), repr(caught.value.__cause__)]
    texts += [repr(entry) for entry in logs]
    assert any(entry["event"] == "kotani.retry" for entry in logs)
    assert all(API_KEY not in text for text in texts)


async def test_missing_api_key_fails_before_sending(router: respx.MockRouter) -> None:
    async with KotaniClient(BASE, None, 5.0) as client:
        with pytest.raises(ConfigError, match="RECEIVER_KOTANI_API_KEY"):
            await client.bridge_status("X")
    assert not router.calls


async def test_from_settings_uses_the_normalised_host_key_and_timeout() -> None:
    settings = Settings(
        kotani_base_url="production", kotani_api_key=SecretStr("k" * 20), kotani_timeout=3.5
    )
    with respx.mock(assert_all_mocked=True) as mock:
        route = mock.get("https://api.kotanipay.com/api/v3/offramp/refund-status/T").respond(
            200, json=envelope({})
        )
        async with KotaniClient.from_settings(settings) as client:
            assert client.timeout == 3.5
            await client.refund_status("T")
    assert route.calls[0].request.headers["Authorization"] == "Bearer " + "k" * 20


async def test_transport_is_pluggable(spec: Spec) -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json=spec.response(RATE, "POST", 200))

    async with KotaniClient(
        "http://kotani.test", SecretStr(API_KEY), 2.0, transport=httpx.MockTransport(handler)
    ) as client:
        await client.bridge_rate(BridgeRateRequest(source_currency="KES", source_amount=Decimal(5)))
    assert [r.url.path for r in seen] == [RATE]


async def test_a_hostile_answer_is_refused_unread_and_not_repeated(
    kotani: KotaniClient, router: respx.MockRouter, sleeps: Sleeps
) -> None:
    # Something in Kotani's place answers with stacked encodings (a gzip bomb's envelope).
    bomb = gzip.compress(gzip.compress(json.dumps(envelope({})).encode()))
    route = router.get(url__regex=r"/refund-status/").respond(
        200, headers={"Content-Encoding": "gzip, gzip"}, content=bomb
    )
    with pytest.raises(KotaniProtocolError, match="refused unread") as caught:
        await kotani.refund_status("R-1")
    assert route.call_count == 1 and sleeps.delays == []
    assert caught.value.code == "kotani.protocol"
