"""Mint through the configured backends, in order, inside one deadline.

``BackendChain.mint`` tries each backend with what is left of the deadline, verifies what it
returns (``receiver.verify``) and returns the first invoice that passes. A backend that cannot
represent the amount exactly is skipped, never rounded; an invoice that fails verification is a
fault of its backend and never leaves. When no backend succeeds, ``MintUnavailable`` lists one
machine code per attempt.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from receiver.amounts import Msat
from receiver.errors import (
    AmountNotRepresentable,
    Attempt,
    BackendError,
    BackendTimeout,
    MintUnavailable,
)
from receiver.lightning.base import LightningBackend, Network
from receiver.logs import get_logger
from receiver.verify import DecodedInvoice, Expectation, verify_invoice

log = get_logger("failover")


@dataclass(frozen=True)
class Minted:
    """A verified invoice and the backend that minted it."""

    backend: str
    invoice: DecodedInvoice


class BackendChain:
    """The ordered list of backends, tried in turn for each invoice."""

    def __init__(
        self,
        backends: Sequence[LightningBackend],
        *,
        network: Network,
        min_validity: int,
    ) -> None:
        if not backends:
            raise ValueError("at least one backend is required")
        self.backends = list(backends)
        self.network = network
        self.min_validity = min_validity

    def by_name(self, name: str) -> LightningBackend | None:
        return next((b for b in self.backends if b.name == name), None)

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
            left = deadline_at - loop.time()
            if left <= 0:
                attempts.append(Attempt(backend.name, BackendTimeout.code, "deadline reached"))
                continue
            # A hung backend may use only its share of what is left, so the next ones still get
            # a chance; a backend that fails fast hands its unused share on.
            budget = left / (len(self.backends) - index)
            try:
                invoice = await self._attempt(
                    backend, amount_msat, memo, expiry, description_hash, budget
                )
            except BackendError as exc:
                code = exc.error_code
                attempts.append(Attempt(backend.name, code, exc.message))
                log.warning(
                    "mint.backend_failed", backend=backend.name, code=code, error=exc.message
                )
                continue
            except Exception as exc:  # a backend bug must not stop the next backend
                attempts.append(Attempt(backend.name, "backend.internal", type(exc).__name__))
                log.error(
                    "mint.backend_crashed",
                    backend=backend.name,
                    error=type(exc).__name__,
                    exc_info=exc,
                )
                continue
            return Minted(backend=backend.name, invoice=invoice)
        raise MintUnavailable("no backend could mint a verified invoice in time", attempts)

    async def _attempt(
        self,
        backend: LightningBackend,
        amount_msat: Msat,
        memo: str,
        expiry: int,
        description_hash: bytes | None,
        budget: float,
    ) -> DecodedInvoice:
        if not backend.capabilities.msat_precision and amount_msat % 1000:
            raise AmountNotRepresentable(
                f"{backend.name} mints whole sats only; {amount_msat} msat is not one",
                backend=backend.name,
            )
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
                return await asyncio.to_thread(verify_invoice, minted.bolt11, expect, time.time())
        except TimeoutError as exc:
            raise BackendTimeout(
                f"{backend.name} did not answer within {budget:.2f} s", backend=backend.name
            ) from exc
        except BackendError as exc:
            exc.backend = exc.backend or backend.name
            raise
