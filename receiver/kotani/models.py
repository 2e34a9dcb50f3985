"""Typed shapes of Kotani Pay's v3 API, taken from its OpenAPI components (not invented).

Sources: ``../shared/kotani/openapi-2026-04-with-crypto-bridge.json`` components
``CryptoBridgeRateRequestDto``, ``CryptoBridgeRateResponseDto``, ``CreateCryptoBridgeDepositDto``
(+ ``CryptoPaymentDto``, ``SettlementDto``, ``RecipientDto``, ``TransactionMetadataDto``,
``CryptoBridgeSourceDto``), ``CryptoBridgeDepositResponseDto``, ``CryptoBridgeStatusResponseDto``
(+ ``TransactionStagesDto``, ``StageStatusDto``, ``CollectionInstructionsDto``),
``RefundConfigDto`` and ``OfframpRefundConfigDto``; the pages
https://docs.kotanipay.com/api-reference/crypto-bridge (seeds 000, 001, 003, 004).

Where the OpenAPI documents no 200 body (``submit-refund-invoice``, ``retry-refund``,
``retry-refunds-multiple``, ``refund-status``, GET/POST ``refund-config``) the model is tolerant:
known fields optional, unknown ones kept (``extra="allow"``) so ``--json`` shows all Kotani said.

Amounts: msat fields are integers (``Msat``) and refuse fractions, strings and bools; fiat and
non-Lightning crypto amounts are ``Decimal`` (never float) and are written as JSON numbers.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
)

from receiver.amounts import Msat


class Chain(StrEnum):
    """``CHAIN`` enum of the OpenAPI."""

    CELO = "CELO"
    ETHEREUM = "ETHEREUM"
    ARBITRUM = "ARBITRUM"
    AVALANCHE = "AVALANCHE"
    BINANCE = "BINANCE"
    POLYGON = "POLYGON"
    OPTIMISM = "OPTIMISM"
    FUSE = "FUSE"
    TRON = "TRON"
    PROVENANCE = "PROVENANCE"
    SOLANA = "SOLANA"
    HEDERA = "HEDERA"
    STELLAR = "STELLAR"
    BASE = "BASE"
    LISK = "LISK"
    VICTION = "VICTION"
    SCROLL = "SCROLL"
    LIGHTNING = "LIGHTNING"
    CARDANO = "CARDANO"


class Token(StrEnum):
    """``TOKEN`` enum of the OpenAPI."""

    CUSD = "CUSD"
    USDC = "USDC"
    USDT = "USDT"
    BUSD = "BUSD"
    HASH = "HASH"
    HBAR = "HBAR"
    USDGLO = "USDGLO"
    CKES = "CKES"
    CGHS = "CGHS"
    MSAT = "MSAT"
    ADA = "ADA"


class DepositStatus(StrEnum):
    """Crypto-bridge transaction status (``CryptoBridgeStatusResponseDto.status``)."""

    DEPOSIT_INITIATED = "DEPOSIT_INITIATED"
    DEPOSIT_CONFIRMED = "DEPOSIT_CONFIRMED"
    PAYMENT_SENT = "PAYMENT_SENT"
    PAYMENT_CONFIRMED = "PAYMENT_CONFIRMED"
    SETTLING = "SETTLING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    SETTLEMENT_UNCONFIRMED = "SETTLEMENT_UNCONFIRMED"
    REFUNDED = "REFUNDED"

    @property
    def is_terminal(self) -> bool:
        """COMPLETED and REFUNDED end a deposit: no regeneration, no polling."""
        return self in (DepositStatus.COMPLETED, DepositStatus.REFUNDED)


class TransactionType(StrEnum):
    CROSS_BORDER = "cross_border"
    BRIDGE = "bridge"
    CHAIN_SETTLEMENT = "chain_settlement"


class RefundMethod(StrEnum):
    CRYPTO_INVOICE = "CRYPTO_INVOICE"
    CRYPTO_ADDRESS = "CRYPTO_ADDRESS"


class PaymentMethod(StrEnum):
    MOBILE_MONEY = "MOBILE_MONEY"
    BANK_TRANSFER = "BANK_TRANSFER"


# --- field types ------------------------------------------------------------------------------


def _msat_in(value: Any) -> Any:
    # pydantic's lax int takes True and "12"; money does not.
    if isinstance(value, bool) or isinstance(value, str):
        raise ValueError("msat amounts are JSON integers")
    return value


def _non_negative(value: Msat) -> Msat:
    if value < 0:
        raise ValueError("msat amounts are not negative")
    return Msat(value)


def _utc(value: datetime) -> datetime:
    # Kotani writes "...Z"; a zone-less timestamp is read as UTC rather than as local time.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _iso_z(value: datetime) -> str:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _number(value: Decimal) -> int | float:
    # JSON has numbers, not decimal strings: write 1000 as 1000 and 150.5 as 150.5.
    return int(value) if value == value.to_integral_value() else float(value)


MsatAmount = Annotated[Msat, BeforeValidator(_msat_in), AfterValidator(_non_negative)]
"""An integer msat amount (``Msat``); fractions, strings and bools are refused."""
UtcDatetime = Annotated[
    datetime, AfterValidator(_utc), PlainSerializer(_iso_z, return_type=str, when_used="json")
]
Number = Annotated[Decimal, PlainSerializer(_number, return_type=int | float, when_used="json")]


class KotaniModel(BaseModel):
    """A response shape: unknown fields are kept, the object is immutable."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


