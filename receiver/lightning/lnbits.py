"""LNbits through its wallet API, with a wallet's invoice key (``X-Api-Key``).

Follows the LNbits API (documented at ``/docs`` of every instance; shapes checked against the
source of lnbits 1.6.2, ``lnbits/core/views/payment_api.py``, ``wallet_api.py`` and
``lnbits/core/models/payments.py``; https://github.com/lnbits/lnbits):
- ``POST /api/v1/payments`` ``{"out": false, "amount": <sats>, "memo", "expiry",
  "description_hash": <hex>}`` -> 201 ``{"payment_hash", "bolt11", ...}``;
- ``GET /api/v1/payments/{payment_hash}`` -> ``{"paid": bool, "status": "pending"|"success"|
  "failed", "details": {"amount": <msat>, "expiry": <ISO time>}}``, 404 when unknown;
- ``GET /api/v1/wallet`` -> ``{"name", "balance"}``.
An unknown key answers 404 ``{"detail": "Wallet not found."}``, mapped to ``backend.auth``.

LNbits takes amounts in whole sats: this backend is sats-only and refuses
(``AmountNotRepresentable``) an amount that is not a multiple of 1000 msat instead of rounding it
as LNbits would.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import ClassVar

from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat, msat_to_sat_exact
from receiver.errors import BackendAuthError, BackendError
from receiver.lightning._http import (
    HttpBackend,
    HttpBackendConfig,
    NonEmptySecret,
    header_auth_client,
    is_payment_hash,
    node_message,
)
from receiver.lightning.base import (
    BackendConfig,
    BackendContext,
    Capabilities,
    InvoiceState,
    InvoiceStatus,
    MintedInvoice,
    NodeInfo,
)
from receiver.outbound import Answer


class LnbitsConfig(HttpBackendConfig):
    """``RECEIVER_LNBITS_*``: the LNbits instance and a wallet's invoice/read key."""

    model_config = SettingsConfigDict(env_prefix="RECEIVER_LNBITS_")

    url: str
    key: NonEmptySecret
    """The wallet's *invoice/read* key (never the admin key: minting needs no more)."""


class _Created(BaseModel):
    payment_hash: str
    bolt11: str


class _Details(BaseModel):
    amount: int | None = None
    expiry: datetime | None = None


class _Status(BaseModel):
    paid: bool
    status: str | None = None
    details: _Details | None = None


class _Wallet(BaseModel):
    name: str = ""


def _unknown_key(answer: Answer, backend: str) -> BackendError | None:
    # LNbits answers a key it does not know with 404 "Wallet not found." rather than 401.
    if answer.status == 404 and "wallet not found" in node_message(answer).lower():
        return BackendAuthError(f"{backend}: LNbits does not know this key", backend=backend)
    return None


class LnbitsBackend(HttpBackend):
    """An LNbits wallet (sats precision, description hashes)."""

    Config: ClassVar[type[BackendConfig]] = LnbitsConfig
    capabilities = Capabilities(msat_precision=False, description_hash=True, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, LnbitsConfig)
        self.name = "lnbits"
        self._http = header_auth_client(
            self.name,
            config.url,
            "X-Api-Key",
            config.key.get_secret_value(),
            error_hook=_unknown_key,
        )

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        sats = msat_to_sat_exact(amount_msat, backend=self.name)
        body: dict[str, object] = {"out": False, "amount": sats, "expiry": int(expiry)}
        if description_hash is not None:
            body["description_hash"] = description_hash.hex()
        else:
            body["memo"] = memo
        data = await self._http.request("POST", "/api/v1/payments", json_body=body)
        created = self._http.parse(_Created, data, "create invoice")
        return MintedInvoice(bolt11=created.bolt11, payment_hash=created.payment_hash)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if not is_payment_hash(payment_hash):
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._http.lookup("GET", f"/api/v1/payments/{payment_hash.lower()}")
        if data is None:
            return InvoiceStatus(InvoiceState.UNKNOWN)
        status = self._http.parse(_Status, data, "payment status")
        details = status.details or _Details()
        if status.paid:
            paid = Msat(details.amount) if details.amount else None
            return InvoiceStatus(InvoiceState.PAID, paid_msat=paid)
        if status.status == "failed":
            # LNbits marks an invoice failed once it has expired unpaid.
            return InvoiceStatus(InvoiceState.EXPIRED)
        expiry = details.expiry
        if expiry is not None:
            expiry = expiry if expiry.tzinfo else expiry.replace(tzinfo=UTC)
            if datetime.now(UTC) >= expiry:
                return InvoiceStatus(InvoiceState.EXPIRED)
        return InvoiceStatus(InvoiceState.PENDING)

    async def info(self) -> NodeInfo:
        # LNbits does not say which node funds it nor on which network: minting tells.
        data = await self._http.request("GET", "/api/v1/wallet")
        wallet = self._http.parse(_Wallet, data, "wallet")
        return NodeInfo(node_id=None, network=None, alias=wallet.name or None)
