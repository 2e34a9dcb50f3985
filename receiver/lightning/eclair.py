"""Eclair through its HTTP API (form-encoded POSTs), HTTP basic auth with the API password.

Follows the Eclair API reference, https://acinq.github.io/eclair/ (shapes checked against
``ACINQ/eclair``'s ``eclair-node/.../api/handlers/Invoice.scala`` and ``Payment.scala``):
- CreateInvoice, ``POST /createinvoice``, form fields ``amountMsat``, ``description`` or
  ``descriptionHash`` (hex), ``expireIn`` (seconds); answer ``{"serialized", "paymentHash",
  "nodeId", "amount", ...}``;
- GetReceivedInfo, ``POST /getreceivedinfo`` with ``paymentHash``; answer ``{"status": {"type":
  "pending"|"expired"|"received", "amount": <msat>}}``, 404 when the node has no such payment;
- GetInfo, ``POST /getinfo``; answer ``{"nodeId", "alias", "network", "chainHash", ...}``.
Amounts are msat throughout. Errors are ``{"error": "..."}`` (kept, trimmed); 401 for a wrong
password.
"""

from __future__ import annotations

from typing import ClassVar

from pydantic import BaseModel, SecretStr
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat
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


class EclairConfig(HttpBackendConfig):
    """``RECEIVER_ECLAIR_*``: Eclair's API URL and ``eclair.api.password``."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_ECLAIR_")

    url: str = "http://127.0.0.1:8080"
    password: SecretStr


class _Created(BaseModel):
    serialized: str
    paymentHash: str
    nodeId: str | None = None


class _ReceivedStatus(BaseModel):
    type: str
    amount: int | None = None


class _Received(BaseModel):
    status: _ReceivedStatus


class _GetInfo(BaseModel):
    nodeId: str
    alias: str = ""
    network: str = ""


class EclairBackend(HttpBackend):
    """Eclair (msat precision, description hashes)."""

    Config: ClassVar[type[BackendConfig]] = EclairConfig
    capabilities = Capabilities(msat_precision=True, description_hash=True, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, EclairConfig)
        self.name = "eclair"
        self._http = basic_auth_client(self.name, config.url, config.password.get_secret_value())

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        form = {"amountMsat": str(int(amount_msat)), "expireIn": str(int(expiry))}
        if description_hash is not None:
            form["descriptionHash"] = description_hash.hex()
        else:
            form["description"] = memo
        data = await self._http.request("POST", "/createinvoice", form=form)
        created = self._http.parse(_Created, data, "createinvoice")
        return MintedInvoice(
            bolt11=created.serialized,
            payment_hash=created.paymentHash,
            node_id=created.nodeId.lower() if created.nodeId else None,
        )

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if not is_payment_hash(payment_hash):
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._http.lookup(
            "POST",
            "/getreceivedinfo",
            form={"paymentHash": payment_hash.lower()},
        )
        if data is None:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        status = self._http.parse(_Received, data, "getreceivedinfo").status
        if status.type == "received":
            paid = Msat(status.amount) if status.amount is not None else None
            return InvoiceStatus(InvoiceState.PAID, paid_msat=paid)
        if status.type == "expired":
            return InvoiceStatus(InvoiceState.EXPIRED)
        if status.type == "pending":
            return InvoiceStatus(InvoiceState.PENDING)
        return InvoiceStatus(InvoiceState.UNKNOWN)

    async def info(self) -> NodeInfo:
        data = await self._http.request("POST", "/getinfo")
        info = self._http.parse(_GetInfo, data, "getinfo")
        return NodeInfo(
            node_id=info.nodeId.lower(),
            network=Network.from_node_name(info.network),
            alias=info.alias or None,
        )