class RequestModel(BaseModel):
    """A request body: unknown fields are a bug on our side."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def body(self) -> dict[str, Any]:
        """The JSON body, without unset optional fields."""
        return self.model_dump(mode="json", exclude_none=True)


# --- offramp refunds (CONTRACT §4) ------------------------------------------------------------


class KotaniAck(KotaniModel):
    """Kotani's answer where the OpenAPI documents no 200 body: its message and raw ``data``.

    Returned by ``submit_refund_invoice``, ``retry_refund`` and ``retry_refunds``.
    """

    message: str = ""
    data: JsonValue = None


class RefundStatus(KotaniModel):
    """``GET /api/v3/offramp/refund-status/{referenceId}``: the 200 body is undocumented.

    Fields are the refund webhooks' names (camelCase, CONTRACT §3); all optional, extras kept.
    ``refund_amount`` has ambiguous units in Kotani's docs (sats or crypto), hence a Decimal.
    Statuses stay strings: the pages disagree on their values (REVERSED/REFUNDED, SUCCESS/...).
    """

    message: str = ""
    reference_id: str | None = Field(None, alias="referenceId")
    status: str | None = None
    refund_status: str | None = Field(None, alias="refundStatus")
    refund_transaction_hash: str | None = Field(None, alias="refundTransactionHash")
    refund_amount: Number | None = Field(None, alias="refundAmount")
    chain: str | None = None
    token: str | None = None
    currency: str | None = None
    error: str | None = None
    total_retries: int | None = Field(None, alias="totalRetries")


class OfframpRefundConfig(KotaniModel):
    """``OfframpRefundConfigDto``: the ``refund_config`` of ``POST /api/v3/offramp`` (Option A)."""

    bolt11: str
    payment_hash: str
    amount_msat: MsatAmount
    expires_at: UtcDatetime
    generate_invoice_url: str | None = None
    address: str | None = None


# --- crypto bridge (CONTRACT §5, seeds 000, 001, 003, 004) --------------------------------------


class BridgeRateRequest(RequestModel):
    """``CryptoBridgeRateRequestDto``."""

    source_currency: str = Field(min_length=3, max_length=4, pattern=r"^[A-Z]+$")
    source_amount: Number = Field(gt=0)
    crypto_chain: Chain = Chain.LIGHTNING
    crypto_token: Token = Token.MSAT
    requested_crypto_amount: int | None = Field(None, ge=0)


class BridgeRate(KotaniModel):
    """``CryptoBridgeRateResponseDto``: ``rate_id`` is valid 60 s and single use.

    ``crypto_amount``/``net_crypto_amount`` are in the chain's smallest unit (msat on Lightning).
    ``exchange_rate`` and ``fees`` are documented only as free-form objects.
    """

    rate_id: str
    source_amount: Number
    source_currency: str
    crypto_amount: int
    crypto_unit: str
    chain: Chain
    token: Token
    exchange_rate: dict[str, JsonValue]
    fees: dict[str, JsonValue]
    total_cost: Number
    net_crypto_amount: int
    expires_at: UtcDatetime
    created_at: UtcDatetime


class CryptoPayment(RequestModel):
    """``CryptoPaymentDto``: the provider's pre-generated invoice (Lightning) or address."""

    bolt11: str | None = None
    payment_hash: str | None = None
    amount_msat: MsatAmount | None = None
    address: str | None = None
    crypto_amount: Number | None = None
    expires_at: UtcDatetime | None = None


