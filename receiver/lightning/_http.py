"""HTTP plumbing for every HTTP backend, written once: credentials, error mapping, shape checks.

Every HTTP backend (lnd, cln, lnbits, phoenixd, eclair, lnaddress) talks to its node through one
``HttpBackendClient``: an httpx client from ``receiver.outbound`` (limits, TLS, no redirects,
answers bounded and decoded once) plus this module's mapping of ``receiver.outbound``'s one
classification to the backends' errors, always ``raise ... from exc``:

    Fault.CONNECT, Fault.TRANSPORT, Fault.INVALID_URL -> BackendUnavailable
    Fault.TLS                                         -> BackendUnavailable (says TLS)
    Fault.TIMEOUT                                     -> BackendTimeout
    Fault.HOSTILE, Fault.REFUSED                      -> BackendHostile (gzip bomb, huge answer,
                                                         a target the egress rules refuse)
    Fault.REDIRECT (loop, https -> http, on a POST)   -> BackendProtocolError
    HTTP 401 / 403                                    -> BackendAuthError
    HTTP 5xx                                          -> BackendUnavailable (node message kept)
    other HTTP 4xx                                    -> BackendRejected    (node message kept)
    3xx, non-JSON body, wrong shape                   -> BackendProtocolError

It also holds what the backends' configs and constructors share: ``HttpBackendConfig`` (read
from the environment and ``.env``, a checked ``url``), ``header_auth_client``,
``basic_auth_client`` (phoenixd, Eclair) and ``HttpBackend`` (``repr`` without credentials,
``aclose``).

The node's own message is kept (``receiver.outbound.clip``: one short line) because "amount too
small" is actionable, but every credential the client holds is scrubbed from it first;
credentials live only in request headers and never in a message or a ``repr``.

Timeouts: a call takes at most ``timeout`` seconds in total (``DEFAULT_TIMEOUT``, for calls
outside the minting path). The minting path's deadline is not read here: ``BackendChain``
bounds each backend attempt with one ``asyncio.timeout`` (its share of the deadline), which
cancels the call wherever it is.
"""

from __future__ import annotations

import base64
import re
import ssl
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Annotated, Any, TypeVar

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

from receiver import outbound
from receiver.errors import (
    BackendAuthError,
    BackendError,
    BackendHostile,
    BackendProtocolError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
)
from receiver.lightning.base import BackendConfig
from receiver.outbound import Answer, CheckURL, Fault, StatusClass

DEFAULT_TIMEOUT = 8.0
"""Bound of one call, in total (start-up checks, status polls; the mint path bounds tighter)."""

Model = TypeVar("Model", bound=BaseModel)
ErrorHook = Callable[[Answer, str], BackendError | None]
"""Lets a backend claim an error answer before the generic mapping (CLN's RPC errors are 500s)."""

_FAULTS: dict[Fault, type[BackendError]] = {
    Fault.TIMEOUT: BackendTimeout,
    Fault.CONNECT: BackendUnavailable,
    Fault.TLS: BackendUnavailable,
    Fault.TRANSPORT: BackendUnavailable,
    Fault.INVALID_URL: BackendUnavailable,
    Fault.HOSTILE: BackendHostile,
    Fault.REFUSED: BackendHostile,
    Fault.REDIRECT: BackendProtocolError,
}


