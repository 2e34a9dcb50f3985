"""HTTP plumbing for every HTTP backend, written once: timeouts, error mapping, shape checks.

Every HTTP backend (lnd, cln, lnbits, phoenixd, eclair, lnaddress) talks to its node through one
``HttpBackendClient``. It builds each call (credential headers, base URL, JSON or form body,
redirects for the clients that follow them) and sends it through its own transport: pooled
HTTP/1.1 connections and TLS on asyncio, answers parsed by httptools
(``receiver.lightning._transport``; general clients, httpx's included, cost more per call
than the rest of the mint path). URLs are parsed and errors classed with httpx; an error
answer becomes an ``httpx.Response`` for the mapping and the backends' hooks. Every foreign
failure becomes the service's own error tree, always ``raise ... from exc``:

    httpx.ConnectError, other transport errors  -> BackendUnavailable  (TLS failures say so)
    httpx.ConnectTimeout/ReadTimeout/WriteTimeout/PoolTimeout,
    the call outliving its timeout               -> BackendTimeout
    HTTP 401 / 403                               -> BackendAuthError
    HTTP 5xx                                     -> BackendUnavailable  (node message kept)
    other HTTP 4xx                               -> BackendRejected     (node message kept)
    3xx, non-JSON body, wrong shape              -> BackendProtocolError

It also holds what the backends' configs and constructors share: ``HttpBackendConfig`` (read
from the environment and ``.env``, a checked ``url``), ``basic_auth_client`` (phoenixd, Eclair)
and ``HttpBackend`` (``repr`` without credentials, ``aclose``).

The node's own message is kept (trimmed to one short line) because "amount too small" is
actionable, but every credential the client holds is scrubbed from it first; credentials live
only in request headers and never in a message or a ``repr``.

Timeouts are not literals per call: each call gets ``timeout`` seconds, which callers take from
``time_left()``, i.e. what is left of the deadline the minting path set with ``deadline()`` (or a
default outside any deadline, e.g. for ``kotani-receiver check``). The whole call, connection
pool wait included, is bounded by it; a call with no time left is not sent at all.
"""

from __future__ import annotations

import asyncio
import base64
import json
import re
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Annotated, Any, TypeVar
from urllib.parse import urlencode

