"""The one retry policy: full jitter under a capped exponential ceiling, or give up."""

import pytest

from receiver.retry import RetryPolicy


def test_ceiling_doubles_from_base_up_to_cap() -> None:
    policy = RetryPolicy(max_attempts=None, base=0.5, cap=3.0)
    assert [policy.ceiling(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert policy.ceiling(10_000) == 3.0  # no overflow for a row retried for months


def test_full_jitter_spans_zero_to_ceiling() -> None:
    policy = RetryPolicy(max_attempts=None, base=4.0, cap=60.0)
    assert policy.next_delay(3, jitter=0.0) == 0.0
    assert policy.next_delay(3, jitter=1.0) == 16.0
    assert policy.next_delay(3, jitter=0.25) == 4.0
    draws = {policy.next_delay(3) for _ in range(200)}
    assert all(d is not None and 0.0 <= d <= 16.0 for d in draws)
    assert len(draws) > 150  # random, not a constant


def test_gives_up_after_max_attempts_and_never_when_unlimited() -> None:
    assert RetryPolicy(max_attempts=3).next_delay(2, jitter=0.5) is not None
    assert RetryPolicy(max_attempts=3).next_delay(3) is None
    assert RetryPolicy(max_attempts=None).next_delay(1_000_000, jitter=0.5) is not None


@pytest.mark.parametrize(
    "kwargs", [{"max_attempts": 0}, {"base": 0.0}, {"base": 5.0, "cap": 1.0}]
)
def test_refuses_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_refuses_attempt_zero_and_bad_jitter() -> None:
    with pytest.raises(ValueError):
        RetryPolicy().next_delay(0)
    with pytest.raises(ValueError):
        RetryPolicy().next_delay(1, jitter=1.5)
