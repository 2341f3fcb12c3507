"""What a process looks like from outside, at one moment: the only thing outputs read.

A `ProcessSnapshot` is built on the event loop from the driver's state machine and the probe
runner's health, frozen, and then handed to the API, the metrics renderer, the notifier and
(as JSON, read back with `from_dict`) the CLI. Nothing outside the core reads a driver.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

from sentinel.states import Health, ProcessState


@dataclass(frozen=True, slots=True)
class ProbeStatus:
    """The last result of one probe of a process."""

    probe: str  # liveness | readiness | startup
    ok: bool
    detail: str
    latency: float  # seconds
    warning: bool = False  # passed with a (Nagios) warning

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "detail": self.detail,
            "latency": round(self.latency, 6),
            "warning": self.warning,
        }


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """What the probes of the current (or the last failed) run of a process say."""

    health: Health
    ready: bool  # the readiness probe passed (or the startup probe, when there is none)
    probes: tuple[ProbeStatus, ...]  # the last result of each probe that has run


NO_PROBES = HealthStatus(Health.UNKNOWN, True, ())


@dataclass(frozen=True, slots=True)
class ProcessTree:
    """The pids a running process is made of, as far as its own sentinel knows them: who may
    speak for it over sd_notify. Its descendants are found from these."""

    main: int  # the main process (MAINPID=, once it named one)
    pgid: int  # the process group it was spawned in (numbered after the first main pid)
    followed: frozenset[int] = frozenset()  # main processes it named with MAINPID=


class ProcessSnapshot(NamedTuple):
    """A process at one moment. A named tuple, not a frozen dataclass: as immutable and as
    typed, and built in half the time (a frozen dataclass sets each field through
    object.__setattr__), which a status of 500 processes does 500 times."""

    name: str  # the process: "web", or "web_0" with instances
    program: str  # the [programs.NAME] it comes from
    group: str
    priority: int
    state: ProcessState
    pid: int | None  # the main process; None once it is reaped (never a stale number)
    exit_code: int | None  # the last exit status; negative: killed by that signal
    restarts: int
    uptime_seconds: float  # since the current spawn, while its main process runs
    start_time: float | None  # unix time of the current spawn
    health: Health
    ready: bool  # RUNNING, and its readiness probe (if any) passed
    probes: tuple[ProbeStatus, ...]  # the last result of each probe that has run
    configured_probes: tuple[str, ...]  # the probe kinds its program has, run or not
    backoff_attempt: int  # consecutive automatic restarts
    backoff_delay_seconds: float  # the delay now pending in BACKOFF, 0 otherwise
    backoff_remaining_seconds: float  # what is left of it
    flapping: bool
    detail: str  # why it is in this state, in words
    stop_time: float | None = None  # unix time the last run's main process exited
    depends_on: tuple[str, ...] = ()  # the processes that must be ready before it starts
    waiting_for: tuple[str, ...] = ()  # of those, the ones a held start waits for now
    notify_status: str = ""  # the program's last sd_notify STATUS= in this run
    notify_phase: str = ""  # "reloading" or "stopping", as the program said over sd_notify

    @property
    def failing_probes(self) -> str:
        """The probes that failed, and those that passed with a warning, in one line."""
        return "; ".join(
            f"{p.probe}: {'warning: ' if p.ok else ''}{p.detail}"
            for p in self.probes
            if not p.ok or p.warning
        )

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `status --json` and `GET /api/v1/programs`."""
        state = self.state
        return {
            "name": self.name,
            "program": self.program,
            "group": self.group,
            "priority": self.priority,
            "state": _STATE_NAMES[state],
            "state_code": int(state),
            "pid": self.pid,
            "exit_code": self.exit_code,
            "restarts": self.restarts,
            "uptime_seconds": _ms(self.uptime_seconds),
            "start_time": self.start_time,
            "stop_time": self.stop_time,
            "health": str(self.health),
            "ready": self.ready,
            "probes": {p.probe: p.to_dict() for p in self.probes} if self.probes else {},
            "configured_probes": list(self.configured_probes),
            "backoff_attempt": self.backoff_attempt,
            "backoff_delay_seconds": self.backoff_delay_seconds,
            "backoff_remaining_seconds": _ms(self.backoff_remaining_seconds),
            "flapping": self.flapping,
            "detail": self.detail,
            "depends_on": list(self.depends_on),
            "waiting_for": list(self.waiting_for),
            "notify_status": self.notify_status,
            "notify_phase": self.notify_phase,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProcessSnapshot:
        """Read back what `to_dict` wrote (a KeyError or ValueError if it is not that)."""
        return cls(
            name=str(data["name"]),
            program=str(data["program"]),
            group=str(data["group"]),
            priority=int(data["priority"]),
            state=ProcessState[data["state"]],
            pid=None if data["pid"] is None else int(data["pid"]),
            exit_code=None if data["exit_code"] is None else int(data["exit_code"]),
            restarts=int(data["restarts"]),
            uptime_seconds=float(data["uptime_seconds"]),
            start_time=None if data["start_time"] is None else float(data["start_time"]),
            health=Health(data["health"]),
            ready=bool(data["ready"]),
            probes=tuple(
                ProbeStatus(
                    probe=str(kind),
                    ok=bool(p["ok"]),
                    detail=str(p["detail"]),
                    latency=float(p["latency"]),
                    warning=bool(p["warning"]),
                )
                for kind, p in data["probes"].items()
            ),
            configured_probes=tuple(str(k) for k in data["configured_probes"]),
            backoff_attempt=int(data["backoff_attempt"]),
            backoff_delay_seconds=float(data["backoff_delay_seconds"]),
            backoff_remaining_seconds=float(data["backoff_remaining_seconds"]),
            flapping=bool(data["flapping"]),
            detail=str(data["detail"]),
            # .get: a daemon from before stop_time still answers a newer CLI
            stop_time=None if data.get("stop_time") is None else float(data["stop_time"]),
            depends_on=tuple(str(n) for n in data.get("depends_on", ())),
            waiting_for=tuple(str(n) for n in data.get("waiting_for", ())),
            notify_status=str(data.get("notify_status", "")),
            notify_phase=str(data.get("notify_phase", "")),
        )


_STATE_NAMES = {state: state.name for state in ProcessState}  # an enum's .name is a property


def _ms(seconds: float) -> float:
    """Seconds to the millisecond (what round(seconds, 3) gives, at half its cost)."""
    return int(seconds * 1000 + 0.5) / 1000
