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

import httpx
from pydantic import BaseModel, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from receiver.amounts import Msat, msat_to_sat_exact
from receiver.errors import BackendAuthError, BackendError
from receiver.lightning._http import (
    HttpBackendClient,
    check_base_url,
    is_payment_hash,
    node_message,
    time_left,
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


class LnbitsConfig(BackendConfig):
    """``RECEIVER_LNBITS_*``: the LNbits instance and a wallet's invoice/read key."""

    model_config = SettingsConfigDict(
        env_prefix="RECEIVER_LNBITS_",
        env_file=".env",
        extra="ignore",
        hide_input_in_errors=True,
        env_ignore_empty=True,
    )

    url: str
    key: SecretStr
    """The wallet's *invoice/read* key (never the admin key: minting needs no more)."""

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return check_base_url(value)

    @field_validator("key")
    @classmethod
    def _key(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("the key is empty")
        return SecretStr(value.get_secret_value().strip())


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


def _unknown_key(response: httpx.Response, backend: str) -> BackendError | None:
    # LNbits answers a key it does not know with 404 "Wallet not found." rather than 401.
    if response.status_code == 404 and "wallet not found" in node_message(response).lower():
        return BackendAuthError(f"{backend}: LNbits does not know this key", backend=backend)
    return None


class LnbitsBackend:
    """An LNbits wallet (sats precision, description hashes)."""

    Config: ClassVar[type[BackendConfig]] = LnbitsConfig
    capabilities = Capabilities(msat_precision=False, description_hash=True, max_expiry=None)

    def __init__(self, config: BackendConfig, context: BackendContext) -> None:
        assert isinstance(config, LnbitsConfig)
        self.name = "lnbits"
        key = config.key.get_secret_value()
        self._http = HttpBackendClient(
            self.name,
            config.url,
            headers={"X-Api-Key": key},
            secrets=[key],
            error_hook=_unknown_key,
        )

    def __repr__(self) -> str:
        return f"LnbitsBackend(url={self._http.base_url!r})"

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
        data = await self._http.request(
            "POST", "/api/v1/payments", json_body=body, timeout=time_left()
        )
        created = self._http.parse(_Created, data, "create invoice")
        return MintedInvoice(bolt11=created.bolt11, payment_hash=created.payment_hash)

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        if not is_payment_hash(payment_hash):
            return InvoiceStatus(InvoiceState.UNKNOWN)
        data = await self._http.request(
            "GET",
            f"/api/v1/payments/{payment_hash.lower()}",
            timeout=time_left(),
            allow_status=(404,),
        )
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
        data = await self._http.request("GET", "/api/v1/wallet", timeout=time_left())
        wallet = self._http.parse(_Wallet, data, "wallet")
        return NodeInfo(node_id=None, network=None, alias=wallet.name or None)

    async def aclose(self) -> None:
        await self._http.aclose()
