"""Mint through the configured backends, in order, inside one deadline.

``BackendChain.mint`` walks ``RECEIVER_BACKENDS`` in order and returns the first invoice that
passes verification (``receiver.verify``):

- a backend that cannot represent the request is skipped before any I/O, never rounded: a
  sats-only backend and an amount that is not a whole number of sats
  (``backend.amount_precision``), or a description hash it cannot commit to;
- a backend whose circuit breaker is open (``receiver.lightning.breaker``: consecutive failures,
  cool-down, one half-open probe) is skipped at once (``backend.circuit_open``);
- every other backend gets a share of what is left of the deadline: what is left divided by the
  number of backends still able to answer (this one included), so a hung primary cannot eat the
  secondary's time, and one that fails fast hands its unused share on. The share is one
  ``asyncio.timeout`` around the attempt (its calls and the invoice's verification): the one
  value that bounds it, whatever the backend does inside;
- an invoice that fails verification is a fault of its backend (it counts against its breaker)
  and never leaves.

When no backend succeeds, ``MintUnavailable`` (503) lists one machine code per backend.

``start_identity`` (called at start by ``receiver.services``) asks every backend who it is
(``info``), so that the invoices' payee check against the node key is on from the first mint,
not only once someone asked ``/readyz``. It waits ``IDENTITY_WAIT`` seconds at most; a node down
at start keeps being asked in the background, with back-off, until it answers.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from receiver.amounts import Msat
from receiver.errors import (
    AmountNotRepresentable,
    Attempt,
    BackendCircuitOpen,
    BackendError,
    BackendRejected,
    BackendTimeout,
    MintUnavailable,
)
from receiver.lightning.base import LightningBackend, Network
from receiver.lightning.breaker import BreakerState, CircuitBreaker, counts_as_failure
from receiver.logs import get_logger
from receiver.metrics import BACKEND_FAILURES, BREAKER_OPEN, MINT_DURATION
from receiver.retry import RetryPolicy
from receiver.verify import DecodedInvoice, Expectation, verify_invoice

log = get_logger("failover")

IDENTITY_WAIT = 1.0
"""Seconds the start waits for the backends' ``info`` before serving without the slow ones."""
IDENTITY_CALL = 5.0
"""Bound of one ``info`` call at start or in the background."""
IDENTITY_RETRY = RetryPolicy(max_attempts=None, base=1.0, cap=60.0)


@dataclass(frozen=True)
class Minted:
    """A verified invoice and the backend that minted it."""

    backend: str
    invoice: DecodedInvoice


def cannot_represent(
    backend: LightningBackend, amount_msat: Msat, description_hash: bytes | None
) -> BackendError | None:
    """Why ``backend`` cannot mint this request exactly, decided from its capabilities alone."""
    if not backend.capabilities.msat_precision and amount_msat % 1000:
        return AmountNotRepresentable(
            f"{backend.name} mints whole sats only; {amount_msat} msat is not one",
            backend=backend.name,
        )
    if description_hash is not None and not backend.capabilities.description_hash:
        return BackendRejected(
            f"{backend.name} cannot commit to a description hash", backend=backend.name
        )
    return None


