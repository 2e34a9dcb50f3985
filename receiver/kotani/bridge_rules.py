"""When a crypto-bridge refund invoice may be regenerated: Kotani's rules as pure functions.

Kotani's page "Regenerate expired refund config invoice" (seed 000,
``POST /api/v3/deposit/crypto-bridge/{kotani_reference_id}/refund-config``) states: Lightning
only; only once the current invoice has expired; at most 3 regenerations per transaction; at
least 30 s between consecutive requests; never once the transaction is COMPLETED or REFUNDED;
400 for each broken rule, 404 for an unknown reference. We check the same rules *before* calling,
on the state stored in our database, so a call that would break one never leaves the machine;
and we map Kotani's own 400/404 answers onto the same errors (``map_kotani_refusal``).

We add one rule of our own: at most one regeneration per expiry (``AlreadyRegenerated``), so a
keeper that has not yet seen the new invoice does not spend a second regeneration on it.

    ReceiverError
    └── BridgeError                     409 bridge.error
        ├── RegenerationRefused         409 bridge.regeneration_refused (Kotani said no, reason
        │   │                                                            not recognisable)
        │   ├── NotLightning            409 bridge.not_lightning
        │   ├── DepositTerminal         409 bridge.terminal
        │   ├── RegenerationLimitReached 409 bridge.regeneration_limit
        │   ├── AlreadyRegenerated      409 bridge.already_regenerated
        │   ├── RegeneratedTooRecently  409 bridge.too_soon (``retry_after`` seconds)
        │   └── InvoiceNotExpired       409 bridge.invoice_not_expired (``expires_at``)
        └── BridgeDepositNotFound       404 bridge.not_found
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import ClassVar

from receiver.errors import ReceiverError
from receiver.kotani.errors import KotaniBadRequest, KotaniError, KotaniNotFound
from receiver.kotani.models import Chain, DepositStatus

MAX_REGENERATIONS = 3
MIN_INTERVAL = timedelta(seconds=30)


class BridgeError(ReceiverError):
    """A crypto-bridge operation refused; ``origin`` says whether we or Kotani refused it."""

    code: ClassVar[str] = "bridge.error"
    status: ClassVar[int] = 409

    def __init__(self, message: str, *, origin: str = "local") -> None:
        super().__init__(message)
        self.origin = origin


class RegenerationRefused(BridgeError):
    """Regeneration refused; the subclasses name the rule. Kotani's unrecognised 400s land here."""

    code = "bridge.regeneration_refused"


class NotLightning(RegenerationRefused):
    """Only Lightning deposits have an expiring invoice (on-chain ones use a static address)."""

    code = "bridge.not_lightning"


class DepositTerminal(RegenerationRefused):
    """The deposit is COMPLETED or REFUNDED: its refund config is final."""

    code = "bridge.terminal"


class RegenerationLimitReached(RegenerationRefused):
    """The three regenerations Kotani allows per transaction are used up."""

    code = "bridge.regeneration_limit"


class AlreadyRegenerated(RegenerationRefused):
    """This expiry was already regenerated; the new invoice has not been read back yet."""

    code = "bridge.already_regenerated"


class RegeneratedTooRecently(RegenerationRefused):
    """Less than 30 s since the last regeneration request; ``retry_after`` seconds to wait."""

    code = "bridge.too_soon"

    def __init__(self, message: str, *, retry_after: float, origin: str = "local") -> None:
        super().__init__(message, origin=origin)
        self.retry_after = retry_after

    def headers(self) -> dict[str, str]:
        return {"Retry-After": str(max(1, math.ceil(self.retry_after)))}


class InvoiceNotExpired(RegenerationRefused):
    """The current refund invoice has not expired (or its expiry is unknown)."""

    code = "bridge.invoice_not_expired"

    def __init__(
        self, message: str, *, expires_at: datetime | None = None, origin: str = "local"
    ) -> None:
        super().__init__(message, origin=origin)
        self.expires_at = expires_at


class BridgeDepositNotFound(BridgeError):
    """Kotani does not know this crypto-bridge reference."""

    code = "bridge.not_found"
    status = 404


