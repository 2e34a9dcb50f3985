"""A Lightning Address or LNURL-pay endpoint as a backend (the ``lnurl`` package, 2.x).

Follows the LNURL specifications (https://github.com/lnurl/luds):
- LUD-16, Lightning Address ``name@domain`` -> ``https://domain/.well-known/lnurlp/name``;
- LUD-01/LUD-17, a bech32 ``lnurl1...``, an ``lnurlp://`` URL or a plain URL;
- LUD-06, payRequest: ``GET`` the URL -> ``{"tag": "payRequest", "callback", "minSendable",
  "maxSendable", "metadata"}``; ``GET callback?amount=<msat>`` -> ``{"pr": <bolt11>}`` or
  ``{"status": "ERROR", "reason"}``. The invoice must commit to ``sha256(metadata)`` (``h`` tag)
  and be for exactly the amount asked: ``lnurl`` checks neither the hash nor (exactly) the amount
  on this path, so this module does, before the invoice goes anywhere;
- LUD-21, verify: a ``verify`` URL in the callback's answer -> ``{"status": "OK", "settled",
  "preimage", "pr"}``. Without one (LNbits' own addresses offer none) the status is ``unknown``.
  Verify URLs are kept in the service's database (every replica knows every invoice), so
  they outlive a restart.

Egress rules: a remote LNURL service chooses the ``callback`` and ``verify`` URLs and may answer
with redirects; by default none of them may lead to a loopback, private, link-local, multicast or
otherwise non-public address (checked on the addresses the host name resolves to, and again on
every redirect target), so a remote service cannot make the receiver call services on its own
LAN. ``RECEIVER_LNADDRESS_ALLOW_PRIVATE=true`` lifts this for a LAN setup (and tests). The
configured URL itself is the operator's choice and is not checked. The check resolves the name
itself: a DNS answer that changes between the check and httpx's own lookup (rebinding) is not
covered.

``lnurl`` parses identifiers and validates every answer (its pydantic models); the HTTP calls go
through ``_http`` like every other backend, so they share the deadline and the error mapping
(``lnurl``'s own helpers open a client per call, fix a 5 s timeout and fold every failure into
one exception type). ``lnurl`` accepts plain ``http://`` only for ``localhost``, ``127.0.0.1`` and
``.onion`` hosts, which is what a loopback test needs: pass the URL form
(``http://127.0.0.1:5000/.well-known/lnurlp/name``), not ``name@127.0.0.1:5000``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

import httpx
import lnurl
from pydantic import ValidationError, field_validator
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat
from receiver.errors import BackendProtocolError, BackendRejected, InvalidInvoice, ReceiverError
from receiver.lightning._http import HttpBackend, HttpBackendClient, HttpBackendConfig
from receiver.lightning.base import (
    BackendConfig,
    BackendContext,
    Capabilities,
    InvoiceState,
    InvoiceStatus,
    MintedInvoice,
    NodeInfo,
    TrackedUrl,
    VerifyUrlStore,
)
from receiver.logs import get_logger
from receiver.outbound import TargetRefused
from receiver.verify import decode_invoice

log = get_logger("lnaddress")

PAY_REQUEST_TTL = 60.0
"""Seconds a payRequest answer is reused (LUD-06 lets wallets cache it) before asking again."""
MAX_TRACKED = 10_000
"""Verify URLs kept in memory when the backend runs without the service's database."""
KEEP_AFTER_EXPIRY = 7 * 24 * 3600
"""Seconds a verify URL is kept after its invoice expired (late refund.completed checks)."""


def pay_url(identifier: str) -> str:
    """The LNURL-pay URL behind a Lightning Address, bech32 LNURL, ``lnurlp://`` or plain URL."""
    text = identifier.strip()
    try:
        if "@" in text and "://" not in text:
            return str(lnurl.LnAddress(text).url)
        return str(lnurl.Lnurl(text).url)
    except (lnurl.LnurlException, ValidationError, ValueError):
        raise ValueError(
            "not a Lightning Address, LNURL or LNURL-pay URL"
            " (plain http is only accepted for localhost and .onion hosts)"
        ) from None


class LnAddressConfig(HttpBackendConfig):
    """``RECEIVER_LNADDRESS``: the Lightning Address or LNURL-pay endpoint to mint from."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_")

    lnaddress: str
    lnaddress_allow_private: bool = False
    """``RECEIVER_LNADDRESS_ALLOW_PRIVATE``: let callbacks, verify URLs and redirects reach
    loopback and private addresses (a LAN setup; tests)."""

    @field_validator("lnaddress")
    @classmethod
    def _resolvable(cls, value: str) -> str:
        pay_url(value)
        return value.strip()


Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""Host name and port -> the IP addresses a connection could go to."""


