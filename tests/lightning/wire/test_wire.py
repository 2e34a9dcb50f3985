"""The backends' wire (httpx under HttpBackendClient and receiver.outbound) against real sockets.

Each failure a node or a network can produce, made for real on loopback, must come out as the
service's own error (never a parser's or a socket's exception, never a 500), and TLS must verify
against LND's certificate file or the system trust store.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest
import trustme

from receiver.amounts import Msat
from receiver.errors import (
    BackendHostile,
    BackendProtocolError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from receiver.lightning._http import HttpBackendClient
from receiver.lightning.base import BackendContext
from receiver.lightning.lnd import LndBackend, LndConfig
from receiver.outbound import MAX_ANSWER
from tests.lightning.lnd_double import MACAROON, LndDouble
from tests.support.server import free_port

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@asynccontextmanager
async def raw_server(handler: Handler) -> AsyncIterator[str]:
    """A TCP server on loopback whose every connection runs ``handler`` (bytes, not HTTP)."""
    running: set[asyncio.Task[None]] = set()

    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        running.add(asyncio.current_task())  # type: ignore[arg-type]
        try:
            await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)
        await server.wait_closed()


async def read_request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            await reader.readexactly(int(line.split(b":")[1]))
    return head


def answer(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    lines = [f"HTTP/1.1 {status}", f"Content-Length: {len(body)}", *headers, "", ""]
    return "\r\n".join(lines).encode() + body


async def call(url: str, seconds: float = 2.0) -> object:
    client = HttpBackendClient("node", url, timeout=seconds)
    try:
        return await client.request("POST", "/v1/x", json_body={"a": 1})
    finally:
        await client.aclose()


async def test_a_plain_json_answer_and_what_went_on_the_wire() -> None:
    seen: list[bytes] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await read_request(reader))
        writer.write(answer(b'{"ok": true}', "Content-Type: application/json"))
        await writer.drain()

    async with raw_server(handler) as url:
        assert await call(url) == {"ok": True}
    head = seen[0].decode().lower()
    assert head.startswith("post /v1/x http/1.1")
    assert "accept-encoding: identity" in head and "content-type: application/json" in head


async def test_a_compressed_answer_is_decoded_once() -> None:
    body = gzip.compress(json.dumps({"bolt11": "lnbc1"}).encode())

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(body, "Content-Encoding: gzip", "Content-Type: application/json"))
        await writer.drain()

    async with raw_server(handler) as url:
        assert await call(url) == {"bolt11": "lnbc1"}


async def test_nobody_listening_is_unavailable() -> None:
    with pytest.raises(BackendUnavailable, match=r"cannot connect to 127\.0\.0\.1"):
        await call(f"http://127.0.0.1:{free_port()}")


async def test_a_node_that_never_answers_times_out_on_time() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.sleep(30)

    async with raw_server(handler) as url:
        started = asyncio.get_running_loop().time()
        with pytest.raises(BackendTimeout):
            await call(url, seconds=0.3)
        assert asyncio.get_running_loop().time() - started < 1.0


@pytest.mark.parametrize(
    "reply",
    [
        b"SSH-2.0-OpenSSH_9.2\r\n\r\n",  # not HTTP at all
        answer(b'{"ok": true}')[:-5],  # closes before the body is complete
        b"",  # closes without a word
    ],
    ids=["not-http", "truncated", "closed"],
)
async def test_a_broken_answer_is_unavailable(reply: bytes) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(reply)
        await writer.drain()

    async with raw_server(handler) as url:
        with pytest.raises(BackendUnavailable, match=r"connection to 127\.0\.0\.1:\d+ failed"):
            await call(url)


@pytest.mark.parametrize("declared", [False, True], ids=["chunked", "content-length"])
async def test_an_oversized_answer_is_cut_off(declared: bool) -> None:
    chunk = b"x" * 65536
    chunks = MAX_ANSWER // len(chunk) + 4

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        if declared:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % (chunks * len(chunk)))
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(chunks):
            writer.write(chunk if declared else b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()

    async with raw_server(handler) as url:
        with pytest.raises(
            BackendHostile, match=f"larger than {MAX_ANSWER}|of {chunks * len(chunk)} bytes"
        ):
            await call(url)


async def test_a_redirect_is_not_followed_by_node_clients() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer(b"", "Location: http://elsewhere.test/", status="307 Moved"))
        await writer.drain()

    async with raw_server(handler) as url:
        with pytest.raises(BackendProtocolError, match="unexpected HTTP 307"):
            await call(url)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple[str, str]]:
    """A CA file (what LND's tls.cert is to a client) and a server certificate for 127.0.0.1."""
    ca = trustme.CA()
    root = tmp_path_factory.mktemp("tls")
    ca_file, chain, key = root / "tls.cert", root / "chain.pem", root / "key.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    issued = ca.issue_cert("127.0.0.1")
    issued.cert_chain_pems[0].write_to_path(str(chain))
    for extra in issued.cert_chain_pems[1:]:
        extra.write_to_path(str(chain), append=True)
    issued.private_key_pem.write_to_path(str(key))
    return ca_file, (str(chain), str(key))


def lnd(url: str, context: BackendContext, cert: Path | None) -> LndBackend:
    config = LndConfig(_env_file=None, url=url, macaroon=MACAROON, cert=cert)  # type: ignore[call-arg]
    return LndBackend(config, context)


async def test_lnd_over_tls_with_its_cert_file(
    tls_files: tuple[Path, tuple[str, str]], context: BackendContext
) -> None:
    ca_file, server_files = tls_files
    async with LndDouble().running(tls=server_files) as node:
        assert node.url.startswith("https://")
        backend = lnd(node.url, context, ca_file)
        try:
            minted = await backend.create_invoice(Msat(2000), "tls", 600)
            info = await backend.info()
        finally:
            await backend.aclose()
    assert minted.bolt11 == node.minted[0]
    assert info.node_id == node.node_id


async def test_lnd_over_tls_without_its_cert_file_is_refused_clearly(
    tls_files: tuple[Path, tuple[str, str]], context: BackendContext
) -> None:
    _, server_files = tls_files
    async with LndDouble().running(tls=server_files) as node:
        backend = lnd(node.url, context, None)  # the system trust store does not know this CA
        try:
            refused = r"TLS handshake with 127\.0\.0\.1:\d+ failed"
            with pytest.raises(BackendUnavailable, match=refused):
                await backend.create_invoice(Msat(2000), "tls", 600)
        finally:
            await backend.aclose()
    assert node.calls == 0


def test_a_client_with_credentials_never_follows_redirects() -> None:
    with pytest.raises(ValueError, match="does not follow redirects"):
        HttpBackendClient("node", "https://n.test", secrets=["rune"], follow_redirects=True)


async def test_a_kept_alive_connection_carries_the_next_calls() -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        for n in range(3):
            await read_request(reader)
            writer.write(answer(b'{"n": %d}' % n))
            await writer.drain()

    async with raw_server(handler) as url:
        client = HttpBackendClient("node", url)
        try:
            answers = [await client.request("GET", "/v1/x") for _ in range(3)]
        finally:
            await client.aclose()
    assert answers == [{"n": 0}, {"n": 1}, {"n": 2}]
    assert len(connections) == 1


@pytest.mark.parametrize("how", ["connection-close", "closes-after-answer"])
async def test_a_connection_the_node_ends_is_never_reused(how: str) -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        await read_request(reader)
        extra = ("Connection: close",) if how == "connection-close" else ()
        writer.write(answer(b'{"n": %d}' % len(connections), *extra))
        await writer.drain()
        if how == "connection-close":
            await reader.read()  # the client must be the one to close

    async with raw_server(handler) as url:
        client = HttpBackendClient("node", url)
        try:
            first = await client.request("GET", "/v1/x")
            await asyncio.sleep(0.05)  # the node's close reaches the client
            second = await client.request("GET", "/v1/x")
        finally:
            await client.aclose()
    assert (first, second) == ({"n": 1}, {"n": 2})
    assert len(connections) == 2


async def test_a_call_given_up_never_hands_its_late_answer_to_the_next() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await read_request(reader)
            if b"/slow" in head:
                await asyncio.sleep(0.3)
            writer.write(answer(b'{"path": "%s"}' % head.split(b" ")[1]))
            await writer.drain()

    async with raw_server(handler) as url:
        client = HttpBackendClient("node", url, timeout=0.1)
        try:
            with pytest.raises(BackendTimeout):
                await client.request("GET", "/slow")
            client.timeout = 2.0
            # At once, while the node is still working on /slow: its answer must not be taken
            # for this one's (a pooled connection would carry it).
            assert await client.request("GET", "/fast") == {"path": "/fast"}
        finally:
            await client.aclose()


async def test_an_answer_without_a_length_runs_until_the_node_closes() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b'HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{"old": true}')
        await writer.drain()

    async with raw_server(handler) as url:
        assert await call(url) == {"old": True}