@dataclass(frozen=True)
class RegenerationState:
    """What is known of one deposit when deciding whether to regenerate its refund invoice."""

    reference: str
    chain: Chain | None
    status: DepositStatus | None
    expires_at: datetime | None
    """Kotani's ``expires_at`` of the current refund invoice (or the invoice's own, if absent)."""
    regeneration_count: int
    """Regenerations used: the larger of our own count and Kotani's ``regeneration_count``."""
    last_regenerated_at: datetime | None
    """When we last sent a regeneration request (whatever its outcome)."""
    regenerated_for: datetime | None = None
    """The ``expires_at`` our last regeneration replaced."""


def regeneration_refusal(state: RegenerationState, now: datetime) -> RegenerationRefused | None:
    """The first rule ``state`` breaks at ``now`` (checked in a fixed order), or None."""
    ref = state.reference
    if state.chain is not Chain.LIGHTNING:
        chain = state.chain.value if state.chain else "unknown"
        return NotLightning(f"{ref}: only Lightning refund invoices expire (chain is {chain})")
    if state.status is not None and state.status.is_terminal:
        return DepositTerminal(f"{ref} is {state.status.value}: its refund config is final")
    if state.regeneration_count >= MAX_REGENERATIONS:
        return RegenerationLimitReached(f"{ref}: all {MAX_REGENERATIONS} regenerations are used")
    if state.regenerated_for is not None and state.regenerated_for == state.expires_at:
        return AlreadyRegenerated(
            f"{ref}: the invoice expiring {state.expires_at.isoformat()} was already regenerated"
        )
    if state.last_regenerated_at is not None:
        wait = (state.last_regenerated_at + MIN_INTERVAL - now).total_seconds()
        if wait > 0:
            return RegeneratedTooRecently(
                f"{ref}: wait {math.ceil(wait)} s (30 s between regenerations)", retry_after=wait
            )
    if state.expires_at is None:
        return InvoiceNotExpired(f"{ref}: the refund invoice's expiry is unknown")
    if now < state.expires_at:
        return InvoiceNotExpired(
            f"{ref}: the refund invoice is valid until {state.expires_at.isoformat()}",
            expires_at=state.expires_at,
        )
    return None


def check_regeneration(state: RegenerationState, now: datetime) -> None:
    """Raise the first broken rule's error; return when a regeneration may be sent."""
    refusal = regeneration_refusal(state, now)
    if refusal is not None:
        raise refusal


def map_kotani_refusal(
    exc: KotaniError, state: RegenerationState | None = None
) -> BridgeError | KotaniError:
    """Kotani's 400/404 to a regeneration, as the same errors the local rules raise.

    Kotani's documented 400 message, "Invoice not yet expired or max regenerations reached",
    names two rules; ``state`` (our count) decides between them. Other errors pass through.
    """
    if isinstance(exc, KotaniNotFound):
        return BridgeDepositNotFound(
            f"Kotani does not know this deposit: {exc.kotani_message}", origin="kotani"
        )
    if not isinstance(exc, KotaniBadRequest):
        return exc
    text = exc.kotani_message
    said = text.lower()
    expired = "not yet expired" in said or "not expired" in said or "still valid" in said
    limit = "max" in said or "limit" in said
    if "lightning" in said:
        return NotLightning(f"Kotani: {text}", origin="kotani")
    if "terminal" in said or "completed" in said or "refunded" in said:
        return DepositTerminal(f"Kotani: {text}", origin="kotani")
    if expired and limit:
        used = state.regeneration_count if state is not None else 0
        limit, expired = used >= MAX_REGENERATIONS, used < MAX_REGENERATIONS
    if limit:
        return RegenerationLimitReached(f"Kotani: {text}", origin="kotani")
    if expired:
        return InvoiceNotExpired(
            f"Kotani: {text}",
            expires_at=state.expires_at if state is not None else None,
            origin="kotani",
        )
    if "soon" in said or "wait" in said or "interval" in said or "second" in said:
        return RegeneratedTooRecently(
            f"Kotani: {text}", retry_after=MIN_INTERVAL.total_seconds(), origin="kotani"
        )
    return RegenerationRefused(f"Kotani refused the regeneration: {text}", origin="kotani")
