"""Core Lightning through clnrest (``POST /v1/<rpc method>``, JSON parameters, ``Rune`` header).

Follows Core Lightning's documentation:
- clnrest: https://docs.corelightning.org/docs/rest : every RPC method is ``POST /v1/<method>``
  with its parameters as a JSON object and the rune in the ``Rune`` header; success is 201,
  a bad or missing rune 401/403, an RPC error 500 with the RPC error object ``{"code", "message"}``.
- invoice: https://docs.corelightning.org/reference/lightning-invoice : ``amount_msat``, a unique
  ``label``, ``description``, ``expiry``; answer ``bolt11``, ``payment_hash``, ``expires_at``.
  It cannot commit to a bare description hash (``deschashonly`` hashes a description it is
  given), so ``capabilities.description_hash`` is False.
- listinvoices: https://docs.corelightning.org/reference/lightning-listinvoices :
  ``{"payment_hash"}``; answer ``invoices: [{status: unpaid|paid|expired, amount_received_msat}]``
  (an integer; the ``"<n>msat"`` strings of Core Lightning before 23.x are read too).
- getinfo: https://docs.corelightning.org/reference/lightning-getinfo : ``id``, ``alias``,
  ``network`` (bitcoin, testnet, testnet4, signet, regtest).
"""

from __future__ import annotations

import secrets
from typing import Annotated, ClassVar

from pydantic import BaseModel, BeforeValidator, StrictInt
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat
from receiver.errors import BackendError, BackendRejected
from receiver.lightning._http import (
    HttpBackend,
    HttpBackendConfig,
    NonEmptySecret,
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
from receiver.outbound import Answer


class ClnConfig(HttpBackendConfig):
    """``RECEIVER_CLN_*``: clnrest's URL and a rune allowing invoice, listinvoices, getinfo."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_CLN_")

    url: str
    """clnrest base URL, e.g. ``https://127.0.0.1:3010``."""
    rune: NonEmptySecret


class _InvoiceAnswer(BaseModel):
    bolt11: str
    payment_hash: str


def _msat(value: object) -> object:
    # Core Lightning before 23.x wrote msat amounts as strings, "1500001msat"; since, integers.
    if isinstance(value, str) and value.endswith("msat") and value[:-4].isdigit():
        return int(value[:-4])
    return value


class _ListedInvoice(BaseModel):
    status: str
    amount_received_msat: Annotated[StrictInt | None, BeforeValidator(_msat)] = None


class _ListInvoices(BaseModel):
    invoices: list[_ListedInvoice]


class _GetInfo(BaseModel):
    id: str
    alias: str = ""
    network: str = ""


class ClnBackend(HttpBackend):
    """Core Lightning via clnrest (msat precision; no bare description hash)."""

    Config: ClassVar[type[BackendConfig]] = ClnConfig
    capabilities = Capabilities(msat_precision=True, description_hash=False, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, ClnConfig)
        self.name = "cln"
        self._node_id: str | None = None
        self._http = header_auth_client(
            self.name,
            config.url,
            "Rune",
            config.rune.get_secret_value(),
            error_hook=self._rpc_error,
        )

    def _rpc_error(self, answer: Answer, backend: str) -> BackendError | None:
        """clnrest answers an RPC error with HTTP 500 and the RPC error object: that is a
        refusal of this request (duplicate label, bad amount...), not an unavailable node."""
        if answer.status != 500:
            return None
        try:
            body = answer.json()
        except ValueError:
            return None
        if isinstance(body, dict) and isinstance(body.get("code"), int) and "message" in body:
            message = self._http.clean(str(body["message"]))
            return BackendRejected(
                f"{backend}: RPC error {body['code']}: {message}", backend=backend
            )
        return None

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        if description_hash is not None:
            raise BackendRejected(
                "cln: clnrest cannot commit to a bare description hash", backend=self.name
            )
        body = {
            "amount_msat": int(amount_msat),
            # Labels must be unique per node; a random one never collides with the node's own.
            "label": f"kotani-receiver-{secrets.token_hex(12)}",
            "description": memo,
            "expiry": int(expiry),
        }
        data = await self._http.request("POST", "/v1/invoice", json_body=body)
        answer = self._http.parse(_InvoiceAnswer, data, "invoice")
        return MintedInvoice(
            bolt11=answer.bolt11, payment_hash=answer.payment_hash, node_id=self._node_id
        )

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if not is_payment_hash(payment_hash):
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._http.request(
            "POST",
            "/v1/listinvoices",
            json_body={"payment_hash": payment_hash.lower()},
        )
        listed = self._http.parse(_ListInvoices, data, "listinvoices")
        if not listed.invoices:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        invoice = listed.invoices[0]
        if invoice.status == "paid":
            paid = invoice.amount_received_msat
            return InvoiceStatus(InvoiceState.PAID, paid_msat=Msat(paid) if paid else None)
        if invoice.status == "expired":
            return InvoiceStatus(InvoiceState.EXPIRED)
        if invoice.status == "unpaid":
            return InvoiceStatus(InvoiceState.PENDING)
        return InvoiceStatus(InvoiceState.UNKNOWN)

    async def info(self) -> NodeInfo:
        data = await self._http.request("POST", "/v1/getinfo", json_body={})
        info = self._http.parse(_GetInfo, data, "getinfo")
        self._node_id = info.id.lower() or None
        return NodeInfo(
            node_id=self._node_id,
            network=Network.from_node_name(info.network),
            alias=info.alias or None,
        )
