"""The pure process state machine: (state, input, now) -> (state, actions).

It never reads a clock or touches the OS. The process driver feeds it inputs (a user's
command, a spawn result, an exit, a timer) with the monotonic time, and carries out the
actions it returns: spawn, signal, set or cancel a timer, publish an event.

Transitions are the table `_TRANSITIONS`; an input that the current state does not accept
raises `IllegalTransition` (a bug in the driver, never a user error).
"""

from __future__ import annotations

import enum
import random
import signal
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sentinel.backoff import backoff_delay
from sentinel.errors import IllegalTransition
from sentinel.events import BackoffStarted, Event, Fatal, Recovered, Restart, StateChanged
from sentinel.events import Flapping as FlappingEvent
from sentinel.model import Program
from sentinel.states import ProcessState, RestartReason

S = ProcessState

# --- inputs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Start:
    """A user (or autostart) asks for the process to run."""


@dataclass(frozen=True)
class Stop:
    """A user asks for the process to stop."""


@dataclass(frozen=True)
class RestartRequest:
    """Stop the process, then start it again (right away, or through the backoff for liveness)."""

    reason: RestartReason
    detail: str = ""


@dataclass(frozen=True)
class Spawned:
    pid: int


@dataclass(frozen=True)
class SpawnFailed:
    error: str  # e.g. "No such file or directory: 'gunicorn'"


@dataclass(frozen=True)
class Exited:
    code: int  # the exit status; negative: killed by that signal


class TimerKind(enum.Enum):
    STARTED = "started"  # start_seconds have passed in STARTING
    BACKOFF = "backoff"  # the backoff delay is over
    KILL = "kill"  # stop_timeout has passed in STOPPING
    FLAPPING = "flapping"  # a flapping window has passed since the last automatic restart


@dataclass(frozen=True)
class TimerFired:
    kind: TimerKind


Input = Start | Stop | RestartRequest | Spawned | SpawnFailed | Exited | TimerFired

# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    pass


@dataclass(frozen=True)
class SendSignal:
    signal: signal.Signals  # to the whole process group, followed by SIGCONT


@dataclass(frozen=True)
class Kill:
    pass  # SIGKILL to the whole process group


@dataclass(frozen=True)
class SetTimer:
    kind: TimerKind
    delay: float


@dataclass(frozen=True)
class CancelTimer:
    kind: TimerKind


@dataclass(frozen=True)
class Publish:
    event: Event


Action = Spawn | SendSignal | Kill | SetTimer | CancelTimer | Publish


def describe_exit(code: int) -> str:
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with {code}"


