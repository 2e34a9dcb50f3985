"""Every outbound HTTP call, written once: the client, bounded answers, failures classed once.

The Lightning backends (``receiver.lightning._http``), the LNURL backend, the Kotani API client
and the webhook forwarder all go out through httpx clients built by ``outbound_client`` and
read their answers with ``exchange``. Each domain then maps the one classification made here
(``classify`` for calls that got no usable answer, ``status_class`` for answers that are not
2xx) to its own error classes: a table per domain, never a second copy of the logic.

What a client built here does, and does not:

- one ``httpx.Timeout`` per network operation and, in ``exchange``, one ``asyncio.timeout`` over
  the whole call (redirects included): a node that drips one byte a second is still cut off;
- no proxy, ``.netrc`` or certificate file from the environment (``trust_env=False``): the
  settings say where a call goes and what it trusts; TLS verifies against the system store, or
  against the ``ssl.SSLContext`` given (LND's pinned ``tls.cert``);
- redirects are never followed by httpx; ``exchange`` follows GET redirects only when the
  caller asks (LNURL), never from https to http, and lets the caller check every hop;
- ``Accept-Encoding: identity``: the answers are small JSON documents.

Bounded answers (a hostile node on the same LAN, a Lightning Address server, an on-path
attacker must not be able to exhaust the process):

- the *decoded* body is counted while it is decoded, ``max_length`` at a time, and refused past
  ``limit`` bytes: a 980-byte answer that inflates to 512 MiB costs at most ``limit``;
- stacked (``gzip, gzip``) or unknown content encodings are refused before a byte is decoded;
- h11 (httpcore's parser) refuses an answer head over 100 KiB; more than ``MAX_HEADERS`` header
  lines are refused here.
Each of these raises ``HostileAnswer``, classed ``Fault.HOSTILE``.

``clip`` is the one message clipper and secret scrubber: anything a remote party wrote that is
kept in an error message (a node's "amount too small", Kotani's ``message``) goes through it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import httpx

MAX_ANSWER = 1024 * 1024
"""Decoded bytes of an answer body read at most (the answers expected are a few kB)."""
MAX_HEADERS = 100
"""Header lines of an answer accepted at most (h11 caps their total size at 100 KiB)."""
MAX_REDIRECTS = 5
"""Redirects followed at most, by calls that follow them (LNURL endpoints)."""
MAX_MESSAGE = 200
"""A remote party's message is kept up to this many characters."""
USER_AGENT = "kotani-receiver/0.1"

_REDIRECTS = frozenset({301, 302, 303, 307, 308})

CheckURL = Callable[[httpx.URL], Awaitable[None]]
"""Called with every redirect target before it is requested; raises ``TargetRefused`` to refuse."""


class Fault(StrEnum):
    """Why a call got no usable answer (what each domain maps to its own error class)."""

    TIMEOUT = "timeout"
    CONNECT = "connect"
    TLS = "tls"
    TRANSPORT = "transport"
    """Connected, then the exchange failed: not HTTP, cut short, reset."""
    HOSTILE = "hostile"
    """The answer was built to exhaust the receiver (see the module docstring)."""
    REFUSED = "refused"
    """A target the caller's rules refuse (LNURL egress rules: a private address)."""
    REDIRECT = "redirect"
    """A redirect not followed: a loop, from https to http, answering a POST."""
    INVALID_URL = "invalid_url"


class OutboundError(Exception):
    """A call this module stopped itself; ``fault`` says why. Messages hold no URL query."""

    fault: Fault = Fault.TRANSPORT


class HostileAnswer(OutboundError):
    """Stacked or unknown encoding, a decoded body over its limit, too many headers."""

    fault = Fault.HOSTILE


class TargetRefused(OutboundError):
    """A URL the caller's rules refuse (a private address for an LNURL callback, ...)."""

    fault = Fault.REFUSED


class RedirectRefused(OutboundError):
    """More than the redirects allowed, https -> http, a redirect answering a POST."""

    fault = Fault.REDIRECT


