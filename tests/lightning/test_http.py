"""The shared HTTP plumbing against a real local server: timeouts, error mapping, clipping."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from receiver.errors import (
    BackendAuthError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
)
from receiver.lightning._http import HttpBackendClient
from receiver.outbound import clip
from tests.support.server import free_port, serve_app

SECRET = "s3cr3t-macaroon-hex-0011223344556677"


async def slow(request: Request) -> Response:
    await asyncio.sleep(0.3)
    return JSONResponse({"ok": True})


async def status(request: Request) -> Response:
    code = int(request.path_params["code"])
    return JSONResponse({"message": f"node says {code} " + request.headers.get("x-key", "")}, code)


async def html(request: Request) -> Response:
    return PlainTextResponse("<html>gateway</html>")


async def echo(request: Request) -> Response:
    return JSONResponse(
        {"key": request.headers.get("x-key"), "body": (await request.body()).decode()}
    )


def node_app(release: asyncio.Event) -> Starlette:
    async def hang(request: Request) -> Response:
        # Hangs until the test ends (so the server can stop without waiting for it).
        await release.wait()
        return JSONResponse({})

    return Starlette(
        routes=[
            Route("/hang", hang),
            Route("/slow", slow),
            Route("/status/{code}", status),
            Route("/html", html),
            Route("/echo", echo, methods=["GET", "POST"]),
        ]
    )


@pytest.fixture
async def client() -> AsyncIterator[HttpBackendClient]:
    release = asyncio.Event()
    async with serve_app(node_app(release)) as url:
        http = HttpBackendClient(
            "node", url, headers={"X-Key": SECRET}, secrets=[SECRET], timeout=0.5
        )
        try:
            yield http
        finally:
            release.set()
            await http.aclose()


async def test_json_answer_and_credential_header(client: HttpBackendClient) -> None:
    answer = await client.request("POST", "/echo", json_body={"a": 1})
    assert answer == {"key": SECRET, "body": '{"a":1}'}


async def test_hanging_node_times_out_on_time(client: HttpBackendClient) -> None:
    started = time.monotonic()
    with pytest.raises(BackendTimeout) as caught:
        await client.request("GET", "/hang")
    elapsed = time.monotonic() - started
    assert 0.45 <= elapsed < 1.0
    assert caught.value.code == "backend.timeout"
    assert caught.value.__cause__ is not None


async def test_slow_node_within_its_time_answers(client: HttpBackendClient) -> None:
    assert await client.request("GET", "/slow") == {"ok": True}  # 0.3 s of its 0.5 s


async def test_the_callers_one_scope_bounds_the_call(client: HttpBackendClient) -> None:
    # What BackendChain does with a backend's share of the deadline: one asyncio.timeout,
    # shorter than the client's own bound, cancels the call where it is.
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.1):
            await client.request("GET", "/hang")
    assert time.monotonic() - started < 0.4


@pytest.mark.parametrize(
    ("code", "error"),
    [
        (500, BackendUnavailable),
        (502, BackendUnavailable),
        (400, BackendRejected),
        (404, BackendRejected),
        (401, BackendAuthError),
        (403, BackendAuthError),
        (302, BackendProtocolError),
    ],
)
async def test_status_mapping_keeps_message_and_scrubs_secrets(
    client: HttpBackendClient, code: int, error: type[Exception]
) -> None:
    with pytest.raises(error) as caught:
        await client.request("GET", f"/status/{code}")
    message = str(caught.value)
    assert SECRET not in message
    if code in (500, 502, 400, 404):
        assert f"node says {code} ***" in message


async def test_allowed_status_returns_none(client: HttpBackendClient) -> None:
    assert await client.request("GET", "/status/404", allow_status=(404,)) is None


async def test_non_json_is_protocol_error(client: HttpBackendClient) -> None:
    with pytest.raises(BackendProtocolError, match="not JSON"):
        await client.request("GET", "/html")


async def test_refused_connection_is_unavailable() -> None:
    port = free_port()  # nothing listens there
    http = HttpBackendClient("node", f"http://127.0.0.1:{port}", headers={"X-Key": SECRET})
    try:
        with pytest.raises(BackendUnavailable, match=f"cannot connect to 127.0.0.1:{port}"):
            await http.request("GET", "/x")
    finally:
        await http.aclose()
    assert SECRET not in repr(http)


def test_clip_trims_and_scrubs() -> None:
    text = clip("line one\n  line two " + SECRET + " " + "x" * 500, [SECRET])
    assert "\n" not in text and SECRET not in text and len(text) <= 200
    assert text.startswith("line one line two ***")
