"""The one small interface every Lightning backend implements.

A backend mints invoices, reports their status and describes its node. It receives its own
pydantic config (``Backend.Config``, read from ``RECEIVER_<NAME>_*``) and a ``BackendContext``
in its constructor and never reads global settings. It raises only ``receiver.errors.BackendError``
subclasses; HTTP backends get that mapping from ``receiver.lightning._http``.

Backends are found by name through the ``kotani_receiver.backends`` entry-point group
(``receiver.lightning.registry``), so a third party adds one with a ``pip install``.

What a backend returns is *not* trusted: ``receiver.verify`` decodes every invoice and checks it
against the request before anyone sees it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import ClassVar, Protocol, runtime_checkable

from pydantic_settings import BaseSettings

from receiver.amounts import Msat


class Network(StrEnum):
    """Bitcoin networks, named as in ``RECEIVER_NETWORK``."""

    BITCOIN = "bitcoin"
    TESTNET = "testnet"
    SIGNET = "signet"
    REGTEST = "regtest"

    @property
    def bolt11_currency(self) -> str:
        """BOLT11 prefix after ``ln``: ``lnbc``, ``lntb``, ``lntbs``, ``lnbcrt``."""
        return _BOLT11_CURRENCY[self]

    @classmethod
    def from_node_name(cls, name: str) -> Network | None:
        """The network a node names in its info answer (``mainnet``, ``bitcoin``, ``testnet4``...).

        None for a name no backend documents (``simnet``, say). Case does not matter.
        """
        return _NODE_NETWORK_NAMES.get(name.lower())


_BOLT11_CURRENCY = {
    Network.BITCOIN: "bc",
    Network.TESTNET: "tb",
    Network.SIGNET: "tbs",
    Network.REGTEST: "bcrt",
}

# What the nodes call each network in their info answers: LND's ``chains[].network``, CLN's
# ``network``, phoenixd's ``chain``, Eclair's ``network`` (one table for all of them).
_NODE_NETWORK_NAMES = {
    "mainnet": Network.BITCOIN,
    "bitcoin": Network.BITCOIN,
    "testnet": Network.TESTNET,
    "testnet3": Network.TESTNET,
    "testnet4": Network.TESTNET,
    "signet": Network.SIGNET,
    "regtest": Network.REGTEST,
}


class InvoiceState(StrEnum):
    """What a backend knows of an invoice it minted.

    Only ``PENDING`` means "unpaid, nothing in flight": the one state in which an invoice may be
    handed out again. ``ACCEPTED`` (LND holds an HTLC for it, settlement pending) is neither
    paid nor reusable.
    """

    PENDING = "pending"
    ACCEPTED = "accepted"
    PAID = "paid"
    EXPIRED = "expired"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared up front so the minting path can choose without trying."""

    msat_precision: bool
    """False for sats-only backends: they refuse amounts that are not whole sats."""
    description_hash: bool
    """True when the backend can commit to a description hash (``h`` tag) instead of a memo."""
    max_expiry: int | None = None
    """Longest invoice expiry in seconds the backend accepts (None: no known limit)."""


@dataclass(frozen=True)
class MintedInvoice:
    """An invoice as the backend reported it (unverified until ``receiver.verify`` says so)."""

    bolt11: str
    payment_hash: str
    """Hex payment hash as the backend reported it; verification compares it with the bolt11's."""
    node_id: str | None = None
    """The backend's node public key when the answer names one (checked against the signature)."""


@dataclass(frozen=True)
class InvoiceStatus:
    """Payment state of one invoice."""

    state: InvoiceState
    paid_msat: Msat | None = None


@dataclass(frozen=True)
class NodeInfo:
    """Who the backend is: node public key (hex) and network, where it reports them."""

    node_id: str | None
    network: Network | None
    alias: str | None = None


class TrackedUrl(Protocol):
    """A LUD-21 verify URL kept for one invoice."""

    @property
    def verify_url(self) -> str: ...
    @property
    def amount_msat(self) -> int: ...
    @property
    def expires_at(self) -> datetime: ...


class VerifyUrlStore(Protocol):
    """Where the lnaddress backend keeps verify URLs by payment hash (the service's database:
    ``receiver.db.verify_urls``). Failures are ``ReceiverError``s."""

    async def put(
        self, payment_hash: str, verify_url: str, amount_msat: int, expires_at: datetime
    ) -> None: ...

    async def get(self, payment_hash: str) -> TrackedUrl | None: ...

    async def prune(self, before: datetime | None = None) -> int: ...


@dataclass(frozen=True)
class BackendContext:
    """What the service hands every backend besides its own config."""

    network: Network
    data_dir: Path
    """Where a backend may keep state of its own (the fake node's key and preimages)."""
    verify_urls: VerifyUrlStore | None = None
    """The service's store of LUD-21 verify URLs (None outside the running service)."""


class BackendConfig(BaseSettings):
    """Base for per-backend settings; subclasses set ``env_prefix`` (``RECEIVER_LND_``...)."""


@runtime_checkable
class LightningBackend(Protocol):
    """A Lightning node or service that can mint invoices for the integrator."""

    name: str
    capabilities: Capabilities

    async def create_invoice(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None = None,
    ) -> MintedInvoice:
        """Mint an invoice for exactly ``amount_msat``, expiring ``expiry`` seconds from now.

        With ``description_hash`` the invoice commits to it (``h`` tag) instead of ``memo``.
        Raises ``AmountNotRepresentable`` rather than rounding.
        """
        ...

    async def invoice_status(self, payment_hash: str) -> InvoiceStatus:
        """Payment state of an invoice this backend minted (``unknown`` if it has no record)."""
        ...

    async def info(self) -> NodeInfo:
        """Node id and network, for start-up checks and signature verification."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class BackendFactory(Protocol):
    """What the ``kotani_receiver.backends`` entry points name: a backend class."""

    Config: ClassVar[type[BackendConfig]]

    def __call__(self, config: BackendConfig, context: BackendContext) -> LightningBackend: ...