def node_message(answer: Answer) -> str:
    """The error text a node put in its answer, from the usual JSON shapes or the raw text."""
    return outbound.answer_message(answer)


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
        check: CheckURL | None = None,
        max_connections: int = 20,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        self.backend = backend
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self._secrets = tuple(s for s in secrets if s)
        self._error_hook = error_hook
        if follow_redirects and self._secrets:
            # A redirect may lead to another host: credentials must never follow it there.
            raise ValueError("a client holding credentials does not follow redirects")
        self._redirects = outbound.MAX_REDIRECTS if follow_redirects else 0
        self._check = check
        for name, value in (headers or {}).items():
            _check_header(backend, name, value)
        self._client = outbound.outbound_client(
            timeout=timeout,
            base_url=self.base_url,
            headers=headers,
            verify=verify,
            max_connections=max_connections,
        )

    def __repr__(self) -> str:
        return f"HttpBackendClient(backend={self.backend!r}, base_url={self.base_url!r})"

    async def aclose(self) -> None:
        await self._client.aclose()

    def clean(self, text: str) -> str:
        """``outbound.clip`` with this client's secrets scrubbed."""
        return outbound.clip(text, self._secrets)

    async def request(
        self,
        method: str,
        url: str,
        *,
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
        answer = await self.send(method, url, json_body=json_body, form=form, params=params)
        if answer.status in allow_status:
            return None
        if not answer.ok:
            raise self.status_error(answer)
        try:
            return answer.json()
        except ValueError as exc:
            raise BackendProtocolError(
                f"{self.backend}: answer to {method} {answer.url.path} is not JSON",
                backend=self.backend,
            ) from exc

    async def lookup(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
    ) -> Any:
        """``request`` for a record the node may not have: ``None`` when it answers 404."""
        return await self.request(method, url, json_body=json_body, form=form, allow_status=(404,))

    async def send(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        form: Mapping[str, str] | None = None,
        params: Mapping[str, str | int] | None = None,
    ) -> Answer:
        """Send one request, bounded by ``self.timeout`` in total; failures mapped."""
        try:
            return await outbound.exchange(
                self._client,
                method,
                url,
                timeout=self.timeout,
                json_body=json_body,
                form=form,
                params=params,
                redirects=self._redirects,
                check=self._check,
            )
        except (httpx.HTTPError, TimeoutError, outbound.OutboundError) as exc:
            raise self.failure(exc, url) from exc

    def failure(self, exc: BaseException, url: str) -> BackendError:
        """The backend error for a call that got no usable answer."""
        fault, detail = outbound.classify(exc)
        where = self._where(url)
        if fault is Fault.TIMEOUT:
            message = f"{self.backend}: no answer from {where} within {self.timeout:.1f} s"
        elif fault is Fault.CONNECT:
            message = f"{self.backend}: cannot connect to {where}"
        elif fault is Fault.TLS:
            message = (
                f"{self.backend}: TLS handshake with {where} failed"
                " (certificate not trusted or wrong host name)"
            )
        elif fault is Fault.TRANSPORT:
            message = f"{self.backend}: connection to {where} failed ({detail})"
        elif fault is Fault.INVALID_URL:
            message = f"{self.backend}: invalid URL for this backend"
        elif fault is Fault.REDIRECT:
            message = f"{self.backend}: {detail} refused (from {where})"
        elif fault is Fault.REFUSED:
            message = f"{self.backend}: call refused: {self.clean(detail)}"
        else:
            message = f"{self.backend}: refused what {where} answered: {self.clean(detail)}"
        return _FAULTS[fault](message, backend=self.backend)

    def _where(self, url: str) -> str:
        """The host a call went to, for a message (worked out only when one is needed)."""
        try:
            return _host(httpx.URL(self.base_url + url if self.base_url else url))
        except httpx.InvalidURL:
            return "the backend"

    def status_error(self, answer: Answer) -> BackendError:
        """The error for a non-2xx answer (the backend's hook gets the first say)."""
        if self._error_hook is not None:
            claimed = self._error_hook(answer, self.backend)
            if claimed is not None:
                return claimed
        status = answer.status
        where = f"{answer.method} {answer.url.path}"
        message = self.clean(node_message(answer))
        detail = f": {message}" if message else ""
        kind = outbound.status_class(status)
        if kind is StatusClass.AUTH:
            return BackendAuthError(
                f"{self.backend}: credentials refused (HTTP {status} on {where})",
                backend=self.backend,
            )
        if kind is StatusClass.SERVER:
            return BackendUnavailable(
                f"{self.backend}: HTTP {status} on {where}{detail}", backend=self.backend
            )
        if kind is StatusClass.UNEXPECTED:
            return BackendProtocolError(
                f"{self.backend}: unexpected HTTP {status} on {where}", backend=self.backend
            )
        return BackendRejected(
            f"{self.backend}: HTTP {status} on {where}{detail}", backend=self.backend
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


_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # a header name (RFC 9110 token)


def _check_header(backend: str, name: str, value: str) -> None:
    """A fixed header no request could carry is a setting error, found at start."""
    if _TOKEN.fullmatch(name) and value.isascii() and value.isprintable():
        return
    # Never the value: it is a credential.
    raise ConfigError(
        f"backend {backend}: the value sent as {name!r} holds characters an HTTP header cannot"
        " carry (printable ASCII only)"
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
