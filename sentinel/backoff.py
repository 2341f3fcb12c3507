"""The restart delay policy: restart at once, then back off exponentially, capped, with jitter."""

from __future__ import annotations

from sentinel.model import Backoff


def backoff_delay(policy: Backoff, attempt: int, rand: float, *, ran: bool = True) -> float:
    """Delay before the `attempt`-th consecutive restart (1-based).

    The first restart of a process that was running is immediate: a crash or a hang after a
    stable run is repaired at once, as the kubelet and supervisord do. Consecutive ones wait
    initial, initial * multiplier, ... up to max. A process that never got up (`ran` False:
    a failed start) waits at least `initial`, so a program that cannot start does not spin.
    The delay is spread by +-jitter using `rand` in [0, 1), so a fleet of processes that
    crashed together does not restart in lockstep.
    """
    if attempt < 1:
        raise ValueError(f"attempt counts from 1, got {attempt}")
    if attempt == 1 and ran:
        return 0.0
    if policy.initial <= 0:
        base = 0.0  # "restart at once", however many attempts: never a capped overflow
    else:
        try:
            base = min(policy.initial * policy.multiplier ** max(attempt - 2, 0), policy.max)
        except OverflowError:
            base = policy.max  # the product is past any max
    return max(0.0, base * (1.0 + policy.jitter * (2.0 * rand - 1.0)))
