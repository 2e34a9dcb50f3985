"""phoenixd (ACINQ's Phoenix server) through its HTTP API, HTTP basic auth with the password.

Follows the phoenixd API reference, https://phoenix.acinq.co/server/api (shapes checked against
``ACINQ/phoenixd``'s ``Api.kt`` and ``JsonSerializers.kt``):
- Create Bolt11 invoice, ``POST /createinvoice``, form fields ``amountSat``, ``description``
  (max. 128 characters) *or* ``descriptionHash`` (hex), ``expirySeconds``; answer
  ``{"amountSat", "paymentHash", "serialized"}``;
- Get incoming payment, ``GET /payments/incoming/{paymentHash}``; answer ``{"paymentHash",
  "isPaid", "receivedSat", "invoice", "completedAt", "createdAt", ...}``, 404 when unknown;
- Get node info, ``GET /getinfo``; answer ``{"nodeId", "channels", "chain", "version"}``.
Authentication is HTTP basic with an empty user name and ``http-password`` (or the
``http-password-limited-access``, which is enough to create invoices) from ``phoenix.conf``.

phoenixd takes amounts in whole sats: this backend is sats-only and refuses rather than rounds.
"""

from __future__ import annotations

import time
from typing import ClassVar

from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat, msat_to_sat_exact, sat_to_msat
from receiver.errors import BackendRejected, InvalidInvoice
from receiver.lightning._http import (
    HttpBackend,
    HttpBackendConfig,
    basic_auth_client,
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
from receiver.verify import decode_invoice

MAX_DESCRIPTION = 128
"""phoenixd refuses longer descriptions."""


class PhoenixdConfig(HttpBackendConfig):
    """``RECEIVER_PHOENIXD_*``: phoenixd's URL and its HTTP password."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_PHOENIXD_")

    url: str = "http://127.0.0.1:9740"
    password: SecretStr


class _Created(BaseModel):
    paymentHash: str
    serialized: str


class _Incoming(BaseModel):
    isPaid: bool
    receivedSat: int = 0
    invoice: str | None = None


class _GetInfo(BaseModel):
    nodeId: str
    chain: str = ""
    version: str = ""


class PhoenixdBackend(HttpBackend):
    """phoenixd (sats precision, description hashes)."""

    Config: ClassVar[type[BackendConfig]] = PhoenixdConfig
    capabilities = Capabilities(msat_precision=False, description_hash=True, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, PhoenixdConfig)
        self.name = "phoenixd"
        self._node_id: str | None = None
        self._http = basic_auth_client(self.name, config.url, config.password.get_secret_value())

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        sats = msat_to_sat_exact(amount_msat, backend=self.name)
        form = {"amountSat": str(sats), "expirySeconds": str(int(expiry))}
        if description_hash is not None:
            form["descriptionHash"] = description_hash.hex()
        elif len(memo) > MAX_DESCRIPTION:
            raise BackendRejected(
                f"phoenixd: descriptions are limited to {MAX_DESCRIPTION} characters",
                backend=self.name,
            )
        else:
            form["description"] = memo
        data = await self._http.request("POST", "/createinvoice", form=form)
        created = self._http.parse(_Created, data, "createinvoice")
        return MintedInvoice(
            bolt11=created.serialized, payment_hash=created.paymentHash, node_id=self._node_id
        )

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if not is_payment_hash(payment_hash):
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._http.lookup("GET", f"/payments/incoming/{payment_hash.lower()}")
        if data is None:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        incoming = self._http.parse(_Incoming, data, "incoming payment")
        if incoming.isPaid:
            return InvoiceStatus(InvoiceState.PAID, paid_msat=sat_to_msat(incoming.receivedSat))
        if incoming.invoice:
            # The answer has no expiry field; the invoice it returns carries one.
            try:
                decoded = decode_invoice(incoming.invoice)
            except InvalidInvoice:
                return InvoiceStatus(InvoiceState.PENDING)
            if time.time() >= decoded.expires_at_ts:
                return InvoiceStatus(InvoiceState.EXPIRED)
        return InvoiceStatus(InvoiceState.PENDING)

    async def info(self) -> NodeInfo:
        data = await self._http.request("GET", "/getinfo")
        info = self._http.parse(_GetInfo, data, "getinfo")
        self._node_id = info.nodeId.lower() or None
        return NodeInfo(node_id=self._node_id, network=Network.from_node_name(info.chain))
