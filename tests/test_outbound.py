"""receiver/outbound.py: the one client factory, bounded answers, the one classification."""

from __future__ import annotations

import gzip
import ssl
import zlib
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
import respx

from receiver.outbound import (
    Fault,
    HostileAnswer,
    RedirectRefused,
    StatusClass,
    TargetRefused,
    classify,
    clip,
    exchange,
    message_of,
    never_sent,
    outbound_client,
    status_class,
)

URL = "https://node.test/v1/x"


@pytest.fixture
def router() -> Iterator[respx.MockRouter]:
    with respx.mock(assert_all_called=True, assert_all_mocked=True) as mock:
        yield mock


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with outbound_client(timeout=2.0) as http:
        yield http


async def test_the_client_asks_for_plain_json_and_follows_nothing_by_itself(
    router: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    route = router.get(URL).respond(302, headers={"Location": "https://elsewhere.test/"})
    answer = await exchange(client, "GET", URL, timeout=2.0)
    assert answer.status == 302 and route.call_count == 1
    sent = route.calls.last.request
    assert sent.headers["accept-encoding"] == "identity"
    assert sent.headers["accept"] == "application/json"
    assert client.follow_redirects is False and client.trust_env is False


@pytest.mark.parametrize(
    ("encoding", "packed"),
    [
        ("gzip", gzip.compress(b'{"ok": true}')),
        ("deflate", zlib.compress(b'{"ok": true}')),
        ("identity", b'{"ok": true}'),
    ],
)
async def test_an_encoded_answer_is_decoded_once(
    router: respx.MockRouter, client: httpx.AsyncClient, encoding: str, packed: bytes
) -> None:
    router.get(URL).respond(200, headers={"Content-Encoding": encoding}, content=packed)
    assert (await exchange(client, "GET", URL, timeout=2.0)).json() == {"ok": True}


@pytest.mark.parametrize(
    ("headers", "content", "match"),
    [
        ({"Content-Encoding": "gzip, gzip"}, gzip.compress(gzip.compress(b"{}")), "stacked"),
        ({"Content-Encoding": "br"}, b"\x0b\x01\x80{}\x03", "unknown content encoding"),
        ({"Content-Encoding": "gzip"}, gzip.compress(bytes(4096)), "larger than 1000"),
        ({}, b"x" * 1001, "1001 bytes \\(at most 1000\\)"),  # its Content-Length says so
    ],
    ids=["stacked", "unknown", "inflates-past-limit", "plain-past-limit"],
)
async def test_a_hostile_answer_is_refused(
    router: respx.MockRouter,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    content: bytes,
    match: str,
) -> None:
    router.get(URL).respond(200, headers=headers, content=content)
    with pytest.raises(HostileAnswer, match=match) as caught:
        await exchange(client, "GET", URL, timeout=2.0, limit=1000)
    assert classify(caught.value)[0] is Fault.HOSTILE


async def test_too_many_header_lines_are_refused(
    router: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    router.get(URL).respond(200, headers=[(f"X-{i}", "1") for i in range(101)], json={})
    with pytest.raises(HostileAnswer, match="more than 100 header lines"):
        await exchange(client, "GET", URL, timeout=2.0)


async def test_redirects_only_when_asked_each_target_checked(
    router: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    router.get(URL).respond(307, headers={"Location": "https://moved.test/y"})
    router.get("https://moved.test/y").respond(200, json={"moved": True})
    seen: list[str] = []

    async def check(url: httpx.URL) -> None:
        seen.append(str(url))

    answer = await exchange(client, "GET", URL, timeout=2.0, redirects=5, check=check)
    assert answer.json() == {"moved": True} and str(answer.url) == "https://moved.test/y"
    assert seen == ["https://moved.test/y"]  # the first URL is the caller's to check

    async def refuse(url: httpx.URL) -> None:
        raise TargetRefused("not there")

    with pytest.raises(TargetRefused):
        await exchange(client, "GET", URL, timeout=2.0, redirects=5, check=refuse)


@pytest.mark.parametrize(
    ("method", "location", "match"),
    [
        ("GET", "http://node.test/plain", "from https to http"),
        ("POST", "https://node.test/elsewhere", "POST answered with a redirect"),
    ],
)
async def test_redirects_never_downgrade_nor_follow_a_post(
    router: respx.MockRouter, client: httpx.AsyncClient, method: str, location: str, match: str
) -> None:
    router.route(method=method, url=URL).respond(302, headers={"Location": location})
    with pytest.raises(RedirectRefused, match=match):
        await exchange(client, method, URL, timeout=2.0, redirects=5)


def test_failures_are_classed_once() -> None:
    request = httpx.Request("GET", URL)
    tls = httpx.ConnectError("handshake", request=request)
    tls.__cause__ = ssl.SSLCertVerificationError("CERTIFICATE_VERIFY_FAILED")
    cases = {
        TimeoutError(): Fault.TIMEOUT,
        httpx.ReadTimeout("slow", request=request): Fault.TIMEOUT,
        httpx.ConnectError("refused", request=request): Fault.CONNECT,
        tls: Fault.TLS,
        httpx.RemoteProtocolError("Receive buffer too long", request=request): Fault.HOSTILE,
        httpx.RemoteProtocolError("Server disconnected", request=request): Fault.TRANSPORT,
        httpx.UnsupportedProtocol("ftp", request=request): Fault.INVALID_URL,
        RedirectRefused("loop"): Fault.REDIRECT,
    }
    assert {exc: classify(exc)[0] for exc in cases} == cases
    assert never_sent(httpx.ConnectError("x")) and not never_sent(httpx.ReadTimeout("x"))


def test_statuses_are_classed_once() -> None:
    assert [status_class(s) for s in (401, 403, 404, 429, 400, 422, 409, 500, 503, 302, 101)] == [
        StatusClass.AUTH,
        StatusClass.AUTH,
        StatusClass.NOT_FOUND,
        StatusClass.RATE_LIMITED,
        StatusClass.BAD_REQUEST,
        StatusClass.BAD_REQUEST,
        StatusClass.REFUSED,
        StatusClass.SERVER,
        StatusClass.SERVER,
        StatusClass.UNEXPECTED,
        StatusClass.UNEXPECTED,
    ]


def test_messages_from_the_usual_shapes_clipped_and_scrubbed() -> None:
    assert message_of({"message": ["amount must be > 0", "currency missing"]}) == (
        "amount must be > 0; currency missing"
    )
    assert message_of({"detail": [{"msg": "field required"}]}) == "field required"
    assert message_of({"status": "ERROR", "reason": "unknown user"}) == "unknown user"
    assert message_of({"nothing": 1}) == ""
    text = clip("a\n b key-123 " + "x" * 500, ["key-123"], limit=50)
    assert text.startswith("a b *** x") and len(text) == 50 and "key-123" not in text


async def test_raw_content_goes_out_byte_for_byte(
    router: respx.MockRouter, client: httpx.AsyncClient
) -> None:
    # What the webhook forwarder sends: the signed body exactly as received.
    route = router.post(URL).respond(204)
    body = b'{"b":1,  "a":2}'
    answer = await exchange(
        client, "POST", URL, timeout=2.0, content=body, headers={"Content-Type": "x/y"}
    )
    assert answer.status == 204 and answer.body == b""
    assert route.calls.last.request.content == body
    assert route.calls.last.request.headers["content-type"] == "x/y"