async def test_an_informational_answer_is_skipped() -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n" + answer(b'{"ok": 1}'))
        await writer.drain()

    async with raw_server(handler) as url:
        assert await call(url) == {"ok": 1}


def test_a_credential_no_header_could_carry_is_a_setting_error() -> None:
    secret = "key\r\nX-Injected: 1"
    with pytest.raises(ConfigError) as caught:
        HttpBackendClient("node", "http://127.0.0.1:1", headers={"X-Api-Key": secret})
    assert "X-Api-Key" in str(caught.value)
    assert "key\r" not in str(caught.value) and "Injected" not in str(caught.value)
    with pytest.raises(ConfigError):
        HttpBackendClient("node", "http://127.0.0.1:1", headers={"X-Api-Key": "clé"})


async def test_calls_beyond_the_connection_limit_wait_for_a_free_one() -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        while True:
            await read_request(reader)
            await asyncio.sleep(0.2)
            writer.write(answer(b'{"ok": true}'))
            await writer.drain()

    async with raw_server(handler) as url:
        client = HttpBackendClient("node", url, max_connections=1)
        try:
            both = await asyncio.gather(
                client.request("GET", "/v1/x"), client.request("GET", "/v1/x")
            )
            slow = asyncio.ensure_future(client.request("GET", "/v1/x"))
            await asyncio.sleep(0.05)
            with pytest.raises(TimeoutError):  # no slot frees within the caller's scope
                async with asyncio.timeout(0.1):
                    await client.request("GET", "/v1/x")
            assert await slow == {"ok": True}
        finally:
            await client.aclose()
    assert both == [{"ok": True}, {"ok": True}]
    assert len(connections) == 1
