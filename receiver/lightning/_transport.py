"""The backends' wire: HTTP/1.1 over asyncio, answers parsed by llhttp (httptools).

``HttpBackendClient`` hands this module a ``Call`` (method, URL, headers, body, timeout) and
gets an ``Answer`` (status, headers, body) back; that is all of the interface. It is small
because the traffic is: one JSON request, one JSON answer of a few kB, to one node over a
kept-alive connection. What it does not do is refused rather than half done: no proxies, no
HTTP/2, no streaming, no ``Expect: 100-continue``, and never a redirect (``HttpBackendClient``
decides about those).

Why not a general client: every mint waits on one backend call, and the general clients' own
layers cost more than the rest of the service's work on that call. Measured on this project's
2-core benchmark machine: a bare proxy in front of a real LNbits added 0.75 ms to LNbits' p50
with a raw exchange and 1.65 ms with aiohttp's client (httpx's own stack, ~1.4 ms of CPU per
call, more still); and a call through ``HttpBackendClient`` to a local server costs ~220 µs
of CPU here against ~360 µs when requests and answers were ``httpx`` objects (building
them was most of the difference). ``bench/backends.py`` measures the whole path.

- Framing, chunked bodies and keep-alive rules come from ``httptools`` (Node's llhttp, which
  uvicorn already uses to read the service's own requests), not from code here.
- Connections are pooled per (scheme, host, port) and kept while the node keeps them; one the
  node has closed is never reused. A reused connection that the node closes before answering a
  single byte is retried once on a new one (the node closed an idle connection as the request
  went out); every other failure is reported, never retried.
- A connection is closed, not pooled, after any failure, a cancellation or an answer it cannot
  be sure it has read to the end.
- Answers are read whole up to ``MAX_ANSWER`` bytes; a larger one is a protocol error rather
  than unbounded memory.
- Header names or values holding CR, LF or NUL (or a name holding a colon) are refused before
  anything is sent.

Failures are httpx's exception classes, so ``HttpBackendClient``'s one mapping to the
service's error tree applies; the cause is kept as ``__cause__`` (a TLS failure is told apart
by the ``ssl.SSLError`` in that chain):

    connecting, or waiting for a connection slot, took longer than the call's timeout
                                                         -> httpx.ConnectTimeout
    no complete answer within the call's timeout         -> httpx.ReadTimeout
    refused, unreachable, DNS, TLS handshake             -> httpx.ConnectError
    not HTTP, cut short, closed before answering, too large
                                                         -> httpx.RemoteProtocolError
    a header value that would break the request          -> httpx.LocalProtocolError
    a URL that is not http(s)                            -> httpx.UnsupportedProtocol
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import NoReturn, cast

import httptools
import httpx

MAX_ANSWER = 1024 * 1024
"""Bytes of an answer body read at most."""

_DEFAULT_PORTS = {"http": 80, "https": 443}
# Written by the transport itself from the URL and the body; the request's values are dropped.
_WIRE_HEADERS = frozenset({b"host", b"content-length", b"transfer-encoding", b"connection"})
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
_UNSAFE = (b"\r", b"\n", b"\0")

Key = tuple[str, str, int]


class _Failed(Exception):
    """What went wrong on a connection, as the httpx exception to raise."""

    def __init__(
        self,
        error: httpx.TransportError,
        *,
        unanswered: bool = False,
        cause: BaseException | None = None,
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.unanswered = unanswered  # closed before a single byte of the answer arrived
        self.cause = cause


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection: one exchange at a time, the answer read whole."""

    def __init__(self, max_answer: int) -> None:
        self._max_answer = max_answer
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[None] | None = None
        self._failure: _Failed | None = None
        self.closed = False
        self.reusable = False
        self._reset()

    def _reset(self) -> None:
        self.status = 0
        self.headers: list[tuple[bytes, bytes]] = []
        self._chunks: list[bytes] = []
        self._size = 0
        self._heard = False
        self._headers_done = False
        self._framed = False
        self._complete = False

    # -- asyncio.Protocol ---------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but are one in behaviour.
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._waiter is None or self._waiter.done():
            self.close()  # bytes nobody asked for: the connection's state is unknown
            return
        self._heard = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError:
            self._fail(self._failure or _Failed(httpx.RemoteProtocolError("unreadable answer")))
        except httptools.HttpParserUpgrade:
            self._fail(_Failed(httpx.RemoteProtocolError("the node switched protocols")))
        except httptools.HttpParserError as exc:
            self._fail(_Failed(httpx.RemoteProtocolError("not an HTTP answer"), cause=exc))

    def eof_received(self) -> bool:
        return False  # close; connection_lost says what it means for the exchange

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.reusable = False
        if self._waiter is None or self._waiter.done():
            return
        if self._headers_done and not self._framed:
            self._finish()  # no length given: the answer ran until the node closed
            return
        if not self._heard:
            closed = httpx.RemoteProtocolError("closed before answering")
            self._fail(_Failed(closed, unanswered=True, cause=exc))
        else:
            self._fail(_Failed(httpx.RemoteProtocolError("the answer was cut short"), cause=exc))

    # -- httptools callbacks ------------------------------------------------------------------

    def on_message_begin(self) -> None:
        if self._complete:  # a second answer to one request
            raise self._stop(httpx.RemoteProtocolError("more than one answer to one request"))
        self._reset()
        self._heard = True

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name, value))

    def on_headers_complete(self) -> None:
        self.status = self._parser.get_status_code()
        self._headers_done = True
        names = {name.lower(): value for name, value in self.headers}
        declared = names.get(b"content-length")
        if declared is not None and declared.strip().isdigit():
            if int(declared) > self._max_answer:
                raise self._stop(self._too_large())
        self._framed = (
            declared is not None
            or b"transfer-encoding" in names
            or self.status in (204, 304)
            or self.status < 200
        )

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._max_answer:
            raise self._stop(self._too_large())
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if self.status < 200:  # 1xx: informational, the answer follows
            self._reset()
            self._heard = True  # the node did answer: a close now is no idle-connection race
            return
        self._complete = True
        self.reusable = self._parser.should_keep_alive()
        self._finish()

    # -- the exchange ---------------------------------------------------------------------------

    async def exchange(self, request: bytes) -> bytes:
        """Send ``request`` and wait for the whole answer; its body is returned."""
        if self.closed or self._transport is None or self._transport.is_closing():
            raise _Failed(httpx.RemoteProtocolError("connection closed"), unanswered=True)
        self._reset()
        self.reusable = False
        self._failure = None
        waiter = self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(request)
        await waiter
        return b"".join(self._chunks)

    def close(self) -> None:
        self.closed = True
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def _finish(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def _fail(self, failure: _Failed) -> None:
        self.reusable = False
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(failure)
        self.close()

    def _stop(self, error: httpx.TransportError) -> _Failed:
        # Raised inside a parser callback: httptools stops and raises HttpParserCallbackError.
        self._failure = _Failed(error)
        return self._failure

    def _too_large(self) -> httpx.RemoteProtocolError:
        return httpx.RemoteProtocolError(f"answer larger than {self._max_answer} bytes")


@dataclass(frozen=True, slots=True)
class Call:
    """One request as it goes on the wire (``Host`` and ``Content-Length`` are the wire's)."""

    method: str
    url: httpx.URL
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes
    timeout: float | None
    """Bounds connecting, waiting for a connection slot, and waiting for the answer, each."""


@dataclass(frozen=True, slots=True)
class Answer:
    """A node's answer, read whole."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: bytes) -> bytes | None:
        """The first value of header ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key.lower() == name:
                return value
        return None


class Http11Transport:
    """Pooled, kept-alive HTTP/1.1 connections: ``exchange`` one ``Call`` for its ``Answer``."""

    def __init__(
        self,
        *,
        verify: ssl.SSLContext | bool = True,
        max_connections: int = 100,
        max_answer: int = MAX_ANSWER,
    ) -> None:
        self._verify = verify
        self._ssl_context = verify if isinstance(verify, ssl.SSLContext) else None
        self._max_connections = max_connections
        self._max_answer = max_answer
        self._idle: dict[Key, list[_Connection]] = {}
        self._slots: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def exchange(self, request: Call) -> Answer:
        url = request.url
        if url.scheme not in _DEFAULT_PORTS:
            raise httpx.UnsupportedProtocol(f"unsupported URL scheme {url.scheme!r}")
        key: Key = (url.scheme, url.host, url.port or _DEFAULT_PORTS[url.scheme])
        wire = _head(request) + request.body
        slots = self._bind()
        if slots.locked():  # every slot taken: wait, within the timeout
            try:
                async with asyncio.timeout(request.timeout):
                    await slots.acquire()
            except TimeoutError as exc:
                raise httpx.ConnectTimeout("no free connection slot") from exc
        else:
            await slots.acquire()  # returns at once
        try:
            return await self._send(key, wire, request.timeout)
        finally:
            slots.release()

    async def _send(
        self,
        key: Key,
        wire: bytes,
        timeout: float | None,  # noqa: ASYNC109
    ) -> Answer:
        for attempt in range(2):
            connection = self._take_idle(key)
            reused = connection is not None
            if connection is None:
                connection = await self._connect(key, timeout)
            try:
                async with asyncio.timeout(timeout):
                    content = await connection.exchange(wire)
            except _Failed as failed:
                connection.close()
                if failed.unanswered and reused and attempt == 0:
                    continue  # the node had closed this idle connection: once more, on a new one
                raise failed.error from failed.cause
            except TimeoutError as exc:
                connection.close()
                raise httpx.ReadTimeout("no answer in time") from exc
            except BaseException:
                connection.close()  # cancelled mid-exchange: the answer may still come
                raise
            if connection.reusable:
                self._idle.setdefault(key, []).append(connection)
            else:
                connection.close()
            return Answer(connection.status, connection.headers, content)
        raise AssertionError("unreachable")  # pragma: no cover

    def _take_idle(self, key: Key) -> _Connection | None:
        idle = self._idle.get(key)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    async def _connect(self, key: Key, timeout: float | None) -> _Connection:  # noqa: ASYNC109
        scheme, host, port = key
        context = self._context() if scheme == "https" else None
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                _, protocol = await loop.create_connection(
                    lambda: _Connection(self._max_answer),
                    host,
                    port,
                    ssl=context,
                    server_hostname=host if context is not None else None,
                )
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connecting took too long") from exc
        except OSError as exc:  # refused, unreachable, DNS, and ssl.SSLError (an OSError)
            raise httpx.ConnectError(str(exc) or type(exc).__name__) from exc
        return protocol

    def _context(self) -> ssl.SSLContext:
        if self._ssl_context is None:
            context = ssl.create_default_context()  # the system's trust store
            if self._verify is False:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._ssl_context = context
        return self._ssl_context

    def _bind(self) -> asyncio.Semaphore:
        # Connections and the semaphore belong to one event loop (tests run several in turn).
        loop = asyncio.get_running_loop()
        if self._slots is None or self._loop is not loop:
            self._drop_idle()
            self._slots = asyncio.Semaphore(self._max_connections)
            self._loop = loop
        return self._slots

    def _drop_idle(self) -> None:
        for connections in self._idle.values():
            for connection in connections:
                with suppress(RuntimeError):  # its event loop is already closed
                    connection.close()
        self._idle.clear()

    async def aclose(self) -> None:
        self._drop_idle()


def _head(request: Call) -> bytes:
    """The request line and headers, as they go on the wire."""
    url = request.url
    lines = [
        request.method.encode("ascii") + b" " + url.raw_path + b" HTTP/1.1",
        b"Host: " + url.netloc,
    ]
    for name, value in request.headers:
        if b":" in name:
            _refuse(request)
        if name.lower() not in _WIRE_HEADERS:
            lines.append(name + b": " + value)
    if request.body or request.method in _BODY_METHODS:
        lines.append(b"Content-Length: " + str(len(request.body)).encode("ascii"))
    head = b"\r\n".join(lines)
    # One CR LF between lines and none inside one; no NUL; no header name with a colon. The
    # count is the cheap check; which header broke it is looked for only then.
    if head.count(b"\n") != len(lines) - 1 or head.count(b"\r") != len(lines) - 1 or b"\0" in head:
        _refuse(request)
    return head + b"\r\n\r\n"


def _refuse(request: Call) -> NoReturn:
    for name, value in request.headers:
        if any(bad in name or bad in value for bad in _UNSAFE) or b":" in name:
            # Never the value: it may be a credential.
            raise httpx.LocalProtocolError(f"header {name[:40]!r} holds a forbidden character")
    raise httpx.LocalProtocolError("the request line holds a forbidden character")
