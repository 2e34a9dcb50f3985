"""next_delay: exponential, jittered, capped, and None once attempts run out."""

from __future__ import annotations

from datetime import timedelta

import pytest

from receiver.inbox.retry import RetryPolicy, next_delay

POLICY = RetryPolicy(max_attempts=8, base=2.0, cap=60.0)


def test_grows_exponentially_between_half_and_full_ceiling() -> None:
    for attempts, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 16.0), (5, 32.0)]:
        low = next_delay(attempts, POLICY, jitter=0.0)
        high = next_delay(attempts, POLICY, jitter=0.999999)
        assert low == timedelta(seconds=ceiling / 2)
        assert high is not None and ceiling / 2 < high.total_seconds() < ceiling


def test_cap_bounds_every_delay() -> None:
    assert next_delay(6, POLICY, jitter=0.5) == timedelta(seconds=45)
    assert next_delay(7, POLICY, jitter=0.0) == timedelta(seconds=30)
    huge = RetryPolicy(max_attempts=10_000, base=1.0, cap=10.0)
    assert next_delay(5000, huge, jitter=0.0) == timedelta(seconds=5)


def test_none_when_attempts_run_out() -> None:
    assert next_delay(7, POLICY, jitter=0.1) is not None
    assert next_delay(8, POLICY, jitter=0.1) is None
    assert next_delay(9, POLICY) is None


def test_random_jitter_spreads_retries() -> None:
    delays = {next_delay(3, POLICY) for _ in range(50)}
    assert len(delays) > 40
    assert all(d is not None and 4 <= d.total_seconds() < 8 for d in delays)


@pytest.mark.parametrize("attempts", [0, -1])
def test_attempts_count_from_one(attempts: int) -> None:
    with pytest.raises(ValueError):
        next_delay(attempts, POLICY)


def test_bad_policy_and_jitter_are_refused() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError):
        RetryPolicy(base=10, cap=5)
    with pytest.raises(ValueError):
        next_delay(1, POLICY, jitter=1.0)
