"""The backoff delay policy."""

from __future__ import annotations

import pytest

from sentinel.backoff import backoff_delay
from sentinel.model import Backoff


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.5, 0.0),
        (1, 1.0, 0.0),
        (2, 0.5, 1.0),
        (3, 0.5, 2.0),
        (8, 0.5, 60.0),
        (2, 0.0, 0.8),
        (2, 1.0, 1.2),
        (10**6, 0.5, 60.0),
    ],
)
def test_delay_after_a_run(attempt: int, rand: float, expected: float) -> None:
    """At once the first time, then initial * multiplier**(n-2) up to max, spread by +-jitter;
    huge attempts cap at max."""
    assert backoff_delay(Backoff(), attempt, rand) == pytest.approx(expected)


@pytest.mark.parametrize(("attempt", "expected"), [(1, 1.0), (2, 1.0), (3, 2.0), (4, 4.0)])
def test_a_failed_start_waits_at_least_initial(attempt: int, expected: float) -> None:
    """A process that never got up is not retried at once: it could only spin."""
    assert backoff_delay(Backoff(), attempt, 0.5, ran=False) == pytest.approx(expected)


@pytest.mark.parametrize("attempt", [1, 5, 1025, 10**6])
def test_zero_initial_is_always_zero(attempt: int) -> None:
    """initial = 0 means restart at once, whatever the attempt: never an overflow capped to
    max (with 2**1024 past float's range)."""
    assert backoff_delay(Backoff(initial=0), attempt, 0.9) == 0.0
    assert backoff_delay(Backoff(initial=0), attempt, 0.9, ran=False) == 0.0


def test_max_below_initial_caps() -> None:
    """max wins over initial."""
    assert backoff_delay(Backoff(initial=5, max=2, jitter=0), 2, 0.5) == 2.0


def test_attempt_counts_from_one() -> None:
    """Attempt 0 is the caller's bug."""
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(Backoff(), 0, 0.5)