def outbound_client(
    *,
    timeout: float,
    base_url: str = "",
    headers: Mapping[str, str] | None = None,
    verify: ssl.SSLContext | bool = True,
    max_connections: int = 20,
    transport: httpx.AsyncBaseTransport | None = None,
) -> httpx.AsyncClient:
    """The one way to build an outbound client (see the module docstring for what it does).

    ``timeout`` bounds each network operation; ``exchange`` bounds a whole call by its own
    ``timeout``. ``headers`` are sent on every call (credentials included: never redirected).
    """
    return httpx.AsyncClient(
        base_url=base_url,
        headers={
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        },
        timeout=httpx.Timeout(timeout),
        limits=httpx.Limits(
            max_connections=max_connections, max_keepalive_connections=max_connections
        ),
        verify=verify,
        follow_redirects=False,
        trust_env=False,
        transport=transport,
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """An answer read whole (and bounded): what every caller maps or parses."""

    status: int
    headers: httpx.Headers
    body: bytes
    method: str
    url: httpx.URL
    """The URL answered (after any redirect)."""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def json(self) -> Any:
        """The body as JSON; ``ValueError`` when it is not (``UnicodeDecodeError`` included)."""
        return json.loads(self.body)

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    timeout: float,  # noqa: ASYNC109
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    content: bytes | None = None,
    params: Mapping[str, str | int] | None = None,
    headers: Mapping[str, str] | None = None,
    limit: int = MAX_ANSWER,
    redirects: int = 0,
    check: CheckURL | None = None,
) -> Answer:
    """Send one request and read its answer whole, in ``timeout`` seconds in total.

    ``redirects`` > 0 follows that many GET redirects (never https -> http); ``check`` sees
    every redirect target before it is requested (the caller checks the first URL itself).
    Raises httpx's exceptions, ``TimeoutError`` and ``OutboundError``: pass any of them to
    ``classify``.
    """
    if timeout <= 0:
        raise TimeoutError
    async with asyncio.timeout(timeout):
        request = client.build_request(
            method, url, json=json_body, data=form, content=content, params=params, headers=headers
        )
        for hop in range(redirects + 1):
            if hop and check is not None:
                await check(request.url)
            response = await client.send(request, stream=True)
            try:
                if len(response.headers.raw) > MAX_HEADERS:
                    raise HostileAnswer(f"more than {MAX_HEADERS} header lines")
                if redirects and response.status_code in _REDIRECTS:
                    request = _next_hop(request, response, hop, redirects)
                    continue
                body = await read_bounded(response, limit)
            finally:
                await response.aclose()
            return Answer(response.status_code, response.headers, body, method, request.url)
    raise AssertionError("unreachable")  # pragma: no cover


def _next_hop(
    request: httpx.Request, response: httpx.Response, hop: int, redirects: int
) -> httpx.Request:
    if hop >= redirects:
        raise RedirectRefused(f"more than {redirects} redirects")
    if request.method != "GET":
        raise RedirectRefused(f"{request.method} answered with a redirect")
    following = response.next_request
    if following is None:
        raise RedirectRefused("a redirect without a usable Location")
    if request.url.scheme == "https" and following.url.scheme != "https":
        raise RedirectRefused(f"redirect from https to {following.url.scheme or 'nothing'}")
    return following


async def read_bounded(response: httpx.Response, limit: int = MAX_ANSWER) -> bytes:
    """The body of a streamed answer, decoded, refused (``HostileAnswer``) past ``limit`` bytes."""
    if response.is_stream_consumed:
        # Built in memory and read already (``httpx.MockTransport`` in tests): nothing on a wire.
        if len(response.content) > limit:
            raise HostileAnswer(f"an answer larger than {limit} bytes once decoded")
        return response.content
    declared = response.headers.get("content-length", "")
    if declared.strip().isdigit() and int(declared) > limit and not _encodings(response):
        raise HostileAnswer(f"an answer of {int(declared)} bytes (at most {limit})")
    decoder = _decoder(response)
    parts: list[bytes] = []
    size = 0
    async for raw in response.aiter_raw():  # as read: at most 64 KiB each (httpcore)
        if decoder is None:
            pieces = [raw]
        else:
            pieces = _inflate(decoder, raw, limit - size)
        for piece in pieces:
            size += len(piece)
            if size > limit:
                raise HostileAnswer(f"an answer larger than {limit} bytes once decoded")
            parts.append(piece)
    return b"".join(parts)


def _encodings(response: httpx.Response) -> list[str]:
    values = response.headers.get_list("content-encoding", split_commas=True)
    return [v.strip().lower() for v in values if v.strip().lower() not in ("", "identity")]


