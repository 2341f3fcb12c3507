"""The restart delay policy: exponential, capped, with jitter."""

from __future__ import annotations

from sentinel.model import Backoff


def backoff_delay(policy: Backoff, attempt: int, rand: float) -> float:
    """Delay before the `attempt`-th consecutive restart (1-based).

    min(initial * multiplier**(attempt-1), max), then spread by +-jitter using `rand` in [0, 1),
    so a fleet of processes that crashed together does not restart in lockstep.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    try:
        base = min(policy.initial * policy.multiplier ** (attempt - 1), policy.max)
    except OverflowError:
        base = policy.max
    return max(0.0, base * (1.0 + policy.jitter * (2.0 * rand - 1.0)))
