"""The pure process state machine: (state, input, now) -> (state, actions).

It never reads a clock or touches the OS. The process driver feeds it inputs (a user's
command, a spawn result, the main process's exit, the end of what it left behind, a timer)
with the monotonic time, and carries out the actions it returns: spawn, signal, set or cancel
a timer, publish an event.

The machine owns the whole life of a process, including the part after its main process has
gone: when the main process exits while members of its process group (or descendants that
escaped it) still run, the process is STOPPING until they are gone, with the same stop signal
and the same one `stop_timeout` KILL timer as a stop, and only then is the restart decided.
Nothing of the old process runs when the new one spawns.

Waiting for dependencies is the machine's too, and it is STOPPED: nothing of the process
runs, and Supervisor's states (which its clients know by number) have no other word for it.
The supervisor, which knows the dependency graph and who is ready, tells the machine with a
`Dependencies` input whether the processes it depends on are RUNNING and ready; while they
are not, every spawn the machine would make (a user's start, autostart, a restart after a
crash or after the backoff delay) is held: the process is STOPPED with `waiting` set and the
start kept, and it spawns when the supervisor says they are ready. So a process whose
dependency has gone FATAL waits with that reason instead of crash looping, and a stop cancels
the wait. A process that already runs is left alone when a dependency goes away (see the
supervisor's docstring for why).

What a program says over sd_notify comes in as `Notify`: READY=1 (RUNNING, with
start_seconds = "notify"; ready, for its dependents and rolling restarts), STATUS=,
RELOADING=1, STOPPING=1, MAINPID= (the main process is now that one: the driver follows it)
and WATCHDOG=1, which re-arms the watchdog timer: when it fires the process is restarted with
reason `watchdog`, through the backoff, as for a failed liveness probe.

Transitions are the table `TRANSITIONS` at the end: for each state, the inputs it accepts,
the handler, and the states the handler may move to. An input a state does not accept, or a
move the table does not list, raises `IllegalTransition` (a bug in the driver, never a user
error).
"""

from __future__ import annotations

import enum
import random
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sentinel.backoff import backoff_delay
from sentinel.errors import IllegalTransition
from sentinel.events import (
    BackoffStarted,
    Event,
    Fatal,
    Notified,
    Recovered,
    Restart,
    StateChanged,
    Waiting,
)
from sentinel.events import Flapping as FlappingEvent
from sentinel.model import Program
from sentinel.states import ProcessState, RestartReason

S = ProcessState

# A process whose leftovers outlive SIGKILL (stuck in the kernel) is given up on this long
# after the SIGKILL, so that it is not STOPPING for ever.
KILL_GRACE = 5.0
# The least time between two spawns of a process: systemd's default RestartSec. Without it,
# `backoff.initial = "0s"` and a program that dies at once was a fork loop: 1024 restarts a
# second, a CPU burnt and the log flooded.
MIN_SPAWN_INTERVAL = 0.1

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
    transient: bool = False  # sentinel ran out of descriptors or memory: not a failed start


@dataclass(frozen=True)
class Exited:
    """The main process exited (and was reaped)."""

    code: int  # the exit status; negative: killed by that signal
    leftovers: bool = False  # members of its group, or escaped descendants, still run


@dataclass(frozen=True)
class GroupGone:
    """The last of what the main process left behind has gone."""


class TimerKind(enum.Enum):
    STARTED = "started"  # start_seconds have passed in STARTING
    BACKOFF = "backoff"  # the backoff delay is over
    KILL = "kill"  # stop_timeout has passed in STOPPING
    ABANDON = "abandon"  # KILL_GRACE has passed since the SIGKILL, and leftovers survive it
    FLAPPING = "flapping"  # a flapping window has passed since the last automatic restart
    WATCHDOG = "watchdog"  # `watchdog` has passed without a WATCHDOG=1
    START_TIMEOUT = "start_timeout"  # start_seconds = "notify": start_timeout without READY=1


@dataclass(frozen=True)
class TimerFired:
    kind: TimerKind


@dataclass(frozen=True)
class Dependencies:
    """From the supervisor: whether every process this one depends on is RUNNING and ready.
    While not, spawns are held (`detail` says what for: "waiting for db: not ready")."""

    ready: bool
    waiting_for: tuple[str, ...] = ()
    detail: str = ""