import httpx
from pydantic import (
    AfterValidator,
    BaseModel,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import SettingsConfigDict

from receiver.errors import (
    BackendAuthError,
    BackendError,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from receiver.lightning._transport import Answer, Call, Http11Transport
from receiver.lightning.base import BackendConfig

DEFAULT_TIMEOUT = 8.0
"""Per-call bound when no deadline is set (start-up checks, status polls)."""

URL_CACHE = 64

MAX_REDIRECTS = 5
"""Redirects followed at most, by clients that follow them (LNURL endpoints)."""

MAX_MESSAGE = 200
"""A node's error message is kept up to this many characters."""

_DEADLINE: ContextVar[float | None] = ContextVar("receiver_backend_deadline", default=None)

Model = TypeVar("Model", bound=BaseModel)
ErrorHook = Callable[[httpx.Response, str], BackendError | None]
"""Lets a backend claim an error answer before the generic mapping (CLN's RPC errors are 500s)."""


@contextmanager
def deadline(seconds: float) -> Iterator[float]:
    """Bound every backend call made inside this block to ``seconds`` from now, in total.

    Nested deadlines never extend an outer one. Yields the absolute ``time.monotonic()`` value.
    """
    at = time.monotonic() + seconds
    outer = _DEADLINE.get()
    if outer is not None:
        at = min(at, outer)
    token = _DEADLINE.set(at)
    try:
        yield at
    finally:
        _DEADLINE.reset(token)


def time_left(default: float = DEFAULT_TIMEOUT) -> float:
    """Seconds left before the current deadline (``default`` when there is none), never < 0."""
    at = _DEADLINE.get()
    if at is None:
        return default
    return max(0.0, min(default, at - time.monotonic()))


def one_line(text: str, secrets: Sequence[str] = ()) -> str:
    """A node message made safe to show: secrets scrubbed, one line, at most ``MAX_MESSAGE``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    text = " ".join(text.split())
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 1] + "…"


def node_message(response: httpx.Response) -> str:
    """The error text a node put in its answer, from the usual JSON shapes or the raw text."""
    try:
        body = response.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        return response.text
    return _message_from(body) or response.text


def _message_from(body: Any) -> str | None:
    if isinstance(body, str):
        return body
    if isinstance(body, list):
        parts = [m for m in (_message_from(item) for item in body[:3]) if m]
        return "; ".join(parts) or None
    if not isinstance(body, dict):
        return None
    # LND/grpc-gateway and CLN: {"message"}; Eclair: {"error": str}; LNbits/FastAPI: {"detail"};
    # LNURL: {"reason"}; FastAPI validation: {"detail": [{"msg"}]}.
    for key in ("message", "error", "detail", "reason", "msg"):
        if key in body:
            found = _message_from(body[key])
            if found:
                return found
    return None


def _tls_failure(exc: BaseException) -> bool:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, ssl.SSLError):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return "CERTIFICATE_VERIFY_FAILED" in str(exc) or "SSL" in str(exc)


def _host(url: httpx.URL) -> str:
    # Never the full URL: a userinfo part or a query string may carry a credential.
    if not url.host:
        return "the backend"
    return f"{url.host}:{url.port}" if url.port else url.host


class HttpBackendClient:
    """One backend's HTTP connection pool and its error mapping (see the module docstring)."""

    def __init__(
        self,
        backend: str,
        base_url: str = "",
        *,
        headers: Mapping[str, str] | None = None,
        secrets: Sequence[str] = (),
        verify: ssl.SSLContext | bool = True,
        error_hook: ErrorHook | None = None,
        follow_redirects: bool = False,
        max_connections: int = 100,
        transport: Http11Transport | None = None,
    ) -> None:
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self._secrets = tuple(s for s in secrets if s)
        self._error_hook = error_hook
        if follow_redirects and self._secrets:
            # A redirect may lead to another host: credentials must never follow it there.
            raise ValueError("a client holding credentials does not follow redirects")
        self._follow_redirects = follow_redirects
        # Small JSON answers: compression would cost both ends more than it saves.
        fixed = {"Accept": "application/json", "Accept-Encoding": "identity", **(headers or {})}
        self._headers = tuple(_header(backend, name, value) for name, value in fixed.items())
        self._transport = transport or Http11Transport(
            verify=verify, max_connections=max_connections
        )
        # Parsed URLs of recent calls: httpx parses a URL string in ~30 µs, half of building a
        # request, and the mint path calls the same URL every time.
        self._urls: OrderedDict[str, httpx.URL] = OrderedDict()

    def __repr__(self) -> str:
        return f"HttpBackendClient(backend={self.backend!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._transport.aclose()

    def clean(self, text: str) -> str:
        """``one_line`` with this client's secrets scrubbed."""
        return one_line(text, self._secrets)

    # The timeout is a parameter on purpose: it is what is left of the caller's deadline, and
    # the call enforces it itself (asyncio.timeout around the whole exchange).
    async def request(
        self,
        method: str,
        url: str,
        *,
        timeout: float,  # noqa: ASYNC109
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
        allow_status: Collection[int] = (),
    ) -> Any:
        """Send one request and return its decoded JSON body.

        Answers whose status is in ``allow_status`` (404 for an unknown invoice, say) return
        ``None`` instead of raising. Everything else that is not a 2xx JSON answer raises a
        ``BackendError`` subclass.
        """
        call, answer = await self.send(
            method, url, timeout=timeout, json_body=json_body, form=form, params=params
        )
        if answer.status in allow_status:
            return None
        if not 200 <= answer.status < 300:
            self.raise_for_status(_response(call, answer))
        try:
            return json.loads(_decoded(answer))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BackendProtocolError(
                f"{self.backend}: answer to {method} {call.url.path} is not JSON",
                backend=self.backend,
            ) from exc

    async def lookup(
        self,
        method: str,
        url: str,
        *,
        timeout: float,  # noqa: ASYNC109
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """``request`` for a record the node may not have: ``None`` when it answers 404."""
        return await self.request(
            method, url, timeout=timeout, json_body=json_body, form=form, allow_status=(404,)
        )

    async def send(
        self,
        method: str,
        url: str,
        *,
        timeout: float,  # noqa: ASYNC109
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> tuple[Call, Answer]:
        """Send one request bounded by ``timeout`` seconds in total; transport errors mapped.

        Returns the call as it was last sent (after any redirect) and its answer.
        """
        if timeout <= 0:
            raise BackendTimeout(f"{self.backend}: no time left to call it", backend=self.backend)
        try:
            target = self._parsed(url)
            if params:
                target = target.copy_merge_params(params)
            headers = self._headers
            body = b""
            if json_body is not None:
                body = _JSON.encode(json_body).encode("utf-8")
                headers = (*headers, _JSON_TYPE)
            elif form is not None:
                body = urlencode(form).encode("utf-8")
                headers = (*headers, _FORM_TYPE)
            call = Call(method, target, headers, body, timeout)
            async with asyncio.timeout(timeout):
                return await self._exchange(call)
        except TimeoutError as exc:
            raise BackendTimeout(
                f"{self.backend}: no answer from {self._where(url)} within {timeout:.1f} s",
                backend=self.backend,
            ) from exc
        except httpx.TimeoutException as exc:
            what = "connecting to" if isinstance(exc, httpx.ConnectTimeout) else "waiting for"
            raise BackendTimeout(
                f"{self.backend}: timed out {what} {self._where(url)} ({timeout:.1f} s)",
                backend=self.backend,
            ) from exc
        except httpx.ConnectError as exc:
            if _tls_failure(exc):
                raise BackendUnavailable(
                    f"{self.backend}: TLS handshake with {self._where(url)} failed"
                    " (certificate not trusted or wrong host name)",
                    backend=self.backend,
                ) from exc
            raise BackendUnavailable(
                f"{self.backend}: cannot connect to {self._where(url)}", backend=self.backend
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnavailable(
                f"{self.backend}: connection to {self._where(url)} failed ({type(exc).__name__})",
                backend=self.backend,
            ) from exc
        except httpx.InvalidURL as exc:
            raise BackendUnavailable(
                f"{self.backend}: invalid URL for this backend", backend=self.backend
            ) from exc

    def _url(self, url: str) -> str:
        # The base URL's path is a prefix, as with httpx's ``base_url``; absolute URLs as given.
        return self.base_url + url if self.base_url else url

    def _parsed(self, url: str) -> httpx.URL:
        parsed = self._urls.get(url)
        if parsed is None:
            parsed = self._urls[url] = httpx.URL(self._url(url))
            if len(self._urls) > URL_CACHE:
                self._urls.popitem(last=False)
        else:
            self._urls.move_to_end(url)
        return parsed

    async def _exchange(self, call: Call) -> tuple[Call, Answer]:
        """One call through the transport, following GET redirects when asked to."""
        for _ in range(MAX_REDIRECTS + 1):
            answer = await self._transport.exchange(call)
            location = answer.header(b"location")
            if not (self._follow_redirects and answer.status in _REDIRECTS and location):
                return call, answer
            if call.method != "GET":
                raise BackendProtocolError(
                    f"{self.backend}: {call.method} answered with a redirect",
                    backend=self.backend,
                )
            target = call.url.join(location.decode("latin-1"))
            if call.url.scheme == "https" and target.scheme != "https":
                raise BackendProtocolError(
                    f"{self.backend}: redirect from https to {target.scheme or 'nothing'} refused",
                    backend=self.backend,
                )
            call = Call("GET", target, self._headers, b"", call.timeout)
        raise BackendProtocolError(
            f"{self.backend}: more than {MAX_REDIRECTS} redirects", backend=self.backend
        )

    def _where(self, url: str) -> str:
        """The host a call went to, for a message (worked out only when one is needed)."""
        try:
            return _host(self._parsed(url))
        except httpx.InvalidURL:
            return "the backend"

    def raise_for_status(self, response: httpx.Response) -> None:
        """Map a non-2xx answer to the error tree (the backend's hook gets the first say)."""
        status = response.status_code
        if 200 <= status < 300:
            return
        if self._error_hook is not None:
            claimed = self._error_hook(response, self.backend)
            if claimed is not None:
                raise claimed
        where = f"{response.request.method} {response.request.url.path}"
        message = self.clean(node_message(response))
        detail = f": {message}" if message else ""
        if status in (401, 403):
            raise BackendAuthError(
                f"{self.backend}: credentials refused (HTTP {status} on {where})",
                backend=self.backend,
            )
        if status >= 500:
            raise BackendUnavailable(
                f"{self.backend}: HTTP {status} on {where}{detail}", backend=self.backend
            )
        if 400 <= status < 500:
            raise BackendRejected(
                f"{self.backend}: HTTP {status} on {where}{detail}", backend=self.backend
            )
        raise BackendProtocolError(
            f"{self.backend}: unexpected HTTP {status} on {where}", backend=self.backend
        )

    def parse(self, model: type[Model], data: Any, what: str) -> Model:
        """Validate an answer against the documented shape; a mismatch is BackendProtocolError."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            fields = ", ".join(
                ".".join(str(part) for part in err.get("loc", ())) or "body"
                for err in exc.errors(include_input=False, include_url=False)[:3]
            )
            raise BackendProtocolError(
                f"{self.backend}: {what} answer is not of the documented shape ({fields})",
                backend=self.backend,
            ) from exc


# As httpx encodes a ``json=`` body (compact, UTF-8, no NaN), so the nodes see what they saw.
_JSON = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_JSON_TYPE = (b"Content-Type", b"application/json")
_FORM_TYPE = (b"Content-Type", b"application/x-www-form-urlencoded")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110 token)


def _header(backend: str, name: str, value: str) -> tuple[bytes, bytes]:
    """A fixed header as it goes on the wire; one no request could carry is a setting error."""
    if _TOKEN.fullmatch(name) and value.isascii() and value.isprintable():
        return name.encode("ascii"), value.encode("ascii")
    # Never the value: it is a credential.
    raise ConfigError(
        f"backend {backend}: the value sent as {name!r} holds characters an HTTP header cannot"
        " carry (printable ASCII only)"
    )


def _decoded(answer: Answer) -> bytes:
    """The answer's body, decompressed if the node compressed it although asked not to."""
    encoding = answer.header(b"content-encoding")
    if encoding is None or encoding.strip().lower() == b"identity":
        return answer.body
    return httpx.Response(answer.status, headers=answer.headers, content=answer.body).content


def _response(call: Call, answer: Answer) -> httpx.Response:
    """An error answer as an ``httpx.Response``: what the mapping and the backends' hooks read."""
    return httpx.Response(
        answer.status,
        headers=answer.headers,
        content=answer.body,
        request=httpx.Request(call.method, call.url),
    )


_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def is_payment_hash(value: str) -> bool:
    """A 32-byte hex payment hash (what every status call takes)."""
    return bool(_HEX64.fullmatch(value))


def check_base_url(value: str) -> str:
    """Validate a backend base URL setting (http or https, a host, no credentials in it)."""
    value = value.strip().rstrip("/")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValueError("not a valid URL") from exc
    if url.scheme not in ("http", "https") or not url.host:
        raise ValueError("use an http:// or https:// URL with a host")
    if url.userinfo:
        raise ValueError("put credentials in their own setting, not in the URL")
    return value


def header_auth_client(
    backend: str,
    base_url: str,
    header: str,
    credential: str,
    *,
    verify: ssl.SSLContext | bool = True,
    error_hook: ErrorHook | None = None,
) -> HttpBackendClient:
    """A client sending ``credential`` in ``header`` on every call; it is scrubbed from messages."""
    return HttpBackendClient(
        backend,
        base_url,
        headers={header: credential},
        secrets=[credential],
        verify=verify,
        error_hook=error_hook,
    )


def basic_auth(password: str) -> str:
    """The ``Authorization`` value for HTTP basic with an empty user (phoenixd, Eclair)."""
    return "Basic " + base64.b64encode(f":{password}".encode()).decode("ascii")


def basic_auth_client(backend: str, base_url: str, password: str) -> HttpBackendClient:
    """A client sending HTTP basic auth with an empty user name and ``password``.

    Both the password and its base64 form are scrubbed from every message.
    """
    authorization = basic_auth(password)
    return HttpBackendClient(
        backend,
        base_url,
        headers={"Authorization": authorization},
        secrets=[password, authorization.removeprefix("Basic ")],
    )


def _stripped_secret(value: SecretStr, info: ValidationInfo) -> SecretStr:
    secret = value.get_secret_value().strip()
    if not secret:
        raise ValueError(f"the {info.field_name} is empty")
    return SecretStr(secret)


NonEmptySecret = Annotated[SecretStr, AfterValidator(_stripped_secret)]
"""A credential setting (CLN's rune, an LNbits key): surrounding blanks dropped, empty refused."""


class HttpBackendConfig(BackendConfig):
    """Base for an HTTP backend's settings, read from the environment and ``.env``.

    Subclasses set only ``env_prefix`` in their ``model_config`` (the keys here are merged in)
    and declare ``url`` with their own default, if any; it is checked by ``check_base_url``.
    Values are never echoed in validation errors: they may be secrets.
    """

    model_config = SettingsConfigDict(
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    # check_fields=False: the LNURL backend has no ``url`` setting.
    @field_validator("url", check_fields=False)
    @classmethod
    def _url(cls, value: str) -> str:
        return check_base_url(value)


class HttpBackend:
    """What every HTTP backend shares: a ``repr`` that names only its URL, and ``aclose``."""

    _http: HttpBackendClient

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url={self._http.base_url!r})"

    async def aclose(self) -> None:
        await self._http.aclose()
