"""An httpx transport that puts backend calls on the wire through aiohttp's connection pool.

``HttpBackendClient`` keeps speaking httpx (``httpx.Request`` in, ``httpx.Response`` out, respx
in the tests); only the wire underneath is aiohttp's. Why: httpx's own stack (its client,
httpcore and h11, pure Python) costs about 1.4 ms of CPU per call on this project's 2-core
benchmark machine, aiohttp's client (a C HTTP parser) under 0.5 ms, and a backend call sits on
every mint (``bench/backends.py`` measures the whole path).

aiohttp's failures become httpx's exception classes, so ``HttpBackendClient``'s one mapping to
the service's error tree stays as it is; the aiohttp exception is kept as ``__cause__`` (a TLS
failure is told apart by the ``ssl.SSLError`` in that chain):

    aiohttp.ConnectionTimeoutError (connecting, or waiting for a pooled connection)
                                                       -> httpx.ConnectTimeout
    aiohttp.SocketTimeoutError, other ServerTimeoutError (waiting for the answer)
                                                       -> httpx.ReadTimeout
    aiohttp.ClientConnectorError (refused, DNS, TLS)   -> httpx.ConnectError
    aiohttp.ServerDisconnectedError, ClientPayloadError,
    a malformed answer                                 -> httpx.RemoteProtocolError
    any other aiohttp.ClientError or OSError           -> httpx.ReadError

Answers are read whole (backends answer small JSON documents) up to ``MAX_ANSWER`` bytes; a
larger one is a protocol error rather than unbounded memory. Compressed answers are decoded by
httpx, as before (aiohttp's own decompression is off so nothing is decoded twice).
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import aiohttp
import httpx

MAX_ANSWER = 1024 * 1024
"""Bytes of an answer body read at most."""

# Set by aiohttp from the URL and the body; httpx's values are not forwarded.
_WIRE_HEADERS = frozenset({"host", "content-length", "transfer-encoding", "connection"})


class AiohttpTransport(httpx.AsyncBaseTransport):
    """``httpx.AsyncBaseTransport`` over one ``aiohttp.ClientSession`` (pooled, keep-alive)."""

    def __init__(self, *, verify: ssl.SSLContext | bool = True, max_connections: int = 100) -> None:
        self._ssl: ssl.SSLContext | bool = verify
        self._max_connections = max_connections
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _current_session(self) -> aiohttp.ClientSession:
        # Created on first use, inside the loop that uses it (aiohttp binds a session to a loop).
        loop = asyncio.get_running_loop()
        if self._session is None or self._session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self._max_connections, limit_per_host=0, ssl=self._ssl
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                auto_decompress=False,
                cookie_jar=aiohttp.DummyCookieJar(),
                skip_auto_headers=("User-Agent", "Accept-Encoding", "Accept", "Content-Type"),
                trust_env=False,
            )
            self._loop = loop
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts: dict[str, Any] = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(
            total=None,
            connect=timeouts.get("pool"),
            sock_connect=timeouts.get("connect"),
            sock_read=timeouts.get("read"),
        )
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _WIRE_HEADERS
        ]
        body = await request.aread()
        session = self._current_session()
        try:
            async with session.request(
                request.method,
                str(request.url),
                headers=headers,
                data=body or None,
                allow_redirects=False,
                timeout=timeout,
            ) as answer:
                content = await _read_bounded(answer)
                return httpx.Response(
                    answer.status,
                    headers=answer.raw_headers,
                    content=content,
                    request=request,
                    extensions={"http_version": b"HTTP/1.1"},
                )
        except aiohttp.ConnectionTimeoutError as exc:
            raise httpx.ConnectTimeout(str(exc) or "connect timeout", request=request) from exc
        except aiohttp.ServerTimeoutError as exc:
            raise httpx.ReadTimeout(str(exc) or "read timeout", request=request) from exc
        except aiohttp.ClientConnectorError as exc:
            raise httpx.ConnectError(str(exc), request=request) from exc
        except (
            aiohttp.ServerDisconnectedError,
            aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError,
        ) as exc:
            raise httpx.RemoteProtocolError(str(exc), request=request) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise httpx.ReadError(str(exc) or type(exc).__name__, request=request) from exc

    async def aclose(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None


async def _read_bounded(answer: aiohttp.ClientResponse) -> bytes:
    if answer.content_length is not None and answer.content_length <= MAX_ANSWER:
        return await answer.read()  # the usual case: a declared, small length
    chunks: list[bytes] = []
    size = 0
    async for chunk in answer.content.iter_any():
        size += len(chunk)
        if size > MAX_ANSWER:
            raise aiohttp.ClientPayloadError(f"answer larger than {MAX_ANSWER} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