class Recipient(RequestModel):
    """``RecipientDto``."""

    phone_number: str
    payment_method: PaymentMethod
    mobile_money_provider: str | None = None
    bank_account_number: str | None = None
    bank_code: str | None = None
    account_holder_name: str | None = None


class Settlement(RequestModel):
    """``SettlementDto``."""

    amount: Number
    currency: str
    country: str
    recipient: Recipient


class TransactionMetadata(RequestModel):
    """``TransactionMetadataDto`` (also read back in status answers)."""

    model_config = ConfigDict(extra="allow", frozen=True)

    sender_name: str | None = None
    sender_country: str | None = None
    recipient_name: str | None = None
    recipient_country: str | None = None
    notes: str | None = None


class BridgeSource(RequestModel):
    """``CryptoBridgeSourceDto``."""

    payment_method: PaymentMethod


class BridgeDepositRequest(RequestModel):
    """``CreateCryptoBridgeDepositDto`` (seed 004)."""

    customer_key: str
    provider_reference_id: str
    amount: Number = Field(gt=0)
    source_currency: str
    wallet_id: str
    transaction_type: TransactionType
    chain: Chain
    token: Token
    crypto_payment: CryptoPayment
    settlement: Settlement
    callback_url: str
    rate_id: str | None = None
    metadata: TransactionMetadata | None = None
    source: BridgeSource | None = None


class RefundConfig(KotaniModel):
    """``RefundConfigDto``, plus the regeneration counters of the GET refund-config page (001).

    ``chain``/``token`` are required in the OpenAPI but absent from seed 001's field list, so they
    are optional here. ``expires_at`` is absent for on-chain deposits.
    """

    primary_method: RefundMethod
    chain: Chain | None = None
    token: Token | None = None
    refund_invoice: str | None = None
    refund_payment_hash: str | None = None
    refund_amount_msat: MsatAmount | None = None
    refund_crypto_amount: Number | None = None
    fallback_address: str | None = None
    fallback_method: RefundMethod | None = None
    expires_at: UtcDatetime | None = None
    regeneration_count: int | None = Field(None, ge=0)
    regenerations_remaining: int | None = Field(None, ge=0)


class CollectionInstructions(KotaniModel):
    """``CollectionInstructionsDto`` (bank-transfer collection)."""

    bank_name: str
    account_name: str
    account_number: str
    reference: str
    amount: Number
    currency: str
    instructions: str


class StageStatus(KotaniModel):
    """``StageStatusDto``."""

    status: DepositStatus
    timestamp: UtcDatetime | None = None
    amount: Number | None = None
    currency: str | None = None
    chain: str | None = None
    token: str | None = None
    payment_hash: str | None = None
    amount_msat: MsatAmount | None = None


class TransactionStages(KotaniModel):
    """``TransactionStagesDto``."""

    deposit: StageStatus
    crypto_payment: StageStatus
    settlement: StageStatus


class BridgeDeposit(KotaniModel):
    """``CryptoBridgeDepositResponseDto``: the answer to creating a deposit (seed 004)."""

    kotani_reference_id: str
    provider_reference_id: str
    status: DepositStatus
    chain: Chain
    token: Token
    payment_hash: str
    refund_config: RefundConfig
    estimated_completion: UtcDatetime
    created_at: UtcDatetime
    collection_instructions: CollectionInstructions | None = None


class BridgeDepositStatus(KotaniModel):
    """``CryptoBridgeStatusResponseDto`` (seed 003); ``refund_config`` when FAILED/PAYMENT_SENT."""

    kotani_reference_id: str
    provider_reference_id: str
    status: DepositStatus
    transaction_type: TransactionType
    chain: Chain
    token: Token
    stages: TransactionStages
    metadata: TransactionMetadata | None = None
    refund_config: RefundConfig | None = None
    collection_instructions: CollectionInstructions | None = None
