"""The retry policy of the inbox and the outbox: a pure function of the attempt count.

``next_delay(attempts)`` is the wait before attempt ``attempts + 1`` after ``attempts`` failed
ones, or ``None`` when it is time to give up (the row goes to ``dead``). Exponential from
``base`` (x2 per attempt), capped at ``cap``, with "equal jitter": half of the delay is fixed,
the other half random, so retries of many events failing together spread out but none is retried
immediately. ``jitter`` in [0, 1) makes it deterministic for tests; by default it is random.
(procrastinate's retry strategy, plus the jitter and cap it lacks.)
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import timedelta

_rng = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How many attempts, and how the waits between them grow."""

    max_attempts: int = 10
    base: float = 2.0
    """Seconds before the second attempt (before jitter)."""
    cap: float = 3600.0
    """No wait is longer than this many seconds."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.base <= 0 or self.cap < self.base:
            raise ValueError("need max_attempts >= 1 and 0 < base <= cap")


DEFAULT_POLICY = RetryPolicy()


def next_delay(
    attempts: int, policy: RetryPolicy = DEFAULT_POLICY, *, jitter: float | None = None
) -> timedelta | None:
    """The wait after ``attempts`` failed attempts, or ``None``: no attempt is left."""
    if attempts < 1:
        raise ValueError("attempts counts failed attempts, starting at 1")
    if attempts >= policy.max_attempts:
        return None
    fraction = _rng.random() if jitter is None else jitter
    if not 0.0 <= fraction < 1.0:
        raise ValueError("jitter is a fraction in [0, 1)")
    # min() before the power would overflow: 2**attempts grows without bound.
    ceiling = policy.cap if attempts > 64 else min(policy.cap, policy.base * 2 ** (attempts - 1))
    return timedelta(seconds=ceiling / 2 + fraction * ceiling / 2)