class ProcessMachine:
    """The life of one process, as Supervisor defines it, with exponential backoff."""

    def __init__(
        self, name: str, group: str, settings: Program, rng: Callable[[], float] = random.random
    ) -> None:
        self.name = name
        self.group = group
        self.settings = settings  # replaced by the driver on reload; read at each decision
        self._rng = rng
        self.state = S.STOPPED
        self.pid: int | None = None
        self.restarts = 0  # restarts that happened, over the life of this process
        self.attempt = 0  # consecutive automatic restarts: drives the backoff delay
        self.failed_starts = 0  # consecutive exits during STARTING
        self.last_exit_code: int | None = None
        self.spawned_at: float | None = None  # monotonic time of the current spawn
        self.running_since: float | None = None
        self.backoff_delay = 0.0  # the delay now pending in BACKOFF, 0 otherwise
        self.flapping = False
        self._restart_times: deque[float] = deque()  # automatic restarts within the window
        self.detail = ""  # the last thing worth telling a user: a spawn error, how it exited
        self._pending: RestartRequest | None = None  # what to do once STOPPING ends
        self._actions: list[Action] = []

    def step(self, event: Input, now: float) -> list[Action]:
        """Apply one input at monotonic time `now`; return what the driver must do."""
        self._actions = []
        if isinstance(event, TimerFired) and event.kind is TimerKind.FLAPPING:
            self._flapping_over()  # in any state: it is about past restarts, not this run
        else:
            handler = _TRANSITIONS.get((self.state, type(event)))
            if handler is None:
                name = type(event).__name__
                raise IllegalTransition(f"{self.name}: {name} in state {self.state.name}")
            handler(self, event, now)
        actions, self._actions = self._actions, []
        return actions

    # --- helpers ----------------------------------------------------------------------------

    def _do(self, *actions: Action) -> None:
        self._actions.extend(actions)

    def _enter(self, new: ProcessState, reason: str, exit_code: int | None = None) -> None:
        old, self.state = self.state, new
        self._do(
            Publish(
                StateChanged(
                    process=self.name,
                    group=self.group,
                    old=old,
                    new=new,
                    pid=self.pid,
                    reason=reason,
                    exit_code=exit_code,
                )
            )
        )

    def _spawn(
        self, now: float, restart: RestartRequest | None, exit_code: int | None = None
    ) -> None:
        if restart is not None and self._flapping_stops(now, restart):
            return
        if restart is not None:
            self.restarts += 1
            self._do(
                Publish(
                    Restart(
                        process=self.name,
                        group=self.group,
                        reason=restart.reason,
                        exit_code=self.last_exit_code,
                        detail=restart.detail,
                        restarts=self.restarts,
                    )
                )
            )
        self.pid, self.spawned_at, self.running_since, self.backoff_delay = None, now, None, 0.0
        self._pending = restart
        why = "start requested"
        if restart is not None:
            why = f"restart #{self.restarts}, {restart.reason.value}" + (
                f": {restart.detail}" if restart.detail else ""
            )
        self._enter(S.STARTING, why, exit_code)
        self._do(Spawn())

    def _retry(self, now: float, restart: RestartRequest, exit_code: int | None) -> None:
        """Restart through the backoff: at once if the delay is zero, else via BACKOFF."""
        self.attempt += 1
        delay = backoff_delay(self.settings.backoff, self.attempt, self._rng())
        if delay <= 0:
            self._spawn(now, restart, exit_code)
            return
        self.backoff_delay, self._pending = delay, restart
        why = f"{restart.detail}; restart in {delay:.3g}s (attempt {self.attempt})"
        self._enter(S.BACKOFF, why, exit_code)
        self._do(
            SetTimer(TimerKind.BACKOFF, delay),
            Publish(
                BackoffStarted(
                    process=self.name, group=self.group, attempt=self.attempt, delay=delay
                )
            ),
        )

    def _flapping_stops(self, now: float, restart: RestartRequest) -> bool:
        """Count an automatic restart; True if flapping with action "stop" forbids it (-> FATAL)."""
        if restart.reason not in (RestartReason.EXITED, RestartReason.LIVENESS):
            return False  # a person's restart or a reload is not the program flapping
        policy = self.settings.flapping
        self._restart_times.append(now)
        while self._restart_times and now - self._restart_times[0] > policy.window:
            self._restart_times.popleft()
        self._do(SetTimer(TimerKind.FLAPPING, policy.window))  # re-armed by every restart
        if self.flapping or len(self._restart_times) < policy.restarts:
            return False
        self.flapping = True
        stop = policy.action == "stop"
        self._do(
            Publish(
                FlappingEvent(
                    process=self.name,
                    group=self.group,
                    restarts=len(self._restart_times),
                    window=policy.window,
                    stopped=stop,
                )
            )
        )
        if not stop:
            return False
        # -> FATAL instead of restarting again
        self.backoff_delay, self._pending = 0.0, None
        detail = f"flapping: {len(self._restart_times)} restarts in {policy.window:g}s"
        self.detail = detail
        self._enter(S.FATAL, detail, self.last_exit_code)
        self._do(
            Publish(
                Fatal(
                    process=self.name,
                    group=self.group,
                    detail=detail,
                    exit_code=self.last_exit_code,
                )
            )
        )
        return True

    def _flapping_over(self) -> None:
        """A whole window passed without an automatic restart."""
        self._restart_times.clear()
        if self.flapping:
            self.flapping = False
            window = self.settings.flapping.window
            self._do(
                Publish(
                    Recovered(
                        process=self.name,
                        group=self.group,
                        detail=f"stopped flapping: no restart in {window:g}s",
                    )
                )
            )

    def _begin_stop(self, reason: str) -> None:
        # STARTING/RUNNING -> STOPPING
        self._do(
            CancelTimer(TimerKind.STARTED),
            SendSignal(self.settings.stop_signal),
            SetTimer(TimerKind.KILL, self.settings.stop_timeout),
        )
        self._enter(S.STOPPING, reason)

    def _should_restart(self, code: int) -> bool:
        policy = self.settings.autorestart
        if policy == "always":
            return True
        if policy == "never":
            return False
        return code < 0 or code not in self.settings.exit_codes

    # --- transitions ------------------------------------------------------------------------

    def _start(self, _: Start, now: float) -> None:
        # STOPPED/EXITED/FATAL/BACKOFF -> STARTING
        if self.state is S.BACKOFF:
            self._do(CancelTimer(TimerKind.BACKOFF))
        self.attempt = self.failed_starts = 0
        self._spawn(now, None)

    def _ignore(self, _: Input, now: float) -> None:
        """The input asks for what is already so (start a RUNNING process, stop a STOPPED one)."""

    def _stop(self, _: Stop, now: float) -> None:
        if self.state is S.BACKOFF:
            # BACKOFF -> STOPPED
            self._do(CancelTimer(TimerKind.BACKOFF))
            self.backoff_delay, self._pending = 0.0, None
            self._enter(S.STOPPED, "stop requested")
        elif self.state is S.STOPPING:
            self._pending = None  # a stop wins over a restart still pending
        else:
            self._pending = None
            self._begin_stop("stop requested")

    def _restart(self, request: RestartRequest, now: float) -> None:
        if self.state in (S.STARTING, S.RUNNING):
            self._begin_stop(f"{request.reason.value} restart: stopping")
            self._pending = request
        elif self.state is S.STOPPING:
            self._pending = request
        else:
            # STOPPED/EXITED/FATAL/BACKOFF -> STARTING: nothing runs, so this is a start
            self._start(Start(), now)

    def _spawned(self, event: Spawned, now: float) -> None:
        self.pid = event.pid
        if self.settings.start_seconds <= 0:
            self._became_running(now)
        else:
            self._do(SetTimer(TimerKind.STARTED, self.settings.start_seconds))

    def _became_running(self, now: float) -> None:
        # STARTING -> RUNNING
        self.running_since, self.failed_starts, self._pending = now, 0, None
        self._enter(S.RUNNING, f"up for {self.settings.start_seconds:g}s")

    def _started(self, event: TimerFired, now: float) -> None:
        if event.kind is not TimerKind.STARTED:
            raise IllegalTransition(f"{self.name}: {event.kind.name} timer in STARTING")
        self._became_running(now)

    def _spawn_failed(self, event: SpawnFailed, now: float) -> None:
        self.detail = f"spawn error: {event.error}"
        self._failed_start(now, None)

    def _exited(self, event: Exited, now: float) -> None:
        code, self.pid = event.code, None
        self.last_exit_code, self.detail = code, describe_exit(code)
        if self.state is S.STARTING:
            self._failed_start(now, code)
        elif self.state is S.RUNNING:
            self._reset_backoff_if_it_ran(now)
            if self._should_restart(code):
                self._retry(now, RestartRequest(RestartReason.EXITED, self.detail), code)
            else:
                self._enter(S.EXITED, self.detail, code)
        else:  # STOPPING
            self._do(CancelTimer(TimerKind.KILL))
            pending, self._pending = self._pending, None
            if pending is None:
                self._enter(S.STOPPED, self.detail, code)
            elif pending.reason is RestartReason.LIVENESS:
                self.detail = f"{pending.detail} ({self.detail})"  # why, not only how it ended
                self._reset_backoff_if_it_ran(now)
                self._retry(now, pending, code)
            else:
                self._spawn(now, pending, code)

    def _reset_backoff_if_it_ran(self, now: float) -> None:
        """A process that ran reset_after before it failed starts a new series of restarts
        (for a liveness failure: it was healthy until its last failure_threshold probes)."""
        if self.running_since is not None and now - self.running_since >= (
            self.settings.backoff.reset_after
        ):
            self.attempt = 0

    def _failed_start(self, now: float, code: int | None) -> None:
        # STARTING -> BACKOFF, or -> FATAL once start_retries are used up
        self._do(CancelTimer(TimerKind.STARTED))
        self.failed_starts += 1
        if self.failed_starts > self.settings.start_retries:
            self.backoff_delay, self._pending = 0.0, None
            detail = f"{self.detail} ({self.failed_starts} failed starts in a row)"
            self._enter(S.FATAL, detail, code)
            self._do(
                Publish(Fatal(process=self.name, group=self.group, detail=detail, exit_code=code))
            )
            return
        reason = self._pending.reason if self._pending else RestartReason.EXITED
        self._retry(now, RestartRequest(reason, f"failed start: {self.detail}"), code)

    def _backoff_over(self, event: TimerFired, now: float) -> None:
        if event.kind is not TimerKind.BACKOFF:
            raise IllegalTransition(f"{self.name}: {event.kind.name} timer in BACKOFF")
        # BACKOFF -> STARTING
        self._spawn(now, self._pending)

    def _kill_timeout(self, event: TimerFired, now: float) -> None:
        if event.kind is not TimerKind.KILL:
            raise IllegalTransition(f"{self.name}: {event.kind.name} timer in STOPPING")
        self.detail = f"still running {self.settings.stop_timeout:g}s after the stop signal"
        self._do(Kill())


