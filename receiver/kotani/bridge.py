"""Crypto-bridge deposits: create, read, regenerate the refund invoice, and keep it fresh.

``BridgeService`` puts the client (``receiver.kotani.client``), the rules
(``receiver.kotani.bridge_rules``), the invoice check (``receiver.kotani.refund_invoice``) and the
store (``receiver.kotani.store``) together:

* every refund config read from Kotani is checked before it is returned or stored;
* ``regenerate`` checks the rules on the *stored* state first (a refused call never leaves the
  machine), reserves the regeneration in the database, then sends it once; Kotani's 400/404 are
  mapped onto the rules' errors and give the reservation back;
* ``sync`` is one keeper step for one deposit: status, refund config when needed, regeneration
  when the rules allow. ``BridgeKeeper`` runs it for every active deposit at an interval.

Each change is stored as a ``BridgeEvent`` and handed to ``publish`` (event forwarding) if set.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime

from receiver.db.types import utcnow
from receiver.kotani.bridge_rules import (
    BridgeError,
    RegeneratedTooRecently,
    RegenerationLimitReached,
    map_kotani_refusal,
    regeneration_refusal,
)
from receiver.kotani.client import KotaniClient
from receiver.kotani.errors import KotaniError
from receiver.kotani.models import (
    BridgeDeposit,
    BridgeDepositRequest,
    BridgeDepositStatus,
    Chain,
    RefundConfig,
)
from receiver.kotani.models_db import BridgeEventKind, DepositOrigin
from receiver.kotani.refund_invoice import VerifiedRefundConfig, averify_refund_config
from receiver.kotani.store import BridgeEvent, BridgeStore, state_of
from receiver.lightning.base import Network
from receiver.logs import get_logger

Clock = Callable[[], datetime]
Publish = Callable[[BridgeEvent], Awaitable[None]]

log = get_logger("bridge")


@dataclass(frozen=True)
class SyncOutcome:
    """What one keeper step saw and did for one deposit."""

    reference: str
    status: BridgeDepositStatus
    config: VerifiedRefundConfig | None = None
    regenerated: bool = False
    events: list[BridgeEvent] = field(default_factory=list)


class BridgeService:
    """Crypto-bridge operations with the refund-invoice rules enforced and every change stored."""

    def __init__(
        self,
        client: KotaniClient,
        store: BridgeStore,
        *,
        network: Network | None = None,
        clock: Clock = utcnow,
        publish: Publish | None = None,
    ) -> None:
        self.client = client
        self.store = store
        self.network = network
        self._clock = clock
        self._publish = publish

    async def create_deposit(
        self, request: BridgeDepositRequest
    ) -> tuple[BridgeDeposit, VerifiedRefundConfig]:
        """Create the deposit at Kotani, start tracking it, check its refund invoice."""
        deposit = await self.client.bridge_create_deposit(request)
        now = self._clock()
        ref = deposit.kotani_reference_id
        await self.store.ensure(
            ref,
            DepositOrigin.CREATED,
            provider_reference_id=deposit.provider_reference_id,
            now=now,
        )
        events = await self.store.record_status(
            ref, chain=deposit.chain, status=deposit.status, now=now
        )
        verified = await self._verify(deposit.refund_config)
        events += await self.store.record_refund_config(ref, verified, now=now)
        await self._emit(events)
        return deposit, verified

    async def watch(self, reference: str) -> BridgeDepositStatus:
        """Start tracking a deposit created elsewhere (reads its status once)."""
        await self.store.ensure(reference, DepositOrigin.WATCHED, now=self._clock())
        status, _ = await self.status(reference)
        return status

    async def status(
        self, reference: str
    ) -> tuple[BridgeDepositStatus, VerifiedRefundConfig | None]:
        """Kotani's status of a deposit, its refund config checked; stored if tracked."""
        status = await self.client.bridge_status(reference)
        config = status.refund_config
        verified = None if config is None else await self._verify(config)
        if await self.store.get(reference) is not None:
            now = self._clock()
            events = await self.store.record_status(
                reference, chain=status.chain, status=status.status, now=now
            )
            await self._emit(events)
        return status, verified

    async def refund_config(self, reference: str) -> VerifiedRefundConfig:
        """Kotani's current refund config, its invoice checked; stored if tracked."""
        verified = await self._verify(await self.client.bridge_refund_config(reference))
        if await self.store.get(reference) is not None:
            await self._emit(
                await self.store.record_refund_config(reference, verified, now=self._clock())
            )
        return verified

    async def regenerate(self, reference: str) -> VerifiedRefundConfig | None:
        """Regenerate the expired refund invoice, if and only if every rule allows it.

        Raises a ``BridgeError`` subclass naming the broken rule (ours or Kotani's). Returns the
        new, checked refund config, or None if Kotani did not return it and it could not be read.
        """
        record = await self.store.get(reference)
        if record is None or record.chain is None:
            # Unknown locally: learn chain, status and expiry by reading (never by regenerating).
            await self.store.ensure(reference, DepositOrigin.WATCHED, now=self._clock())
            await self.status(reference)
            await self.refund_config(reference)
            record = await self.store.get(reference)
            assert record is not None
        seen = state_of(record)
        now = self._clock()
        refusal = regeneration_refusal(seen, now)
        if refusal is not None:
            raise refusal
        if not await self.store.reserve_regeneration(seen, now=now):
            raise RegeneratedTooRecently(
                f"{reference}: another process regenerated just now", retry_after=30.0
            )
        try:
            config = await self.client.bridge_regenerate_refund_config(reference)
        except KotaniError as exc:
            mapped = map_kotani_refusal(exc, seen)
            if not isinstance(mapped, BridgeError):
                # No definite answer (timeout, 5xx): it may have happened; keep it counted.
                raise
            await self.store.release_regeneration(
                seen, limit_reached=isinstance(mapped, RegenerationLimitReached), now=now
            )
            event = BridgeEvent(
                reference,
                BridgeEventKind.REGENERATION_REFUSED,
                now,
                {"code": mapped.error_code, "message": mapped.message},
            )
            await self.store.add_events([event])
            await self._emit([event])
            raise mapped from exc
        event = BridgeEvent(
            reference,
            BridgeEventKind.REGENERATED,
            now,
            {
                "regeneration_count": seen.regeneration_count + 1,
                "replaced_expiry": None if seen.expires_at is None else seen.expires_at.isoformat(),
            },
        )
        await self.store.add_events([event])
        await self._emit([event])
        log.info("bridge.regenerated", reference=reference, count=seen.regeneration_count + 1)
        if config is None:
            try:
                return await self.refund_config(reference)
            except KotaniError:
                return None  # the keeper reads it back on its next pass
        verified = await self._verify(config)
        await self._emit(await self.store.record_refund_config(reference, verified, now=now))
        return verified

    async def sync(self, reference: str) -> SyncOutcome:
        """One keeper step: refresh status and refund config, regenerate if the rules allow."""
        before = await self.store.get(reference)
        status, from_status = await self.status(reference)
        outcome = SyncOutcome(reference, status, from_status)
        if status.status.is_terminal or status.chain is not Chain.LIGHTNING:
            return outcome
        record = await self.store.get(reference)
        assert record is not None
        now = self._clock()
        stale = (
            before is None
            or before.status is not status.status
            or record.expires_at is None
            or now >= record.expires_at
        )
        config = from_status
        if stale:
            config = await self.refund_config(reference)
            record = await self.store.get(reference)
            assert record is not None
        if regeneration_refusal(state_of(record), self._clock()) is not None:
            return SyncOutcome(reference, status, config)
        try:
            new = await self.regenerate(reference)
        except BridgeError as exc:
            log.info("bridge.regeneration_refused", reference=reference, code=exc.error_code)
            return SyncOutcome(reference, status, config)
        return SyncOutcome(reference, status, new or config, regenerated=True)

    async def _verify(self, config: RefundConfig) -> VerifiedRefundConfig:
        verified = await averify_refund_config(config, network=self.network)
        if verified.problem is not None:
            log.warning(
                "bridge.refund_invoice_invalid",
                code=verified.problem.error_code,
                message=verified.problem.message,
            )
        return verified

    async def _emit(self, events: list[BridgeEvent]) -> None:
        for event in events:
            log.info("bridge.event", kind=event.kind.value, reference=event.reference)
            if self._publish is not None:
                try:
                    await self._publish(event)
                except Exception as exc:  # forwarding must not stop the keeper
                    log.warning("bridge.publish_failed", kind=event.kind.value, error=str(exc))


class BridgeKeeper:
    """Polls every active deposit at ``interval`` seconds and regenerates expired invoices."""

    def __init__(
        self,
        service: BridgeService,
        interval: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.service = service
        self.interval = interval
        self._sleep = sleep

    async def tick(self) -> list[SyncOutcome]:
        """One pass over the active deposits; one deposit's failure does not stop the others."""
        outcomes = []
        for reference in await self.service.store.active():
            try:
                outcomes.append(await self.service.sync(reference))
            except (KotaniError, BridgeError) as exc:
                log.warning("bridge.sync_failed", reference=reference, code=exc.error_code)
        return outcomes

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop`` is set (the app's lifespan sets it on shutdown)."""
        log.info("bridge.keeper_started", interval=self.interval)
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # a database hiccup must not end the keeper
                log.error("bridge.keeper_error", error=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.interval)
            except TimeoutError:
                pass
        log.info("bridge.keeper_stopped")