class BackendChain:
    """The ordered list of backends, tried in turn for each invoice, each behind a breaker."""

    def __init__(
        self,
        backends: Sequence[LightningBackend],
        *,
        network: Network,
        min_validity: int,
        breaker_threshold: int = 3,
        breaker_cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        identity_retry: RetryPolicy = IDENTITY_RETRY,
    ) -> None:
        if not backends:
            raise ValueError("at least one backend is required")
        names = [b.name for b in backends]
        if len(set(names)) != len(names):
            raise ValueError("backend names must be unique")
        self.backends = list(backends)
        self.network = network
        self.min_validity = min_validity
        self.breakers = {
            name: CircuitBreaker(breaker_threshold, breaker_cooldown, clock) for name in names
        }
        self._identity: list[asyncio.Task[None]] = []
        self._identity_retry = identity_retry

    async def start_identity(self, wait: float = IDENTITY_WAIT) -> None:
        """Ask each backend's ``info`` (see the module docstring); returns within ``wait`` s."""
        self._identity = [
            asyncio.create_task(self._learn(b), name=f"identity-{b.name}") for b in self.backends
        ]
        await asyncio.wait(self._identity, timeout=wait)

    async def stop_identity(self) -> None:
        """Stop asking the backends that had not answered yet."""
        for task in self._identity:
            task.cancel()
        await asyncio.gather(*self._identity, return_exceptions=True)
        self._identity = []

    async def _learn(self, backend: LightningBackend) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                async with asyncio.timeout(IDENTITY_CALL):
                    info = await backend.info()
            except Exception as exc:  # down, hung or broken: asked again later, never fatal
                retry = self._identity_retry
                delay = retry.next_delay(attempt)
                if delay is None:
                    return  # a policy with an attempt limit: served without this node's key

                log.warning(
                    "backend.identity_unknown",
                    backend=backend.name,
                    error=getattr(exc, "error_code", type(exc).__name__),
                    retry_in=round(delay, 1),
                )
                await asyncio.sleep(delay)
                continue
            if info.network is not None and info.network is not self.network:
                log.error(
                    "backend.wrong_network",
                    backend=backend.name,
                    network=info.network.value,
                    expected=self.network.value,
                )
            log.info("backend.identity", backend=backend.name, node_id=info.node_id)
            return

    def by_name(self, name: str) -> LightningBackend | None:
        return next((b for b in self.backends if b.name == name), None)

    def breaker_states(self) -> dict[str, BreakerState]:
        """Each backend's breaker state (for health reporting)."""
        return {name: breaker.state for name, breaker in self.breakers.items()}

    async def mint(
        self,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        *,
        deadline_at: float,
        description_hash: bytes | None = None,
    ) -> Minted:
        """First verified invoice from the backends in order; ``deadline_at`` is loop time."""
        loop = asyncio.get_running_loop()
        attempts: list[Attempt] = []
        for index, backend in enumerate(self.backends):
            skipped = cannot_represent(backend, amount_msat, description_hash)
            if skipped is not None:
                attempts.append(Attempt(backend.name, skipped.error_code, skipped.message))
                continue
            breaker = self.breakers[backend.name]
            if not breaker.acquire():
                error = BackendCircuitOpen(
                    f"{backend.name} skipped after repeated failures; next probe in "
                    f"{breaker.retry_in():.0f} s",
                    backend=backend.name,
                )
                attempts.append(Attempt(backend.name, error.error_code, error.message))
                continue
            left = deadline_at - loop.time()
            if left <= 0:
                breaker.neutral()
                attempts.append(Attempt(backend.name, BackendTimeout.code, "deadline reached"))
                continue
            later = self._able(self.backends[index + 1 :], amount_msat, description_hash)
            budget = left / (1 + later)
            started = loop.time()
            try:
                invoice = await self._attempt(
                    backend, amount_msat, memo, expiry, description_hash, budget
                )
            except BackendError as exc:
                if counts_as_failure(exc):
                    breaker.failure()
                else:
                    breaker.neutral()
                _observe_failure(backend.name, exc.error_code, breaker)
                attempts.append(Attempt(backend.name, exc.error_code, exc.message))
                log.warning(
                    "mint.backend_failed",
                    backend=backend.name,
                    code=exc.error_code,
                    error=exc.message,
                    breaker=breaker.state.value,
                )
                continue
            except asyncio.CancelledError:
                breaker.neutral()  # the caller gave up; says nothing about the backend
                raise
            except Exception as exc:  # a backend bug must not stop the next backend
                breaker.failure()
                _observe_failure(backend.name, "backend.internal", breaker)
                attempts.append(Attempt(backend.name, "backend.internal", type(exc).__name__))
                log.error(
                    "mint.backend_crashed",
                    backend=backend.name,
                    error=type(exc).__name__,
                    exc_info=exc,
                )
                continue
            breaker.success()
            MINT_DURATION.labels(backend.name).observe(loop.time() - started)
            BREAKER_OPEN.labels(backend.name).set(0)
            return Minted(backend=backend.name, invoice=invoice)
        raise MintUnavailable("no backend could mint a verified invoice in time", attempts)

    def _able(
        self,
        backends: Sequence[LightningBackend],
        amount_msat: Msat,
        description_hash: bytes | None,
    ) -> int:
        """How many of ``backends`` could still be tried (representable, breaker not open)."""
        return sum(
            1
            for b in backends
            if cannot_represent(b, amount_msat, description_hash) is None
            and self.breakers[b.name].state is not BreakerState.OPEN
        )

    async def _attempt(
        self,
        backend: LightningBackend,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None,
        budget: float,
    ) -> DecodedInvoice:
        try:
            async with asyncio.timeout(budget):
                minted = await backend.create_invoice(amount_msat, memo, expiry, description_hash)
                expect = Expectation(
                    network=self.network,
                    amount_msat=amount_msat,
                    payment_hash=minted.payment_hash,
                    node_id=minted.node_id,
                    description_hash=description_hash.hex() if description_hash else None,
                    min_validity=self.min_validity,
                )
                # Inline: 0.1-0.4 ms of CPU, and a thread hop would cost as much (the GIL
                # gives pure-Python work no parallelism anyway).
                return verify_invoice(minted.bolt11, expect, time.time())
        except TimeoutError as exc:
            raise BackendTimeout(
                f"{backend.name} did not answer within {budget:.2f} s", backend=backend.name
            ) from exc
        except BackendError as exc:
            exc.backend = exc.backend or backend.name
            raise


def _observe_failure(backend: str, code: str, breaker: CircuitBreaker) -> None:
    BACKEND_FAILURES.labels(backend, code).inc()
    BREAKER_OPEN.labels(backend).set(1 if breaker.state is BreakerState.OPEN else 0)
