"""Events: frozen dataclasses with a timestamp, grouped by source.

Pure data (no clock, no event loop): the state machine builds them, `bus.EventBus` stamps and
carries them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from sentinel.states import ProcessState, RestartReason


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    timestamp: float = 0.0  # unix time; stamped by the bus when published with 0

    def to_dict(self) -> dict[str, Any]:
        data = {"event": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.name if isinstance(value, ProcessState) else value
        return data


@dataclass(frozen=True, kw_only=True)
class ProcessEvent(Event):
    process: str
    group: str


@dataclass(frozen=True, kw_only=True)
class StateChanged(ProcessEvent):
    kind: ClassVar[str] = "state_changed"
    old: ProcessState
    new: ProcessState
    pid: int | None
    reason: str  # why, in words: "exited with 1", "stop requested", "up for 1s"
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class Restart(ProcessEvent):
    kind: ClassVar[str] = "restart"
    reason: RestartReason
    exit_code: int | None
    detail: str
    restarts: int  # restarts of this process so far, this one included


@dataclass(frozen=True, kw_only=True)
class BackoffStarted(ProcessEvent):
    kind: ClassVar[str] = "backoff"
    attempt: int
    delay: float


@dataclass(frozen=True, kw_only=True)
class Fatal(ProcessEvent):
    kind: ClassVar[str] = "fatal"
    detail: str
    exit_code: int | None


@dataclass(frozen=True, kw_only=True)
class Flapping(ProcessEvent):
    """`restarts` automatic restarts within `window` seconds: once per episode."""

    kind: ClassVar[str] = "flapping"
    restarts: int
    window: float
    stopped: bool  # flapping.action = "stop": the process went FATAL instead of restarting


@dataclass(frozen=True, kw_only=True)
class Recovered(ProcessEvent):
    """An episode is over: flapping stopped (a window passed with no restart), or health is back."""

    kind: ClassVar[str] = "recovered"
    detail: str


@dataclass(frozen=True, kw_only=True)
class ProbeResultEvent(ProcessEvent):
    kind: ClassVar[str] = "probe_result"
    probe: str  # liveness | readiness | startup
    ok: bool
    latency: float
    detail: str
    warning: bool = False


@dataclass(frozen=True, kw_only=True)
class Unhealthy(ProcessEvent):
    """A liveness (or startup) probe failed failure_threshold times in a row: restart."""

    kind: ClassVar[str] = "unhealthy"
    probe: str
    failures: int
    detail: str


@dataclass(frozen=True, kw_only=True)
class Healthy(ProcessEvent):
    """The liveness probe passed success_threshold times in a row."""

    kind: ClassVar[str] = "healthy"
    detail: str


@dataclass(frozen=True, kw_only=True)
class DaemonWarning(Event):
    """Something sentinel could not do, and goes on without: a log file it cannot write, a
    spawn that ran out of file descriptors or memory. Each cause is told once per episode
    (or at most once a minute), never in a flood."""

    kind: ClassVar[str] = "warning"
    process: str  # the process it is about; "" for sentinel itself
    detail: str


@dataclass(frozen=True, kw_only=True)
class Readiness(ProcessEvent):
    """The readiness probe (or the startup probe, when there is none) reached a verdict."""

    kind: ClassVar[str] = "readiness"
    ready: bool
    detail: str


@dataclass(frozen=True, kw_only=True)
class Notified(ProcessEvent):
    """A program said something over its sd_notify socket (one datagram, from its own
    process tree). Fields it did not send are None (or False)."""

    kind: ClassVar[str] = "notify"
    sender: int  # the pid that sent it (SCM_CREDENTIALS)
    ready: bool = False  # READY=1
    reloading: bool = False  # RELOADING=1
    stopping: bool = False  # STOPPING=1
    watchdog: bool = False  # WATCHDOG=1: a ping
    watchdog_trigger: bool = False  # WATCHDOG=trigger: the program asks to be restarted
    status: str | None = None  # STATUS=...
    mainpid: int | None = None  # MAINPID=..., checked to be in the program's process tree


@dataclass(frozen=True, kw_only=True)
class Waiting(ProcessEvent):
    """A start is held back until the processes it depends on are RUNNING and ready."""

    kind: ClassVar[str] = "waiting"
    waiting_for: tuple[str, ...]
    detail: str  # "waiting for db: not ready"


@dataclass(frozen=True, kw_only=True)
class RollingRestart(ProcessEvent):
    """A step of a rolling restart of `program`; `process` is the instance concerned."""

    kind: ClassVar[str] = "rolling"
    program: str
    phase: str  # started | restarting | ready | completed | stopped
    done: int  # instances restarted and ready again so far
    total: int
    detail: str


@dataclass(frozen=True, kw_only=True)
class NotificationResult(Event):
    """A notification was sent, failed for good, or was suppressed by the cooldown."""

    kind: ClassVar[str] = "notification"
    result: str  # sent | failed | suppressed
    target: str  # the URL without its secrets ("" when suppressed)
    title: str


@dataclass(frozen=True, kw_only=True)
class ConfigReloaded(Event):
    kind: ClassVar[str] = "config_reloaded"
    ok: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    error: str = ""
