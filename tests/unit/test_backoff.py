"""The backoff delay policy."""

from __future__ import annotations

import pytest

from sentinel.backoff import backoff_delay
from sentinel.model import Backoff


@pytest.mark.parametrize(
    ("attempt", "rand", "expected"),
    [
        (1, 0.5, 1.0),
        (2, 0.5, 2.0),
        (7, 0.5, 60.0),
        (1, 0.0, 0.8),
        (1, 1.0, 1.2),
        (10**6, 0.5, 60.0),
    ],
)
def test_delay(attempt: int, rand: float, expected: float) -> None:
    """min(initial * multiplier**(n-1), max), spread by +-jitter; huge attempts cap at max."""
    assert backoff_delay(Backoff(), attempt, rand) == pytest.approx(expected)


def test_zero_initial_is_always_zero() -> None:
    """initial = 0 means restart at once, whatever the attempt."""
    assert backoff_delay(Backoff(initial=0), 5, 0.9) == 0.0


def test_attempt_counts_from_one() -> None:
    """Attempt 0 is the caller's bug."""
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(Backoff(), 0, 0.5)
