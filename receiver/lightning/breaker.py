"""A circuit breaker per backend: skip a backend that keeps failing, probe it after a cool-down.

    closed ──(threshold consecutive failures)──> open ──(cooldown elapsed)──> half-open
      ^                                           ^                              │
      └──────────────(the probe succeeds)─────────┴──────(the probe fails)───────┘

While open, ``acquire`` says no and the mint path moves on at once (``backend.circuit_open``)
instead of spending the deadline on a node known to be down. In half-open exactly one request
(the probe) goes through; the others keep skipping until it has answered. Only faults of the
backend count (unreachable, timeout, server error, bad credentials, an answer of the wrong shape,
an invoice that fails verification); a node refusing one request (``backend.rejected``) or an
amount it cannot represent says nothing about its health.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import StrEnum

from receiver.errors import AmountNotRepresentable, BackendError, BackendRejected


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


def counts_as_failure(exc: BackendError) -> bool:
    """Whether an error says the backend is unhealthy (rather than refusing one request)."""
    return not isinstance(exc, BackendRejected | AmountNotRepresentable)


class CircuitBreaker:
    """Consecutive-failure breaker with a cool-down and a single half-open probe."""

    def __init__(
        self,
        threshold: int = 3,
        cooldown: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if threshold < 1 or cooldown <= 0:
            raise ValueError("threshold >= 1 and cooldown > 0")
        self.threshold = threshold
        self.cooldown = cooldown
        self._clock = clock
        self._failures = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self.cooldown:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def retry_in(self) -> float:
        """Seconds until the next probe is allowed (0 when closed or due)."""
        if self._opened_at is None:
            return 0.0
        return max(0.0, self._opened_at + self.cooldown - self._clock())

    def acquire(self) -> bool:
        """May a request go to this backend now? In half-open, only the first (the probe)."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def success(self) -> None:
        self._failures = 0
        self._opened_at = None
        self._probing = False

    def failure(self) -> None:
        self._failures += 1
        if self._probing or self._failures >= self.threshold:
            self._opened_at = self._clock()
        self._probing = False

    def neutral(self) -> None:
        """The request ended saying nothing about health (refused, cancelled): free the probe."""
        if self._probing:
            self._probing = False
            # Due again at once: the next request probes instead of waiting a whole cool-down.
            self._opened_at = self._clock() - self.cooldown
