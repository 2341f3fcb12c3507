"""Probe results -> verdicts, with Kubernetes semantics (pure: no clock, no I/O).

- startup: until it has passed once, liveness and readiness are held off; failing
  failure_threshold times in a row restarts the process (as the kubelet does).
- liveness: failure_threshold failures in a row -> unhealthy -> restart (reason liveness);
  success_threshold successes in a row -> healthy.
- readiness: sets `ready` only; it never restarts anything. Not ready until it passes.
A process without a readiness probe is ready while RUNNING; one without liveness has health
`unknown`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sentinel.model import Probe
from sentinel.states import Health, ProbeResult


class ProbeKind(enum.StrEnum):
    LIVENESS = "liveness"
    READINESS = "readiness"
    STARTUP = "startup"


class Verdict(enum.Enum):
    STARTED = "started"  # the startup probe passed: liveness and readiness begin
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"  # liveness (or startup) failed enough: restart
    READY = "ready"
    NOT_READY = "not_ready"


@dataclass
class _Streak:
    threshold_ok: int
    threshold_fail: int
    successes: int = 0
    failures: int = 0

    def add(self, ok: bool) -> bool | None:
        """Count a result; True/False when a threshold is reached exactly now, else None."""
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            return True if self.successes == self.threshold_ok else None
        self.failures, self.successes = self.failures + 1, 0
        return False if self.failures == self.threshold_fail else None


@dataclass
class HealthTracker:
    """The health of one process instance; make a new one for each spawn."""

    probes: dict[ProbeKind, Probe]
    health: Health = Health.UNKNOWN
    ready: bool = False
    started: bool = False  # the startup probe has passed (or there is none)
    last: dict[ProbeKind, ProbeResult] = field(default_factory=dict)
    _streaks: dict[ProbeKind, _Streak] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.started = ProbeKind.STARTUP not in self.probes
        self._streaks = {
            kind: _Streak(p.success_threshold, p.failure_threshold)
            for kind, p in self.probes.items()
        }

    def active(self, kind: ProbeKind) -> bool:
        """Whether probes of this kind run now (startup holds the others off)."""
        return kind is ProbeKind.STARTUP if not self.started else kind is not ProbeKind.STARTUP

    def record(self, kind: ProbeKind, result: ProbeResult) -> Verdict | None:
        """Take one result; return the verdict it brings about, if any."""
        self.last[kind] = result
        if not self.active(kind):
            return None
        reached = self._streaks[kind].add(result.ok)
        if reached is None:
            return None
        if kind is ProbeKind.STARTUP:
            if reached:
                self.started = True
                return Verdict.STARTED
            self.health = Health.UNHEALTHY
            return Verdict.UNHEALTHY
        if kind is ProbeKind.LIVENESS:
            new = Health.HEALTHY if reached else Health.UNHEALTHY
            if new is self.health:
                return None
            self.health = new
            return Verdict.HEALTHY if reached else Verdict.UNHEALTHY
        if reached is self.ready:
            return None
        self.ready = reached
        return Verdict.READY if reached else Verdict.NOT_READY
