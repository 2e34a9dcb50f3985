"""The one retry policy: capped exponential backoff, full jitter, a pure function of the attempt.

``RetryPolicy.next_delay(attempt)`` is the wait in seconds after failed attempt number
``attempt`` (1-based), or ``None`` when no attempt is left. The ceiling grows x2 per attempt from
``base`` up to ``cap``; the wait is uniform in ``[0, ceiling]`` ("full jitter", AWS architecture
blog, *Exponential Backoff And Jitter*): retries of many calls failing together spread out
instead of arriving in waves. ``max_attempts=None`` retries forever (an ``invoice_needed`` that
Kotani sends once must never die). ``jitter`` in [0, 1] makes a delay deterministic for tests.

Used by the Kotani client (seconds), the inbox worker and the forwarder (minutes to an hour);
each holds its own ``RetryPolicy`` value, never a copy of this arithmetic.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

_rng = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts, and how the waits between them grow (seconds)."""

    max_attempts: int | None = 10
    """Attempts in all, the first included; ``None``: never give up."""
    base: float = 2.0
    """Ceiling of the wait after the first failed attempt."""
    cap: float = 3600.0
    """No wait is longer than this."""

    def __post_init__(self) -> None:
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts is at least 1, or None for no limit")
        if not 0 < self.base <= self.cap:
            raise ValueError("need 0 < base <= cap")

    def ceiling(self, attempt: int) -> float:
        """The largest wait after failed attempt ``attempt``, before jitter."""
        if attempt < 1:
            raise ValueError("attempt counts failed attempts, starting at 1")
        # 2**attempt grows without bound: past 64 doublings any base is over any sane cap.
        return self.cap if attempt > 64 else min(self.cap, self.base * 2 ** (attempt - 1))

    def next_delay(self, attempt: int, *, jitter: float | None = None) -> float | None:
        """Seconds to wait after failed attempt ``attempt``, or ``None``: give up."""
        ceiling = self.ceiling(attempt)
        if self.max_attempts is not None and attempt >= self.max_attempts:
            return None
        fraction = _rng.random() if jitter is None else jitter
        if not 0.0 <= fraction <= 1.0:
            raise ValueError("jitter is a fraction in [0, 1]")
        return fraction * ceiling