def _decoder(response: httpx.Response) -> Any:
    encodings = _encodings(response)
    if not encodings:
        return None
    if len(encodings) > 1:
        raise HostileAnswer(f"stacked content encodings ({', '.join(encodings[:4])})")
    if encodings[0] in ("gzip", "x-gzip"):
        return zlib.decompressobj(zlib.MAX_WBITS | 16)
    if encodings[0] == "deflate":
        return zlib.decompressobj()  # zlib-wrapped, as RFC 9110 means it
    raise HostileAnswer(f"an unknown content encoding ({encodings[0][:20]})")


def _inflate(decoder: Any, data: bytes, room: int) -> list[bytes]:
    """Decode ``data`` at most ``room + 1`` bytes at a time (one past: the caller refuses)."""
    out: list[bytes] = []
    try:
        while data and not decoder.eof:
            piece = decoder.decompress(data, max(room, 0) + 1)
            out.append(piece)
            room -= len(piece)
            if room < 0:
                break
            data = decoder.unconsumed_tail
    except zlib.error as exc:
        raise HostileAnswer("a compressed answer that does not decode") from exc
    return out


def classify(exc: BaseException) -> tuple[Fault, str]:
    """Why a call failed, and a few words to say so (no URL, header or body in them)."""
    if isinstance(exc, OutboundError):
        return exc.fault, str(exc)
    if isinstance(exc, TimeoutError):
        return Fault.TIMEOUT, "no complete answer in time"
    if isinstance(exc, httpx.TimeoutException):
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return Fault.TIMEOUT, "connecting took too long"
        return Fault.TIMEOUT, "waiting for the answer took too long"
    if isinstance(exc, httpx.ConnectError):
        if _tls_failure(exc):
            return Fault.TLS, "TLS handshake failed (certificate not trusted or wrong host name)"
        return Fault.CONNECT, "cannot connect"
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return Fault.INVALID_URL, "not an http(s) URL"
    if isinstance(exc, httpx.RemoteProtocolError) and "too long" in str(exc).lower():
        # h11's cap on an answer's head ("Receive buffer too long"): 100 KiB in httpcore.
        return Fault.HOSTILE, "an answer head over 100 KiB"
    return Fault.TRANSPORT, type(exc).__name__


def never_sent(exc: BaseException) -> bool:
    """Whether a failed call provably never reached the server (safe to repeat, even a POST)."""
    return isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc)


class StatusClass(StrEnum):
    """What a non-2xx status says, before each domain picks its error class."""

    AUTH = "auth"  # 401, 403
    NOT_FOUND = "not_found"  # 404
    RATE_LIMITED = "rate_limited"  # 429
    BAD_REQUEST = "bad_request"  # 400, 422
    REFUSED = "refused"  # any other 4xx
    SERVER = "server"  # 5xx
    UNEXPECTED = "unexpected"  # 1xx, 3xx and anything else


def status_class(status: int) -> StatusClass:
    if status in (401, 403):
        return StatusClass.AUTH
    if status == 404:
        return StatusClass.NOT_FOUND
    if status == 429:
        return StatusClass.RATE_LIMITED
    if status in (400, 422):
        return StatusClass.BAD_REQUEST
    if 400 <= status < 500:
        return StatusClass.REFUSED
    if 500 <= status < 600:
        return StatusClass.SERVER
    return StatusClass.UNEXPECTED


def clip(text: str, secrets: Sequence[str] = (), limit: int = MAX_MESSAGE) -> str:
    """A remote party's text made safe to keep: ``secrets`` scrubbed, one line, ``limit`` long."""
    text = str(text)
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def message_of(body: Any) -> str:
    """The error text in a decoded JSON answer, from the usual shapes; "" when there is none.

    LND/grpc-gateway, CLN, Kotani (NestJS): ``{"message"}`` (a list for validation errors);
    Eclair: ``{"error"}``; LNbits/FastAPI: ``{"detail"}`` (a list of ``{"msg"}``); LNURL:
    ``{"reason"}``.
    """
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        return "; ".join(m for m in (message_of(item) for item in body[:5]) if m)
    if isinstance(body, dict):
        for key in ("message", "error", "detail", "reason", "msg"):
            found = message_of(body.get(key))
            if found:
                return found
    return ""


def answer_message(answer: Answer) -> str:
    """The error text of an answer: from its JSON, else its raw text."""
    try:
        return message_of(answer.json()) or answer.text()
    except ValueError:
        return answer.text()