_Handler = Callable[[ProcessMachine, Any, float], None]  # each handler takes its own input type
_IDLE = (S.STOPPED, S.EXITED, S.FATAL)
_TRANSITIONS: dict[tuple[ProcessState, type], _Handler] = {
    **{(s, Start): ProcessMachine._start for s in (*_IDLE, S.BACKOFF)},
    **{(s, Start): ProcessMachine._ignore for s in (S.STARTING, S.RUNNING, S.STOPPING)},
    **{(s, Stop): ProcessMachine._ignore for s in _IDLE},
    **{(s, Stop): ProcessMachine._stop for s in (S.STARTING, S.RUNNING, S.STOPPING, S.BACKOFF)},
    **{(s, RestartRequest): ProcessMachine._restart for s in ProcessState if s is not S.UNKNOWN},
    (S.STARTING, Spawned): ProcessMachine._spawned,
    (S.STARTING, SpawnFailed): ProcessMachine._spawn_failed,
    (S.STARTING, TimerFired): ProcessMachine._started,
    **{(s, Exited): ProcessMachine._exited for s in (S.STARTING, S.RUNNING, S.STOPPING)},
    (S.BACKOFF, TimerFired): ProcessMachine._backoff_over,
    (S.STOPPING, TimerFired): ProcessMachine._kill_timeout,
}