async def system_resolve(host: str, port: int) -> list[str]:
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _public(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.is_global and not address.is_multicast


@dataclass
class EgressRules:
    """Where a remote LNURL service may send this receiver (see the module docstring)."""

    allow_private: bool = False
    resolve: Resolver = system_resolve

    async def check(self, url: httpx.URL) -> None:
        """Raise ``TargetRefused`` when ``url``'s host is or resolves to a non-public address."""
        if self.allow_private:
            return
        host = url.host
        try:
            addresses = [ipaddress.ip_address(host.split("%")[0])]
        except ValueError:
            try:
                found = await self.resolve(host, url.port or (443 if url.scheme == "https" else 80))
            except OSError:
                return  # unresolvable: the connection fails on its own, as unavailable
            addresses = [ipaddress.ip_address(a.split("%")[0]) for a in found]
        for address in addresses:
            if not _public(address):
                raise TargetRefused(
                    f"{host} is a non-public address ({address}); set"
                    " RECEIVER_LNADDRESS_ALLOW_PRIVATE=true to allow it"
                )


class _MemoryVerifyUrls:
    """Verify URLs in memory, for a backend built without the service's database (the
    start-up checks of the CLI): their status is ``unknown`` after a restart."""

    def __init__(self) -> None:
        self._urls: OrderedDict[str, TrackedUrl] = OrderedDict()

    async def put(
        self, payment_hash: str, verify_url: str, amount_msat: int, expires_at: datetime
    ) -> None:
        self._urls[payment_hash] = _Tracked(verify_url, amount_msat, expires_at)
        while len(self._urls) > MAX_TRACKED:
            self._urls.popitem(last=False)

    async def get(self, payment_hash: str) -> TrackedUrl | None:
        return self._urls.get(payment_hash)

    async def prune(self, before: datetime | None = None) -> int:
        return 0


@dataclass(frozen=True)
class _Tracked:
    verify_url: str
    amount_msat: int
    expires_at: datetime


class LnAddressBackend(HttpBackend):
    """Mint through an LNURL-pay endpoint (msat amounts; the service sets the description)."""

    Config: ClassVar[type[BackendConfig]] = LnAddressConfig
    # LNURL-pay asks for msat; a service that rounds is caught by the exact-amount check.
    capabilities = Capabilities(msat_precision=True, description_hash=False, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, LnAddressConfig)
        self.name = "lnaddress"
        self.identifier = config.lnaddress
        self.url = pay_url(config.lnaddress)
        self.egress = EgressRules(allow_private=config.lnaddress_allow_private)
        # Redirects are allowed: LNURL services commonly move their endpoints. Each is checked.
        self._http = HttpBackendClient(
            self.name, "", follow_redirects=True, check=self._check_target
        )
        self._pay_request: tuple[float, lnurl.LnurlPayResponse] | None = None
        # The service's database (receiver/db/verify_urls.py) when it runs; else in memory.
        self._verify_urls: VerifyUrlStore = context.verify_urls or _MemoryVerifyUrls()

    async def _check_target(self, url: httpx.URL) -> None:
        await self.egress.check(url)

    async def _get_remote(self, url: str) -> Any:
        """GET a URL the remote service chose (callback, verify): egress rules first."""
        try:
            await self.egress.check(httpx.URL(url))
        except (TargetRefused, httpx.InvalidURL) as exc:
            raise self._http.failure(exc, url) from exc
        return await self._http.request("GET", url)

    def __repr__(self) -> str:
        return f"LnAddressBackend(url={self.url!r})"

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        pay = await self._get_pay_request()
        metadata_hash = pay.metadata.h
        if description_hash is not None and description_hash.hex() != metadata_hash:
            raise BackendRejected(
                "lnaddress: an LNURL-pay invoice commits to the service's own metadata,"
                " not to the requested description hash",
                backend=self.name,
            )
        if not int(pay.minSendable) <= int(amount_msat) <= int(pay.maxSendable):
            raise BackendRejected(
                f"lnaddress: {amount_msat} msat is outside what the service accepts"
                f" ({int(pay.minSendable)}..{int(pay.maxSendable)} msat)",
                backend=self.name,
            )
        callback = httpx.URL(str(pay.callback)).copy_merge_params({"amount": int(amount_msat)})
        data = await self._get_remote(str(callback))
        action = self._parse_action(data)
        bolt11 = str(action.pr)
        decoded = decode_invoice(bolt11)
        if decoded.description_hash != metadata_hash:
            self._pay_request = None  # the metadata may have changed: ask again next time
            raise InvalidInvoice(
                "description_hash",
                "lnaddress: the invoice does not commit to sha256 of the service's metadata",
                backend=self.name,
            )
        if decoded.amount_msat != amount_msat:
            raise InvalidInvoice(
                "amount",
                f"lnaddress: the service returned an invoice for {decoded.amount_msat} msat"
                f" instead of {amount_msat}",
                backend=self.name,
            )
        if action.verify is not None:
            expires_at = datetime.fromtimestamp(decoded.expires_at_ts, UTC)
            try:
                await self._verify_urls.put(
                    decoded.payment_hash, str(action.verify), int(amount_msat), expires_at
                )
                kept_since = datetime.now(UTC) - timedelta(seconds=KEEP_AFTER_EXPIRY)
                await self._verify_urls.prune(kept_since)
            except ReceiverError as exc:
                # The invoice is good; only its status after a restart would be unknown.
                log.warning("lnaddress.verify_url_not_kept", error=exc.error_code)
        return MintedInvoice(bolt11=bolt11, payment_hash=decoded.payment_hash)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        try:
            tracked = await self._verify_urls.get(payment_hash.lower())
        except ReceiverError as exc:
            log.warning("lnaddress.verify_url_unreadable", error=exc.error_code)
            tracked = None
        if tracked is None:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._get_remote(tracked.verify_url)
        if isinstance(data, dict) and str(data.get("status", "")).upper() == "ERROR":
            return InvoiceStatus(InvoiceState.UNKNOWN)
        try:
            verified = lnurl.LnurlPayVerifyResponse.model_validate(_known(data, "verify"))
        except (ValidationError, lnurl.LnurlException, ValueError) as exc:
            raise BackendProtocolError(
                "lnaddress: the LUD-21 verify answer is not of the documented shape",
                backend=self.name,
            ) from exc
        if verified.settled:
            return InvoiceStatus(InvoiceState.PAID, paid_msat=Msat(tracked.amount_msat))
        if datetime.now(UTC) >= tracked.expires_at:
            return InvoiceStatus(InvoiceState.EXPIRED)
        return InvoiceStatus(InvoiceState.PENDING)

    async def info(self) -> NodeInfo:
        # Reachability and a valid payRequest; an LNURL service names no node nor network.
        self._pay_request = None
        await self._get_pay_request()
        return NodeInfo(node_id=None, network=None, alias=httpx.URL(self.url).host or None)

    async def _get_pay_request(self) -> lnurl.LnurlPayResponse:
        now = time.monotonic()
        if self._pay_request is not None and self._pay_request[0] > now:
            return self._pay_request[1]
        data = await self._http.request("GET", self.url)
        self._raise_lnurl_error(data)
        if not isinstance(data, dict) or data.get("tag") != "payRequest":
            raise BackendProtocolError(
                "lnaddress: the URL does not answer with an LNURL payRequest", backend=self.name
            )
        try:
            pay = lnurl.LnurlPayResponse.model_validate(_known(data, "pay"))
        except (ValidationError, lnurl.LnurlException, ValueError) as exc:
            raise BackendProtocolError(
                "lnaddress: the payRequest is not valid LNURL-pay (callback, amounts or metadata)",
                backend=self.name,
            ) from exc
        self._pay_request = (now + PAY_REQUEST_TTL, pay)
        return pay

    def _parse_action(self, data: Any) -> lnurl.LnurlPayActionResponse:
        self._raise_lnurl_error(data)
        try:
            return lnurl.LnurlPayActionResponse.model_validate(_known(data, "action"))
        except (ValidationError, lnurl.LnurlException, ValueError) as exc:
            raise BackendProtocolError(
                "lnaddress: the callback's answer has no valid invoice", backend=self.name
            ) from exc

    def _raise_lnurl_error(self, data: Any) -> None:
        if isinstance(data, dict) and str(data.get("status", "")).upper() == "ERROR":
            reason = self._http.clean(str(data.get("reason", "no reason given")))
            raise BackendRejected(f"lnaddress: the service refused: {reason}", backend=self.name)



_MODELS: dict[str, Any] = {
    "pay": lnurl.LnurlPayResponse,
    "action": lnurl.LnurlPayActionResponse,
    "verify": lnurl.LnurlPayVerifyResponse,
}


def _known(data: Any, which: str) -> Any:
    """Keep the fields the ``lnurl`` model knows: its models forbid extras, services add some."""
    if not isinstance(data, dict):
        return data
    fields = _MODELS[which].model_fields
    return {key: value for key, value in data.items() if key in fields}
