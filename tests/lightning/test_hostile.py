"""A hostile node on loopback: a gzip bomb, 64 MiB of headers, a 64 MiB body.

Each is served for real by a raw asyncio server in this process; the receiver's side (the
failover chain over [hostile, good LND double]) runs in a subprocess
(``tests/support/hostile_chain.py``) whose peak RSS is its own. Every invoice must come verified
from the good node, every hostile attempt must be ``backend.hostile``, and the receiver's peak
RSS must stay under 300 MB (it reached 1,112 MB on the gzip bomb before answers were bounded).
"""

from __future__ import annotations

import asyncio
import json
import sys
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from pathlib import Path

import pytest

MiB = 1024 * 1024
MINTS = 3
ROOT = Path(__file__).resolve().parents[2]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _gzip(chunks: int, chunk: bytes) -> bytes:
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    out = [packer.compress(chunk) for _ in range(chunks)]
    out.append(packer.flush())
    return b"".join(out)


@pytest.fixture(scope="module")
def gzip_bomb() -> bytes:
    """512 MiB of zeros, gzipped twice: about a kilobyte on the wire."""
    inner = _gzip(512, bytes(MiB))
    return _gzip(1, inner)


@asynccontextmanager
async def hostile_server(handler: Handler) -> AsyncIterator[str]:
    async def connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:  # every request on a kept-alive connection gets the same answer
                head = await reader.readuntil(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        await reader.readexactly(int(line.split(b":")[1]))
                await handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the receiver hung up on it: what it should do
        finally:
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    server = await asyncio.start_server(connection, "127.0.0.1", 0)
    try:
        yield f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        server.close()
        await server.wait_closed()


async def run_chain(url: str) -> dict[str, object]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.hostile_chain",
        url,
        str(MINTS),
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode == 0, err.decode()[-2000:]
    result: dict[str, object] = json.loads(out.decode().strip().splitlines()[-1])
    return result


def assert_survived(result: dict[str, object]) -> None:
    print(f"peak RSS {result['peak_rss_mb']:.0f} MB")
    assert result["payees"] == [result["good"]] * MINTS  # verified, signed by the good node
    assert result["hostile_codes"] == ["backend.hostile"] * MINTS
    assert isinstance(result["peak_rss_mb"], float) and result["peak_rss_mb"] < 300


@pytest.mark.parametrize(
    "encoding",
    [b"gzip, gzip", b"gzip"],
    ids=["double-gzip-512MiB", "gzip-64MiB"],  # refused unread; counted as decoded
)
async def test_a_gzip_bomb_is_refused_and_the_next_node_answers(
    gzip_bomb: bytes, encoding: bytes
) -> None:
    if encoding == b"gzip":
        bomb_body = _gzip(64, bytes(MiB))  # one layer: ~64 KB on the wire, decoded and counted
    else:
        bomb_body = gzip_bomb
        assert len(bomb_body) < 2048

    async def bomb(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Content-Encoding: %s\r\nContent-Length: %d\r\n\r\n"
            % (encoding, len(bomb_body))
            + bomb_body
        )
        await writer.drain()

    async with hostile_server(bomb) as url:
        assert_survived(await run_chain(url))


async def test_64_mib_of_headers_are_refused_and_the_next_node_answers() -> None:
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"

    async def headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\r\n")
        for _ in range(64 * MiB // len(line)):
            writer.write(line)
            await writer.drain()
        writer.write(b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with hostile_server(headers) as url:
        assert_survived(await run_chain(url))


async def test_many_small_headers_are_refused() -> None:
    async def headers(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines = b"".join(b"X-%d: 1\r\n" % i for i in range(5000))  # ~50 KiB: under h11's cap
        writer.write(b"HTTP/1.1 200 OK\r\n" + lines + b"Content-Length: 2\r\n\r\n{}")
        await writer.drain()

    async with hostile_server(headers) as url:
        assert_survived(await run_chain(url))


async def test_a_64_mib_body_is_refused_and_the_next_node_answers() -> None:
    chunk = b"x" * 65536

    async def body(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # Chunked: no length to refuse up front, the bytes must be counted as they come.
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        for _ in range(64 * MiB // len(chunk)):
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async with hostile_server(body) as url:
        assert_survived(await run_chain(url))
