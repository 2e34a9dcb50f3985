"""LND through its REST gateway.

Follows the LND API reference (REST bindings of ``lnrpc.Lightning``):
- AddInvoice, ``POST /v1/invoices``:
  https://lightning.engineering/api-docs/api/lnd/lightning/add-invoice/
  body ``value_msat``, ``memo``, ``expiry``, ``description_hash`` (bytes fields are base64 in
  REST); answer ``r_hash`` (base64), ``payment_request``, ``add_index``, ``payment_addr``.
- LookupInvoice, ``GET /v1/invoice/{r_hash_str}`` (hex):
  https://lightning.engineering/api-docs/api/lnd/lightning/lookup-invoice/
  answer ``state`` (OPEN, SETTLED, CANCELED, ACCEPTED), ``amt_paid_msat``, ``creation_date``,
  ``expiry`` (int64 fields are JSON strings).
- GetInfo, ``GET /v1/getinfo``: https://lightning.engineering/api-docs/api/lnd/lightning/get-info/
  answer ``identity_pubkey``, ``alias``, ``chains: [{chain, network}]``.
Authentication: the macaroon, hex, in the ``Grpc-Metadata-macaroon`` header. TLS: LND's
``tls.cert`` (``RECEIVER_LND_CERT``) or, without it, the system trust store. Errors come back
from the gateway as ``{"code", "message", "details"}`` and are mapped by ``_http``.
"""

from __future__ import annotations

import base64
import binascii
import ssl
import string
import time
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat
from receiver.errors import BackendProtocolError
from receiver.lightning._http import (
    HttpBackend,
    HttpBackendConfig,
    header_auth_client,
    is_payment_hash,
)
from receiver.lightning.base import (
    BackendConfig,
    BackendContext,
    Capabilities,
    InvoiceState,
    InvoiceStatus,
    MintedInvoice,
    Network,
    NodeInfo,
)


class LndConfig(HttpBackendConfig):
    """``RECEIVER_LND_*``: where LND's REST interface is and how to authenticate."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_LND_")

    url: str
    """REST base URL, e.g. ``https://127.0.0.1:8080``."""
    macaroon: SecretStr
    """The macaroon as hex or the path of the ``.macaroon`` file (invoice macaroon suffices)."""
    cert: Path | None = None
    """LND's ``tls.cert``; without it the system trust store must trust the node's certificate."""

    @field_validator("macaroon")
    @classmethod
    def _macaroon(cls, value: SecretStr) -> SecretStr:
        return SecretStr(load_macaroon(value.get_secret_value()))

    @field_validator("cert")
    @classmethod
    def _cert(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError("no such certificate file")
        return value


def load_macaroon(value: str) -> str:
    """A macaroon given as hex, or as the path of a binary ``.macaroon`` file, as hex."""
    value = value.strip()
    if value and len(value) % 2 == 0 and all(c in string.hexdigits for c in value):
        return value.lower()
    path = Path(value).expanduser()
    try:
        raw = path.read_bytes()
    except OSError:
        # The value may be a secret typed wrongly: never echo it.
        raise ValueError("neither a hex macaroon nor a readable macaroon file") from None
    if not raw:
        raise ValueError("the macaroon file is empty")
    return raw.hex()


class _AddInvoiceAnswer(BaseModel):
    r_hash: str
    payment_request: str


class _Invoice(BaseModel):
    state: str = "OPEN"
    amt_paid_msat: int = 0
    creation_date: int = 0
    expiry: int = 0


class _Chain(BaseModel):
    chain: str = "bitcoin"
    network: str


class _GetInfo(BaseModel):
    identity_pubkey: str
    alias: str = ""
    chains: list[_Chain] = []


def _b64_to_hex(value: str) -> str:
    try:
        return base64.b64decode(value, validate=False).hex()
    except (binascii.Error, ValueError) as exc:
        raise ValueError("not base64") from exc


class LndBackend(HttpBackend):
    """LND REST (msat precision, description hashes)."""

    Config: ClassVar[type[BackendConfig]] = LndConfig
    capabilities = Capabilities(msat_precision=True, description_hash=True, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, LndConfig)
        self.name = "lnd"
        self._network = context.network
        self._node_id: str | None = None
        verify: ssl.SSLContext | bool = True
        if config.cert is not None:
            verify = ssl.create_default_context(cafile=str(config.cert))
        self._http = header_auth_client(
            self.name,
            config.url,
            "Grpc-Metadata-macaroon",
            config.macaroon.get_secret_value(),
            verify=verify,
        )

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        body: dict[str, object] = {"value_msat": int(amount_msat), "expiry": int(expiry)}
        if description_hash is not None:
            body["description_hash"] = base64.b64encode(description_hash).decode("ascii")
        else:
            body["memo"] = memo
        data = await self._http.request("POST", "/v1/invoices", json_body=body)
        answer = self._http.parse(_AddInvoiceAnswer, data, "AddInvoice")
        try:
            payment_hash = _b64_to_hex(answer.r_hash)
        except ValueError as exc:
            raise BackendProtocolError("lnd: r_hash is not base64", backend=self.name) from exc
        return MintedInvoice(
            bolt11=answer.payment_request, payment_hash=payment_hash, node_id=self._node_id
        )

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if not is_payment_hash(payment_hash):
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._http.lookup("GET", f"/v1/invoice/{payment_hash.lower()}")
        if data is None:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        invoice = self._http.parse(_Invoice, data, "LookupInvoice")
        if invoice.state == "SETTLED":
            return InvoiceStatus(InvoiceState.PAID, paid_msat=Msat(invoice.amt_paid_msat))
        if invoice.state == "ACCEPTED":
            # An HTLC is held for it (hold invoice, or settlement under way): paid soon, or
            # cancelled; in neither case may it be handed out again.
            return InvoiceStatus(InvoiceState.ACCEPTED)
        if invoice.state == "CANCELED":
            # LND cancels an invoice when it expires (or when asked to): it can no longer be paid.
            return InvoiceStatus(InvoiceState.EXPIRED)
        if invoice.expiry and time.time() >= invoice.creation_date + invoice.expiry:
            return InvoiceStatus(InvoiceState.EXPIRED)
        return InvoiceStatus(InvoiceState.PENDING)

    async def info(self) -> NodeInfo:
        data = await self._http.request("GET", "/v1/getinfo")
        info = self._http.parse(_GetInfo, data, "GetInfo")
        network = next(
            (Network.from_node_name(c.network) for c in info.chains if c.chain == "bitcoin"),
            None,
        )
        self._node_id = info.identity_pubkey.lower() or None
        return NodeInfo(node_id=self._node_id, network=network, alias=info.alias or None)