@dataclass(frozen=True)
class Notify:
    """A datagram from the program over sd_notify (already checked to come from its tree)."""

    message: Notified


Input = (
    Start | Stop | RestartRequest | Spawned | SpawnFailed | Exited | GroupGone | TimerFired
    | Dependencies | Notify
)  # fmt: skip

# --- actions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Spawn:
    pass


@dataclass(frozen=True)
class SendSignal:
    """The stop signal (followed by SIGCONT): to the process group when `group`, and once to
    each descendant that escaped it."""

    signal: signal.Signals
    group: bool = True


@dataclass(frozen=True)
class Kill:
    pass  # SIGKILL to the whole process group and every escaped descendant


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


@dataclass(frozen=True)
class Follow:
    """MAINPID=: `pid`, in the process's tree, is its main process from now on."""

    pid: int


Action = Spawn | SendSignal | Kill | SetTimer | CancelTimer | Publish | Follow


@dataclass(frozen=True)
class _Crashed:
    """In STOPPING: the main process exited on its own from `origin`; what it left behind is
    being stopped, and then the exit is judged as if it had happened now."""

    origin: ProcessState  # STARTING or RUNNING
    code: int


@dataclass(frozen=True)
class _StartTimedOut:
    """In STOPPING: start_seconds = "notify" and no READY=1 came within start_timeout; once it
    is gone, that is a failed start."""


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
        self.pid: int | None = None  # the main process, while it has not been reaped
        self.restarts = 0  # restarts that happened, over the life of this process
        self.attempt = 0  # consecutive automatic restarts: drives the backoff delay
        self.failed_starts = 0  # consecutive exits during STARTING
        self.last_exit_code: int | None = None
        self.spawned_at: float | None = None  # monotonic time of the current spawn
        self.running_since: float | None = None
        self.backoff_delay = 0.0  # the delay now pending in BACKOFF, 0 otherwise
        self.backoff_until: float | None = None  # monotonic time the pending delay ends
        self.flapping = False
        # Automatic restarts within the window, oldest first. A list: an empty deque takes
        # 760 bytes, and every process has one of these.
        self._restart_times: list[float] = []
        self.detail = ""  # the last thing worth telling a user: a spawn error, how it exited
        self._pending: RestartRequest | _Crashed | _StartTimedOut | None = None  # once stopped
        self.hold: Dependencies | None = None  # dependencies not ready: spawns are held
        self.waiting = False  # STOPPED with a start held until the dependencies are ready
        self._held: RestartRequest | None = None  # the restart a held start is (None: a start)
        self.notify_ready = False  # READY=1 came in this run (and no RELOADING=1/STOPPING=1)
        self.notify_status = ""  # the last STATUS= of this run
        self.notify_phase = ""  # "reloading" or "stopping" after RELOADING=1 / STOPPING=1
        self._actions: list[Action] = []
        self._may_enter: frozenset[ProcessState] = frozenset()

    def export(self) -> dict[str, Any]:
        """Everything the machine knows, as JSON-able data: what a re-executed daemon needs
        to go on with this process (`restore`). Times are monotonic: the clock is the
        system's, and goes on across an exec."""
        pending: dict[str, Any] | None = None
        if isinstance(self._pending, RestartRequest):
            pending = {"reason": self._pending.reason.value, "detail": self._pending.detail}
        elif isinstance(self._pending, _Crashed):
            pending = {"origin": self._pending.origin.name, "code": self._pending.code}
        elif isinstance(self._pending, _StartTimedOut):
            pending = {"start_timed_out": True}
        held = None
        if self._held is not None:
            held = {"reason": self._held.reason.value, "detail": self._held.detail}
        return {
            "state": self.state.name,
            "pid": self.pid,
            "restarts": self.restarts,
            "attempt": self.attempt,
            "failed_starts": self.failed_starts,
            "last_exit_code": self.last_exit_code,
            "spawned_at": self.spawned_at,
            "running_since": self.running_since,
            "backoff_delay": self.backoff_delay,
            "backoff_until": self.backoff_until,
            "flapping": self.flapping,
            "restart_times": list(self._restart_times),
            "detail": self.detail,
            "pending": pending,
            "waiting": self.waiting,
            "held": held,
            "notify": [self.notify_ready, self.notify_status, self.notify_phase],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take over what `export` wrote (KeyError, ValueError if it is not that)."""
        self.state = ProcessState[data["state"]]
        self.pid = data["pid"]
        self.restarts, self.attempt = int(data["restarts"]), int(data["attempt"])
        self.failed_starts = int(data["failed_starts"])
        self.last_exit_code = data["last_exit_code"]
        self.spawned_at, self.running_since = data["spawned_at"], data["running_since"]
        self.backoff_delay, self.backoff_until = data["backoff_delay"], data["backoff_until"]
        self.flapping = bool(data["flapping"])
        self._restart_times = [float(t) for t in data["restart_times"]]
        self.detail = str(data["detail"])
        pending = data["pending"]
        if pending is None:
            self._pending = None
        elif "reason" in pending:
            self._pending = RestartRequest(RestartReason(pending["reason"]), pending["detail"])
        elif "start_timed_out" in pending:
            self._pending = _StartTimedOut()
        else:
            self._pending = _Crashed(ProcessState[pending["origin"]], int(pending["code"]))
        held = data["held"]
        self.waiting = bool(data["waiting"])
        self._held = (
            None if held is None else RestartRequest(RestartReason(held["reason"]), held["detail"])
        )
        ready, status, phase = data["notify"]
        self.notify_ready, self.notify_status, self.notify_phase = (
            bool(ready),
            str(status),
            str(phase),
        )

    @property
    def waiting_for(self) -> tuple[str, ...]:
        """What a held start waits for (empty when not waiting)."""
        return self.hold.waiting_for if self.waiting and self.hold is not None else ()

    @property
    def draining(self) -> bool:
        """STOPPING because the main process exited on its own, not because it was asked to."""
        return isinstance(self._pending, _Crashed)

    def step(self, event: Input, now: float) -> list[Action]:
        """Apply one input at monotonic time `now`; return what the driver must do."""
        key = event.kind if isinstance(event, TimerFired) else type(event)
        entry = TRANSITIONS.get(self.state, {}).get(key)
        if entry is None:
            what = key.name if isinstance(key, TimerKind) else key.__name__
            raise IllegalTransition(f"{self.name}: {what} in state {self.state.name}")
        handler, self._may_enter = entry
        self._actions = []
        handler(self, event, now)
        actions, self._actions = self._actions, []
        return actions

    # --- helpers ----------------------------------------------------------------------------

    def _do(self, *actions: Action) -> None:
        self._actions.extend(actions)

    def _enter(self, new: ProcessState, reason: str, exit_code: int | None = None) -> None:
        if new not in self._may_enter:
            raise IllegalTransition(f"{self.name}: {self.state.name} -> {new.name} is not listed")
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
        if self.hold is not None:
            self._wait(restart, exit_code)
            return
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
        self.pid, self.spawned_at, self.running_since = None, now, None
        self.backoff_delay, self.backoff_until = 0.0, None
        self._pending = restart
        self.waiting, self._held = False, None
        self.notify_ready, self.notify_status, self.notify_phase = False, "", ""
        why = "start requested"
        if restart is not None:
            why = f"restart #{self.restarts}, {restart.reason.value}" + (
                f": {restart.detail}" if restart.detail else ""
            )
        self._enter(S.STARTING, why, exit_code)
        self._do(Spawn())

    def _wait(self, restart: RestartRequest | None, exit_code: int | None) -> None:
        """Hold a spawn until the dependencies are ready: -> STOPPED, waiting."""
        assert self.hold is not None
        told = self.waiting and self.detail == self.hold.detail
        self.waiting, self._held, self._pending = True, restart, None
        self.backoff_delay, self.backoff_until = 0.0, None
        self.detail = self.hold.detail
        if self.state is not S.STOPPED:
            self._enter(S.STOPPED, self.detail, exit_code)
        if not told:
            self._do(Publish(self._waiting_event()))

    def _waiting_event(self) -> Waiting:
        return Waiting(
            process=self.name,
            group=self.group,
            waiting_for=self.waiting_for,
            detail=self.detail,
        )

    def _retry(
        self, now: float, restart: RestartRequest, exit_code: int | None, *, ran: bool
    ) -> None:
        """Restart through the backoff: at once if the delay is zero, else via BACKOFF.
        `ran`: the process had reached RUNNING (a crash or a hang, not a failed start)."""
        self.attempt += 1
        delay = backoff_delay(self.settings.backoff, self.attempt, self._rng(), ran=ran)
        if self.spawned_at is not None:
            # A floor on the restart rate, whatever the backoff says (initial = "0s"): a
            # process that dies at once is spawned at most every MIN_SPAWN_INTERVAL.
            delay = max(delay, self.spawned_at + MIN_SPAWN_INTERVAL - now)
        if delay <= 0:
            self._spawn(now, restart, exit_code)
            return
        self.backoff_delay, self.backoff_until, self._pending = delay, now + delay, restart
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
        if restart.reason not in _AUTOMATIC:
            return False  # a person's restart or a reload is not the program flapping
        policy = self.settings.flapping
        times = self._restart_times
        times.append(now)
        stale = 0
        while stale < len(times) and now - times[stale] > policy.window:
            stale += 1
        del times[:stale]
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
        detail = f"flapping: {len(self._restart_times)} restarts in {policy.window:g}s"
        self._give_up(detail, self.last_exit_code)
        return True

    def _give_up(self, detail: str, code: int | None) -> None:
        # -> FATAL
        self.backoff_delay, self.backoff_until, self._pending = 0.0, None, None
        self.detail = detail
        self._enter(S.FATAL, detail, code)
        self._do(Publish(Fatal(process=self.name, group=self.group, detail=detail, exit_code=code)))

    def _cancel_run_timers(self) -> None:
        """The timers of a run in STARTING or RUNNING, which end with it."""
        self._do(
            CancelTimer(TimerKind.STARTED),
            CancelTimer(TimerKind.WATCHDOG),
            CancelTimer(TimerKind.START_TIMEOUT),
        )

    def _begin_stop(self, reason: str, *, group: bool = True) -> None:
        # STARTING/RUNNING -> STOPPING
        self._cancel_run_timers()
        self._do(
            SendSignal(self.settings.stop_signal, group),
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

    def _reset_backoff_if_it_ran(self, now: float) -> None:
        """A process that ran reset_after before it failed starts a new series of restarts
        (for a liveness failure: it was healthy until its last failure_threshold probes)."""
        if self.running_since is not None and now - self.running_since >= (
            self.settings.backoff.reset_after
        ):
            self.attempt = 0

    def _record_exit(self, event: Exited) -> None:
        self.pid = None  # reaped: its number may belong to somebody else from now on
        self.last_exit_code, self.detail = event.code, describe_exit(event.code)

    # --- transitions ------------------------------------------------------------------------

    def _start(self, _: Start | RestartRequest, now: float) -> None:
        # STOPPED/EXITED/FATAL/BACKOFF -> STARTING: nothing runs, so a restart is a start
        if self.state is S.BACKOFF:
            self._do(CancelTimer(TimerKind.BACKOFF))
        self.attempt = self.failed_starts = 0
        self._spawn(now, None)

    def _ignore(self, _: Input, now: float) -> None:
        """The input asks for what is already so (start a RUNNING process, stop a STOPPED one)."""

    def _stop(self, _: Stop, now: float) -> None:
        if self.waiting:
            # STOPPED (waiting) -> STOPPED: the held start is dropped
            self.waiting, self._held = False, None
            self.detail = "stop requested"
            self._do(Publish(self._waiting_event()))
        elif self.state in (S.STOPPED, S.EXITED, S.FATAL):
            pass
        elif self.state is S.BACKOFF:
            # BACKOFF -> STOPPED
            self._do(CancelTimer(TimerKind.BACKOFF))
            self.backoff_delay, self.backoff_until, self._pending = 0.0, None, None
            self._enter(S.STOPPED, "stop requested")
        elif self.state is S.STOPPING:
            self._pending = None  # a stop wins over a restart (or a crash's verdict) pending
        else:
            self._pending = None
            self._begin_stop("stop requested")

    def _restart(self, request: RestartRequest, now: float) -> None:
        if self.state is S.STOPPING:
            self._pending = request  # done once the process is gone
        else:
            # STARTING/RUNNING -> STOPPING
            self._begin_stop(f"{request.reason.value} restart: stopping")
            self._pending = request

    def _spawned(self, event: Spawned, now: float) -> None:
        self.pid = event.pid
        settings = self.settings
        if settings.notify and settings.watchdog > 0:
            self._do(SetTimer(TimerKind.WATCHDOG, settings.watchdog))  # armed from the spawn
        if settings.starts_on_notify:
            if settings.start_timeout > 0:
                self._do(SetTimer(TimerKind.START_TIMEOUT, settings.start_timeout))
        elif settings.start_delay <= 0:
            self._became_running(now)
        else:
            self._do(SetTimer(TimerKind.STARTED, settings.start_delay))

    def _became_running(self, now: float) -> None:
        # STARTING -> RUNNING
        self.running_since, self.failed_starts, self._pending = now, 0, None
        self._do(CancelTimer(TimerKind.START_TIMEOUT))
        why = (
            "READY=1"
            if self.settings.starts_on_notify
            else f"up for {self.settings.start_delay:g}s"
        )
        self._enter(S.RUNNING, why)

    def _started(self, _: TimerFired, now: float) -> None:
        self._became_running(now)

    def _spawn_failed(self, event: SpawnFailed, now: float) -> None:
        self.detail = f"spawn error: {event.error}"
        if event.transient:
            # STARTING -> BACKOFF: retried, never FATAL for sentinel's own shortage
            request = RestartRequest(RestartReason.EXITED, self.detail)
            self._retry(now, request, None, ran=False)
            return
        self._failed_start(now, None)

    def _exited(self, event: Exited, now: float) -> None:
        """The main process exited on its own (STARTING, RUNNING) or as asked (STOPPING)."""
        self._record_exit(event)
        if self.state is not S.STOPPING:
            self._cancel_run_timers()
        if self.state is S.STOPPING:
            if event.leftovers:
                # What escaped the group only shows once the main process is gone.
                self._do(SendSignal(self.settings.stop_signal, group=False))
            else:
                self._stopped(now)
        elif event.leftovers:
            # STARTING/RUNNING -> STOPPING: the exit counts once what it left is gone
            self._pending = _Crashed(self.state, event.code)
            self._begin_stop(f"{self.detail}; stopping what it left behind")
        else:
            self._judge_exit(self.state, event.code, now)

    def _group_gone(self, _: GroupGone, now: float) -> None:
        if self.pid is None:  # else the main process still runs: its exit ends the stop
            self._stopped(now)

    def _stopped(self, now: float) -> None:
        """Everything of the process is gone: STOPPING ends in what was pending."""
        self._do(CancelTimer(TimerKind.KILL), CancelTimer(TimerKind.ABANDON))
        pending, self._pending = self._pending, None
        code = self.last_exit_code
        if isinstance(pending, _Crashed):
            self._judge_exit(pending.origin, pending.code, now)
        elif isinstance(pending, _StartTimedOut):
            self.detail = f"no READY=1 within {self.settings.start_timeout:g}s"
            self._failed_start(now, code)
        elif pending is None:
            # STOPPING -> STOPPED
            self._enter(S.STOPPED, self.detail, code)
        elif pending.reason in (RestartReason.LIVENESS, RestartReason.WATCHDOG):
            # STOPPING -> BACKOFF (or STARTING at once)
            self.detail = f"{pending.detail} ({self.detail})"  # why, not only how it ended
            self._reset_backoff_if_it_ran(now)
            self._retry(now, pending, code, ran=True)
        else:
            # STOPPING -> STARTING
            self._spawn(now, pending, code)

    def _judge_exit(self, origin: ProcessState, code: int, now: float) -> None:
        """An exit on its own from `origin`: a failed start, a restart, or EXITED."""
        if origin is S.STARTING:
            self._failed_start(now, code)
        elif self._should_restart(code):
            # RUNNING -> BACKOFF (or STARTING at once)
            self._reset_backoff_if_it_ran(now)
            self._retry(now, RestartRequest(RestartReason.EXITED, self.detail), code, ran=True)
        else:
            # RUNNING -> EXITED
            self._enter(S.EXITED, self.detail, code)

    def _failed_start(self, now: float, code: int | None) -> None:
        # STARTING -> BACKOFF, or -> FATAL once start_retries are used up
        self._do(CancelTimer(TimerKind.STARTED))
        self.failed_starts += 1
        if self.failed_starts > self.settings.start_retries:
            self._give_up(f"{self.detail} ({self.failed_starts} failed starts in a row)", code)
            return
        reason = self._pending.reason if isinstance(self._pending, RestartRequest) else None
        request = RestartRequest(reason or RestartReason.EXITED, f"failed start: {self.detail}")
        self._retry(now, request, code, ran=False)

    def _backoff_over(self, _: TimerFired, now: float) -> None:
        # BACKOFF -> STARTING
        pending = self._pending
        self._spawn(now, pending if isinstance(pending, RestartRequest) else None)

    def _kill_timeout(self, _: TimerFired, now: float) -> None:
        self.detail = f"still running {self.settings.stop_timeout:g}s after the stop signal"
        self._do(Kill(), SetTimer(TimerKind.ABANDON, KILL_GRACE))

    def _abandon(self, _: TimerFired, now: float) -> None:
        if self.pid is not None:
            return  # the main process itself is stuck: its exit is still to come
        self.detail = f"left processes that survive SIGKILL for {KILL_GRACE:g}s"
        self._stopped(now)

    def _dependencies(self, event: Dependencies, now: float) -> None:
        """The supervisor's word on the dependencies: a held start goes ahead once they are
        ready; a process that runs is left alone either way."""
        if event.ready:
            self.hold = None
            if self.waiting:
                # STOPPED (waiting) -> STARTING
                self.waiting = False
                restart, self._held = self._held, None
                self._spawn(now, restart)
            return
        self.hold = event
        if self.waiting and self.detail != event.detail:
            self.detail = event.detail
            self._do(Publish(self._waiting_event()))

    def _notified(self, event: Notify, now: float) -> None:
        """What the program said over sd_notify; what does not apply now is ignored."""
        message, state = event.message, self.state
        if state not in (S.STARTING, S.RUNNING, S.STOPPING) or self.pid is None:
            return  # nothing of it runs, or it has not been spawned yet: nothing to say
        if message.mainpid is not None and message.mainpid != self.pid:
            self.pid = message.mainpid
            self._do(Follow(message.mainpid))
        if message.status is not None:
            self.notify_status = message.status
        if message.stopping:
            self.notify_ready, self.notify_phase = False, "stopping"
        elif message.reloading:
            self.notify_ready, self.notify_phase = False, "reloading"
        if state is S.STOPPING:
            return
        if message.ready:
            self.notify_ready, self.notify_phase = True, ""
            if state is S.STARTING and self.settings.starts_on_notify:
                self._became_running(now)
        if message.watchdog_trigger:
            self._restart(
                RestartRequest(RestartReason.WATCHDOG, "the program asked (WATCHDOG=trigger)"), now
            )
        elif message.watchdog and self.settings.watchdog > 0:
            self._do(SetTimer(TimerKind.WATCHDOG, self.settings.watchdog))

    def _watchdog_missed(self, _: TimerFired, now: float) -> None:
        # STARTING/RUNNING -> STOPPING, then a restart through the backoff
        detail = f"no WATCHDOG=1 within {self.settings.watchdog:g}s"
        self._restart(RestartRequest(RestartReason.WATCHDOG, detail), now)

    def _start_timed_out(self, _: TimerFired, now: float) -> None:
        # STARTING -> STOPPING, then a failed start
        self._begin_stop(f"no READY=1 within {self.settings.start_timeout:g}s: stopping")
        self._pending = _StartTimedOut()

    def _flapping_over(self, _: TimerFired, now: float) -> None:
        """A whole window passed without an automatic restart (in any state: it is about past
        restarts, not this run)."""
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


# --- the table --------------------------------------------------------------------------------

_Handler = Callable[[ProcessMachine, Any, float], None]  # each handler takes its own input type
_Row = Mapping[type | TimerKind, tuple[_Handler, frozenset[ProcessState]]]
M = ProcessMachine
_NOWHERE: frozenset[ProcessState] = frozenset()
# Where an exit may lead once judged: a restart (at once or after a delay), EXITED, or FATAL
# (start_retries used up, or flapping with action "stop").
# A spawn held for dependencies is STOPPED (waiting) instead of STARTING.
_JUDGED = frozenset({S.STARTING, S.BACKOFF, S.EXITED, S.FATAL, S.STOPPED})
_STARTS = frozenset({S.STARTING, S.STOPPED})
# Restarts that count towards flapping: the program's doing, not a person's or a reload's.
_AUTOMATIC = frozenset({RestartReason.EXITED, RestartReason.LIVENESS, RestartReason.WATCHDOG})
_RUN_ROW_EXTRA: _Row = {
    Dependencies: (M._dependencies, _NOWHERE),
    Notify: (M._notified, frozenset({S.RUNNING, S.STOPPING})),
    TimerKind.WATCHDOG: (M._watchdog_missed, frozenset({S.STOPPING})),
}
_IDLE_ROW: _Row = {
    Start: (M._start, _STARTS),
    RestartRequest: (M._start, _STARTS),
    Stop: (M._stop, _NOWHERE),
    Dependencies: (M._dependencies, _STARTS),
    Notify: (M._notified, _NOWHERE),
    TimerKind.FLAPPING: (M._flapping_over, _NOWHERE),
}

# state -> input (its type, or a timer's kind) -> (handler, the states it may move to).
TRANSITIONS: Mapping[ProcessState, _Row] = {
    S.STOPPED: _IDLE_ROW,
    S.EXITED: _IDLE_ROW,
    S.FATAL: _IDLE_ROW,
    S.BACKOFF: {
        Start: (M._start, _STARTS),
        RestartRequest: (M._start, _STARTS),
        Stop: (M._stop, frozenset({S.STOPPED})),
        TimerKind.BACKOFF: (M._backoff_over, frozenset({S.STARTING, S.FATAL, S.STOPPED})),
        Dependencies: (M._dependencies, _NOWHERE),
        Notify: (M._notified, _NOWHERE),
        TimerKind.FLAPPING: (M._flapping_over, _NOWHERE),
    },
    S.STARTING: {
        Start: (M._ignore, _NOWHERE),
        Stop: (M._stop, frozenset({S.STOPPING})),
        RestartRequest: (M._restart, frozenset({S.STOPPING})),
        Spawned: (M._spawned, frozenset({S.RUNNING})),
        SpawnFailed: (M._spawn_failed, _JUDGED),
        Exited: (M._exited, _JUDGED | {S.STOPPING}),
        TimerKind.STARTED: (M._started, frozenset({S.RUNNING})),
        TimerKind.START_TIMEOUT: (M._start_timed_out, frozenset({S.STOPPING})),
        TimerKind.FLAPPING: (M._flapping_over, _NOWHERE),
        **_RUN_ROW_EXTRA,
    },
    S.RUNNING: {
        Start: (M._ignore, _NOWHERE),
        Stop: (M._stop, frozenset({S.STOPPING})),
        RestartRequest: (M._restart, frozenset({S.STOPPING})),
        Exited: (M._exited, _JUDGED | {S.STOPPING}),
        TimerKind.FLAPPING: (M._flapping_over, _NOWHERE),
        **_RUN_ROW_EXTRA,
    },
    S.STOPPING: {
        Start: (M._ignore, _NOWHERE),
        Stop: (M._stop, _NOWHERE),
        RestartRequest: (M._restart, _NOWHERE),
        Exited: (M._exited, _JUDGED | {S.STOPPED}),
        GroupGone: (M._group_gone, _JUDGED | {S.STOPPED}),
        TimerKind.KILL: (M._kill_timeout, _NOWHERE),
        TimerKind.ABANDON: (M._abandon, _JUDGED | {S.STOPPED}),
        TimerKind.FLAPPING: (M._flapping_over, _NOWHERE),
        Dependencies: (M._dependencies, _NOWHERE),
        Notify: (M._notified, _NOWHERE),
    },
}
