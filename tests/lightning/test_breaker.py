"""The circuit breaker's state machine, on a controlled clock."""

from __future__ import annotations

import pytest

from receiver.errors import (
    AmountNotRepresentable,
    BackendAuthError,
    BackendRejected,
    BackendTimeout,
    BackendUnavailable,
    InvalidInvoice,
)
from receiver.lightning.breaker import BreakerState, CircuitBreaker, counts_as_failure


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_opens_after_threshold_consecutive_failures_only() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=3, cooldown=30, clock=clock)
    breaker.failure()
    breaker.failure()
    breaker.success()  # not consecutive any more
    breaker.failure()
    breaker.failure()
    assert breaker.state is BreakerState.CLOSED and breaker.acquire()
    breaker.failure()
    assert breaker.state is BreakerState.OPEN
    assert not breaker.acquire()
    assert breaker.retry_in() == 30


def test_half_open_lets_one_probe_through() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=clock)
    breaker.failure()
    clock.now += 9.9
    assert not breaker.acquire()
    clock.now += 0.1
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.acquire()  # the probe
    assert not breaker.acquire()  # everyone else still skips
    breaker.success()
    assert breaker.state is BreakerState.CLOSED and breaker.acquire()


def test_failed_probe_reopens_for_a_full_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=2, cooldown=10, clock=clock)
    breaker.failure()
    breaker.failure()
    clock.now += 10
    assert breaker.acquire()
    breaker.failure()  # one failure is enough in half-open
    assert breaker.state is BreakerState.OPEN and breaker.retry_in() == 10
    assert not breaker.acquire()


def test_neutral_outcome_frees_the_probe() -> None:
    clock = Clock()
    breaker = CircuitBreaker(threshold=1, cooldown=10, clock=clock)
    breaker.failure()
    clock.now += 10
    assert breaker.acquire()
    breaker.neutral()  # e.g. the request was cancelled
    assert breaker.acquire()  # the next request probes at once


@pytest.mark.parametrize(
    ("error", "counts"),
    [
        (BackendUnavailable("x"), True),
        (BackendTimeout("x"), True),
        (BackendAuthError("x"), True),
        (InvalidInvoice("amount", "x"), True),
        (BackendRejected("x"), False),
        (AmountNotRepresentable("x"), False),
    ],
)
def test_what_counts_as_a_failure(error: BackendUnavailable, counts: bool) -> None:
    assert counts_as_failure(error) is counts


def test_bad_parameters() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(cooldown=0)
