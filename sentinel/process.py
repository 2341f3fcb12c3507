"""The process driver: carries out what the state machine decides, for one process.

It spawns the child (own process group, user, umask, cwd, environment, fds 0-2 only), turns
what happens to it into machine inputs (the main process's exit from the reaper, the end of
what it left behind, timers on the loop's monotonic clock), signals what the machine says to
signal, and owns the pipes that capture its output. The machine decides everything about the
process's life, including the drain after its main process exits (systemd's
KillMode=control-group); the driver only reports and acts.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from pathlib import Path
from typing import Any

from sentinel.accounts import lookup_user
from sentinel.bus import EventBus
from sentinel.environ import ChildEnvironment
from sentinel.events import DaemonWarning, Notified, StateChanged
from sentinel.exhaustion import Exhaustion, is_exhaustion
from sentinel.inherit import InheritedOutput, Outputs
from sentinel.logs import LogCapture
from sentinel.machine import (
    Action,
    CancelTimer,
    Dependencies,
    Exited,
    Follow,
    GroupGone,
    Input,
    Kill,
    Notify,
    ProcessMachine,
    Publish,
    RestartRequest,
    SendSignal,
    SetTimer,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    Stop,
    TimerFired,
    TimerKind,
    describe_exit,
)
from sentinel.model import LogSpec, ProcessSpec
from sentinel.pids import (
    Pidfd,
    Stat,
    descends_from,
    group_members,
    signal_members,
    start_time,
    stat_of,
)
from sentinel.reaper import ChildReaper, children_of_daemon, environment_of
from sentinel.snapshot import NO_PROBES, HealthStatus, ProcessSnapshot, ProcessTree
from sentinel.states import STOPPED_STATES, ProcessState, RestartReason

log = logging.getLogger(__name__)

Sink = LogCapture | InheritedOutput  # where a child's stdout or stderr goes

# Set in every child, as supervisord sets SUPERVISOR_PROCESS_NAME; also how leftovers that
# escaped the process group are recognised when the main process has gone.
PROCESS_ENV = "SENTINEL_PROCESS_NAME"
GROUP_ENV = "SENTINEL_GROUP_NAME"
_ENV_KEY = PROCESS_ENV.encode()
# What a spawn needs beyond the program's own settings (sd_notify's socket and watchdog):
# (spec, argv, environment to add to) -> the argv to run.
Launch = Callable[[ProcessSpec, list[str], dict[str, str]], list[str]]


class ProcessDriver:
    """One supervised process: a `ProcessMachine` wired to the OS and the event loop."""

    def __init__(
        self,
        spec: ProcessSpec,
        bus: EventBus,
        reaper: ChildReaper,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        rng: Callable[[], float] = random.random,
        wall_clock: Callable[[], float] = time.time,
        outputs: Outputs | None = None,
        environment: ChildEnvironment | None = None,
        adopt: Mapping[str, Any] | None = None,
        exhaustion: Exhaustion | None = None,
        launch: Launch | None = None,
    ) -> None:
        """`outputs`: sentinel's own stdout and stderr, shared by every driver; `adopt`:
        what `hand_over` gave before a re-exec: the process runs on, adopted."""
        self.spec = spec
        self._launch = launch
        self._bus = bus
        self._reaper = reaper
        self._environment = environment or ChildEnvironment()
        self._exhaustion = exhaustion
        self._loop = loop or asyncio.get_running_loop()
        self._wall_clock = wall_clock
        self._machine = ProcessMachine(spec.name, spec.group, spec.settings, rng)
        self._started_at: float | None = None  # unix time of the current spawn
        self._stopped_at: float | None = None  # unix time the last main process exited
        self._popen: subprocess.Popen[bytes] | None = None
        self._run: _Run | None = None  # what the current (or last) spawn put into the world
        self._timers: dict[TimerKind, asyncio.TimerHandle] = {}
        self._inputs: list[Input] = []  # a list: an empty deque takes 760 bytes
        self._stepping = False
        self._waiters: list[tuple[Callable[[ProcessState], bool], asyncio.Future[None]]] = []
        self._next_spec: ProcessSpec | None = None
        self._outputs = outputs or Outputs(self._loop)
        self.depends_on: tuple[str, ...] = ()  # the processes it waits for (the supervisor's)
        self._sinks: tuple[Sink | None, Sink | None] = (None, None)
        if adopt is None:
            self._open_logs()
        else:
            self._adopt(adopt)

    # --- the public surface -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> ProcessState:
        return self._machine.state

    @property
    def pid(self) -> int | None:
        return self._machine.pid

    def start(self) -> None:
        self.feed(Start())

    def stop(self) -> None:
        self.feed(Stop())

    def restart(self, reason: RestartReason, detail: str = "") -> None:
        self.feed(RestartRequest(reason, detail))

    def dependencies(
        self, ready: bool, waiting_for: tuple[str, ...] = (), detail: str = ""
    ) -> None:
        """Whether what it depends on is RUNNING and ready (the supervisor's word)."""
        self.feed(Dependencies(ready, waiting_for, detail))

    def notified(self, message: Notified) -> None:
        """What the program said over sd_notify."""
        self.feed(Notify(message))

    @property
    def waiting(self) -> bool:
        """STOPPED with a start held until its dependencies are ready."""
        return self._machine.waiting

    @property
    def waiting_for(self) -> tuple[str, ...]:
        return self._machine.waiting_for

    def is_ready(self, health: HealthStatus = NO_PROBES) -> bool:
        """RUNNING, its readiness probe (if any) passed and, with notify, READY=1 came."""
        m = self._machine
        return (
            m.state is ProcessState.RUNNING
            and health.ready
            and (m.notify_ready or not self.spec.settings.notify)
        )

    def tree(self) -> ProcessTree | None:
        """The pids that make up the running process, for a sender's credentials."""
        run, pid = self._run, self._machine.pid
        if run is None or pid is None:
            return None
        return ProcessTree(main=pid, pgid=run.pgid, followed=frozenset(run.followed))

    def send_signal(self, sig: signal.Signals) -> bool:
        """Send a user's signal to the running process's group (`sentinel signal`), alone.
        False when no main process runs."""
        if self._machine.pid is None or self._run is None:
            return False
        return self._run.signal_alone(sig)

    def running(self) -> tuple[int, int, int] | None:
        """(main pid, its start time, process group) while the main process is unreaped."""
        run = self._run
        if run is None or run.main is None or run.start is None:
            return None
        return run.main.pid, run.start, run.pgid

    def reconfigure(self, spec: ProcessSpec) -> None:
        """Take a new spec: now if nothing runs, else at the next spawn (a reload restart)."""
        if self.state in STOPPED_STATES:
            self._apply_spec(spec)
        else:
            self._next_spec = spec

    def log(self, stream: str) -> LogCapture | None:
        """The captured stdout or stderr, if it goes to a file sentinel keeps."""
        sink = self._sinks[stream == "stderr"]
        return sink if isinstance(sink, LogCapture) else None

    async def wait_for(self, wanted: Callable[[ProcessState], bool]) -> ProcessState:
        """Wait until the state satisfies `wanted` (guard with asyncio.timeout)."""
        if not wanted(self.state):
            future: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append((wanted, future))
            await future
        return self.state

    def snapshot(
        self, health: HealthStatus = NO_PROBES, now: float | None = None
    ) -> ProcessSnapshot:
        """The process as it is now (`now`: the loop's time, if the caller has it); `health`
        is what its probes say. Call on the loop."""
        m, spec = self._machine, self.spec
        if now is None:
            now = self._loop.time()
        spawned = m.spawned_at
        state = m.state
        return ProcessSnapshot(
            name=spec.name,
            program=spec.program,
            group=spec.group,
            priority=spec.settings.priority,
            state=state,
            pid=m.pid,
            exit_code=m.last_exit_code,
            restarts=m.restarts,
            uptime_seconds=now - spawned if m.pid is not None and spawned is not None else 0.0,
            start_time=self._started_at,
            health=health.health,
            ready=self.is_ready(health),
            probes=health.probes,
            configured_probes=spec.probe_kinds,
            backoff_attempt=m.attempt,
            backoff_delay_seconds=m.backoff_delay,
            backoff_remaining_seconds=max(m.backoff_until - now, 0.0) if m.backoff_until else 0.0,
            flapping=m.flapping,
            detail=m.detail,
            stop_time=self._stopped_at,
            depends_on=self.depends_on,
            waiting_for=m.waiting_for,
            notify_status=m.notify_status,
            notify_phase=m.notify_phase,
        )

    def hand_over(self) -> dict[str, Any]:
        """For a re-exec (systemd's daemon-reexec): the machine's state, the timers' deadlines
        (monotonic: the system's clock goes on across exec), what runs, and the log pipes,
        left open for the next daemon. The process itself keeps running, as sentinel's child:
        the pid stays the same across exec."""
        run = self._run
        data: dict[str, Any] = {
            "machine": self._machine.export(),
            "timers": {kind.value: timer.when() for kind, timer in self._timers.items()},
            "run": None,
            "started_at": self._started_at,
            "stopped_at": self._stopped_at,
            "stdout": list(self._sinks[0].hand_over()) if self._sinks[0] else None,
            "stderr": list(self._sinks[1].hand_over()) if self._sinks[1] else None,
        }
        if run is not None:
            data["run"] = {
                "pgid": run.pgid,
                "main": run.main.pid if run.main is not None else None,
                "start": run.start,
                "draining": run.watching,
                "followed": [
                    [pid, start_time(pid)] for pid, fd in run.followed.items() if not fd.exited()
                ],
            }
        return data

    def _adopt(self, data: Mapping[str, Any]) -> None:
        """Go on with a process a previous daemon (this pid, before exec) handed over."""
        self._machine.restore(data["machine"])
        self._started_at, self._stopped_at = data["started_at"], data["stopped_at"]
        spec = self.spec
        sinks = []
        for stream, path, inherit, log_spec in (
            ("stdout", spec.stdout_log, spec.stdout_inherit, spec.settings.stdout),
            ("stderr", spec.stderr_log, spec.stderr_inherit, spec.settings.stderr),
        ):
            pipe = data[stream]
            pair = (pipe[0], pipe[1]) if pipe else None
            sink = self._sink(path, inherit, log_spec, pair)
            if sink is None and pair is not None:  # the new config discards it: drain nowhere
                sink = LogCapture(Path(os.devnull), 0, 0, self._loop, pipe=pair)
                sink.start()
            sinks.append(sink)
        self._sinks = (sinks[0], sinks[1])
        run = data["run"]
        if run is not None:
            # Still sentinel's unreaped child: its pid cannot have been reused.
            main = Pidfd.open(run["main"], run["start"]) if run["main"] is not None else None
            self._run = _Run(self.name, run["pgid"], self._reaper, main, run["start"])
            for pid, start in run["followed"]:
                followed = Pidfd.open(pid, start)
                if followed is not None:
                    self._run.followed[pid] = followed
            if self._machine.pid is not None:
                pid = self._machine.pid
                self._reaper.watch(pid, functools.partial(self._exited, pid))
            elif run["draining"]:
                self._run.watch(lambda: self.feed(GroupGone()))
        for kind, when in data["timers"].items():
            timer_kind = TimerKind(kind)
            self._timers[timer_kind] = self._loop.call_at(when, self._timer_fired, timer_kind)

    async def aclose(self) -> None:
        """Release the log pipes; call once the process is stopped for good."""
        for timer in self._timers.values():
            timer.cancel()
        if self._run is not None:
            self._run.unwatch()
        for sink in self._sinks:
            if sink is not None:
                await sink.aclose()

    # --- inputs and actions -----------------------------------------------------------------

    def feed(self, event: Input) -> None:
        """Give the machine an input; inputs raised while acting are queued, in order."""
        self._inputs.append(event)
        if self._stepping:
            return
        self._stepping = True
        try:
            while self._inputs:
                for action in self._machine.step(self._inputs.pop(0), self._loop.time()):
                    self._act(action)
        finally:
            self._stepping = False

    def _act(self, action: Action) -> None:
        match action:
            case Spawn():
                self._spawn()
            case SendSignal(signal=sig, group=group):
                if self._run is not None:
                    self._run.signal(sig, group=group)
            case Kill():
                log.warning("%s: %s: SIGKILL", self.name, self._machine.detail)
                if self._run is not None:
                    self._run.kill()
            case SetTimer(kind=kind, delay=delay):
                self._cancel_timer(kind)
                self._timers[kind] = self._loop.call_later(delay, self._timer_fired, kind)
            case CancelTimer(kind=kind):
                self._cancel_timer(kind)
            case Follow(pid=pid):
                self._follow(pid)
            case Publish(event=event):
                published = self._bus.publish(event)
                if (
                    isinstance(published, StateChanged)
                    and published.old is ProcessState.STOPPING
                    and self._run is not None
                ):
                    self._run.unwatch()  # stopped, or given up on: no GroupGone to come
                self._wake_waiters()  # a wait may be on more than the state (a held start)

    def _timer_fired(self, kind: TimerKind) -> None:
        del self._timers[kind]
        self.feed(TimerFired(kind))

    def _cancel_timer(self, kind: TimerKind) -> None:
        timer = self._timers.pop(kind, None)
        if timer is not None:
            timer.cancel()

    def _wake_waiters(self) -> None:
        for entry in list(self._waiters):
            wanted, future = entry
            if future.done():
                self._waiters.remove(entry)
            elif wanted(self.state):
                future.set_result(None)
                self._waiters.remove(entry)

    # --- the OS -----------------------------------------------------------------------------

    def _spawn(self) -> None:
        if self._next_spec is not None:
            self._apply_spec(self._next_spec)
        if self._run is not None:
            self._run.unwatch()
        for sink in self._sinks:
            if isinstance(sink, LogCapture):
                sink.check()  # a log directory removed, or back: at the latest now
        settings = self.spec.settings
        try:
            account = lookup_user(settings.user) if settings.user else None
            own = {PROCESS_ENV: self.name, GROUP_ENV: self.spec.group}
            if account is not None:
                own.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
            env = self._environment.build(settings.environment, own)
            out, err = self._sinks
            stdout = out.write_fd if out else subprocess.DEVNULL
            if settings.redirect_stderr:
                stderr: int = stdout
            else:
                stderr = err.write_fd if err else subprocess.DEVNULL
            argv = list(settings.command)
            if self._launch is not None:
                argv = self._launch(self.spec, argv, env)
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                cwd=settings.directory,
                env=env,
                close_fds=True,  # the child gets fds 0-2 only
                process_group=0,  # its own group: stop signals reach everything it started
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=list(account.groups) if account else None,
                umask=settings.umask if settings.umask is not None else -1,
            )
        except (OSError, ValueError, subprocess.SubprocessError) as exc:
            error = (
                f"{exc.strerror}: {settings.command[0]!r}" if isinstance(exc, OSError) else str(exc)
            )
            if is_exhaustion(exc) and self._exhaustion is not None:
                # Not the program's fault: told once a minute, and not a failed start.
                assert isinstance(exc, OSError)
                self._exhaustion.report(f"cannot spawn {self.name}", exc, self.name)
                self.feed(SpawnFailed(error, transient=True))
                return
            log.warning("%s: cannot spawn %s", self.name, error)
            self.feed(SpawnFailed(error))
            return
        self._popen = popen
        # Opened before anything can reap it: the pidfd names this child for good.
        self._run = _Run(self.name, popen.pid, self._reaper, Pidfd.open(popen.pid))
        self._started_at = self._wall_clock()
        self._reaper.watch(popen.pid, functools.partial(self._exited, popen.pid))
        _reset_oom_score(popen.pid)
        self.feed(Spawned(popen.pid))

    def _follow(self, pid: int) -> None:
        """MAINPID=: watch `pid` as the main process. Its exit is reaped here once its parent
        (the first main process, which daemonized) has exited and it is re-parented to
        sentinel, the subreaper."""
        log.info("%s: following pid %d as the main process (MAINPID)", self.name, pid)
        pidfd = Pidfd.open(pid)
        if self._run is not None and pidfd is not None:
            self._run.followed[pid] = pidfd
        self._reaper.watch(pid, functools.partial(self._exited, pid))

    def _exited(self, pid: int, code: int) -> None:
        popen = self._popen
        if popen is not None and popen.pid == pid:
            self._popen = None
            popen.returncode = code  # reaped by the reaper: tell Popen, so it does not warn
        if self._run is not None and pid in self._run.followed:
            self._run.followed.pop(pid).close()  # reaped: the number may be reused from now on
        if self._machine.pid != pid:
            # The first process of a program that named another as its MAINPID: expected.
            what = describe_exit(code)
            log.info("%s: pid %d %s; the main process is %s", self.name, pid, what, self.pid)
            run = self._run
            draining = self.state is ProcessState.STOPPING and self.pid is None
            if draining and run is not None and not run.alive():
                self.feed(GroupGone())  # it was the last of what the main process left behind
            return
        self._stopped_at = self._wall_clock()
        run = self._run
        if run is not None:
            run.reaped()  # from now on its pid, and its group's number, may be anybody's
        leftovers = run is not None and run.alive()
        if leftovers and run is not None:
            log.info("%s: pid %d exited; stopping what it left behind", self.name, run.pgid)
            run.watch(lambda: self.feed(GroupGone()))
        self.feed(Exited(code, leftovers=leftovers))

    # --- configuration ----------------------------------------------------------------------

    def _apply_spec(self, spec: ProcessSpec) -> None:
        old, self.spec, self._next_spec = self.spec, spec, None
        self._machine.settings = spec.settings
        if _log_layout(old) != _log_layout(spec):
            for sink in self._sinks:
                if sink is not None:
                    self._loop.create_task(sink.aclose())
            self._open_logs()

    def _open_logs(self) -> None:
        spec, settings = self.spec, self.spec.settings
        self._sinks = (
            self._sink(spec.stdout_log, spec.stdout_inherit, settings.stdout),
            self._sink(spec.stderr_log, spec.stderr_inherit, settings.stderr),
        )

    def _sink(
        self,
        path: Path | None,
        inherit: str | None,
        spec: LogSpec,
        pipe: tuple[int, int] | None = None,
    ) -> Sink | None:
        """Where one stream goes: a rotating file, sentinel's own stdout/stderr, or nowhere.
        `pipe`: the pipe a re-exec handed over, to go on with."""
        if inherit is not None:
            return self._outputs.open(self.spec.name, inherit, spec.prefix, pipe)
        return _capture(path, spec, self._loop, pipe, warn=self._warn)

    def _warn(self, detail: str) -> None:
        self._bus.publish(DaemonWarning(process=self.name, detail=detail))


def escapees(watched: AbstractSet[int]) -> dict[str, list[int]]:
    """Descendants re-parented to sentinel (their parent exited), by the process that started
    them: its name is in their SENTINEL_PROCESS_NAME. `watched`: the pids sentinel spawned
    (`ChildReaper.watched`); reads only /proc and `watched`, so a copy of it can be taken
    off the loop."""
    found: dict[str, list[int]] = {}
    for pid in children_of_daemon() - watched:
        name = environment_of(pid).get(_ENV_KEY)
        if name is not None:
            found.setdefault(name.decode(errors="replace"), []).append(pid)
    return found


_Signal = signal.Signals  # for the annotations of _Run, whose `signal` method hides the module
_NO_PIDS: frozenset[int] = frozenset()


class _Run:
    """What one spawn put into the world: its main process (held by a pidfd until it is
    reaped), its process group (numbered after the main pid) and the descendants that escaped
    it (setsid), found as they are re-parented to sentinel.

    Signals reach only what this spawn started. While the main process is unreaped its pid,
    and so its group's number, cannot be anybody else's, and `killpg` is safe; once it is
    reaped, each member of the group is checked (started after this spawn, and one of this
    process's by its environment or its ancestry) and signalled alone through a pidfd, since
    the number may lead a stranger's group by then. Escaped descendants die as sentinel's
    children (it is their subreaper), so a reaping pass is when to look whether everything
    has gone: no polling.
    """

    def __init__(
        self,
        name: str,
        pgid: int,
        reaper: ChildReaper,
        main: Pidfd | None,
        start: int | None = None,
    ) -> None:
        self.name, self.pgid, self._reaper = name, pgid, reaper
        self.main = main  # None once reaped
        self.start = start if start is not None else start_time(pgid)  # the main's start time
        # Frozen sets, replaced as they change: most runs never have an escaped descendant,
        # and share one empty set, where a set of their own takes 216 bytes each.
        self._escaped = _NO_PIDS
        self._signalled = _NO_PIDS  # escaped descendants that had the stop signal
        # Main processes named by MAINPID=: not sentinel's children until their parent exits,
        # so named by pidfd, never by a number their parent's reaping could free.
        self.followed: dict[int, Pidfd] = {}
        self._group_empty = False
        self._unwatch: Callable[[], None] | None = None

    def reaped(self) -> None:
        """The main process has been reaped: its number is free for the kernel to reuse."""
        if self.main is not None:
            self.main.close()
            self.main = None

    def alive(self) -> bool:
        """Whether anything of this run is left (finding descendants that escaped it)."""
        if not self._group_empty and not self._group_alive():
            self._group_empty = True
        self._find_escaped()
        return not self._group_empty or bool(self._escaped)

    def signal(self, sig: signal.Signals, *, group: bool) -> None:
        """`sig` (and SIGCONT) to the group if `group`, and once to each escaped descendant."""
        if group and not self._group_empty:
            self._signal_group(sig, resume=True)
        for pid, pidfd in self.followed.items():
            if pid not in self._signalled:  # a daemon in a session of its own
                pidfd.send(sig)
                if sig not in (signal.SIGKILL, signal.SIGCONT):
                    pidfd.send(signal.SIGCONT)
                self._signalled |= {pid}
        self._find_escaped()
        for pid in self._escaped - self._signalled:
            _signal_pid(pid, sig)
        self._signalled |= self._escaped

    def signal_alone(self, sig: _Signal) -> bool:
        """A user's signal, to the main process and its group, without SIGCONT."""
        if self.main is None:
            return False
        return self._signal_group(sig, resume=False)

    def kill(self) -> None:
        if not self._group_empty:
            self._signal_group(signal.SIGKILL, resume=False)
        for pidfd in self.followed.values():
            pidfd.send(signal.SIGKILL)
        self._find_escaped()
        for pid in self._escaped:
            _signal_pid(pid, signal.SIGKILL)

    def watch(self, on_gone: Callable[[], None]) -> None:
        """Call `on_gone()` once, after the reaping pass in which the last of it died."""

        def check() -> None:
            if not self.alive():
                self.unwatch()
                on_gone()

        self.unwatch()
        self._unwatch = self._reaper.on_orphan_reaped(check)

    @property
    def watching(self) -> bool:
        """Waiting for what the main process left behind to go."""
        return self._unwatch is not None

    def unwatch(self) -> None:
        if self._unwatch is not None:
            self._unwatch()
            self._unwatch = None

    def _signal_group(self, sig: _Signal, *, resume: bool) -> bool:
        main = self.main
        if main is not None:
            # The unreaped main pins the group's number. A main that left its own group
            # (setsid, setpgid) is signalled through its pidfd; in it, `killpg` reaches it.
            stat = stat_of(main.pid)
            sent = False
            if stat is not None and stat.pgrp != self.pgid:
                sent = main.send(sig)
                if resume and sig not in (signal.SIGKILL, signal.SIGCONT):
                    main.send(signal.SIGCONT)
            return _signal_group(self.pgid, sig, resume) or sent
        if not _alive(self.pgid, group=True):
            return False
        count = signal_members(self.pgid, sig, self._belongs)
        if resume and sig not in (signal.SIGKILL, signal.SIGCONT):
            signal_members(self.pgid, signal.SIGCONT, self._belongs)
        return count > 0

    def _group_alive(self) -> bool:
        if not _alive(self.pgid, group=True):
            return False  # nobody at all has that group: the cheap, common answer
        if self.main is not None:
            return True
        return any(self._belongs(m) for m in group_members(self.pgid))

    def _belongs(self, member: Stat) -> bool:
        """Whether a member of the group (after the main process was reaped) is this run's,
        not a stranger's that was given the group's number since."""
        if self.start is not None and member.start < self.start:
            return False
        name = environment_of(member.pid).get(_ENV_KEY)
        if name is not None:
            return name == self.name.encode()
        return descends_from(member, os.getpid())

    def _find_escaped(self) -> None:
        # Only sentinel's unreaped children, read afresh: a pid kept from an earlier look may
        # have been reaped and handed to somebody else since.
        escaped = escapees(self._reaper.watched).get(self.name)
        self._escaped = frozenset(escaped) if escaped else _NO_PIDS


def _log_layout(spec: ProcessSpec) -> tuple[object, ...]:
    return (
        spec.stdout_log,
        spec.stderr_log,
        spec.stdout_inherit,
        spec.stderr_inherit,
        spec.settings.stdout,
        spec.settings.stderr,
    )


def _capture(
    path: Path | None,
    spec: LogSpec,
    loop: asyncio.AbstractEventLoop,
    pipe: tuple[int, int] | None = None,
    *,
    warn: Callable[[str], object] | None = None,
) -> LogCapture | None:
    if path is None:
        return None
    capture = LogCapture(path, spec.max_bytes, spec.backups, loop, pipe=pipe, warn=warn)
    capture.start()
    return capture


def _signal_group(pgid: int, sig: signal.Signals, resume: bool = True) -> bool:
    """Signal a process group, with SIGCONT after anything but SIGKILL (a stopped process
    cannot act on SIGTERM). False when the group is empty."""
    try:
        os.killpg(pgid, sig)
        if resume and sig not in (signal.SIGKILL, signal.SIGCONT):
            os.killpg(pgid, signal.SIGCONT)
    except ProcessLookupError:
        return False
    except PermissionError:
        log.warning("no permission to signal process group %d", pgid)
        return False
    return True


def _alive(pid: int, *, group: bool = False) -> bool:
    """Whether a process (or, with `group`, a process group) still exists."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, under another user
    return True


def _signal_pid(pid: int, sig: signal.Signals) -> None:
    """Signal one process, with SIGCONT after anything but SIGKILL; gone is fine."""
    try:
        os.kill(pid, sig)
        if sig is not signal.SIGKILL:
            os.kill(pid, signal.SIGCONT)
    except (ProcessLookupError, PermissionError):
        pass


_OWN_OOM_SCORE_ADJ = Path("/proc/self/oom_score_adj")


def _reset_oom_score(pid: int) -> None:
    """Children start at oom_score_adj 0, even when sentinel protects itself from the OOM killer."""
    try:
        if _OWN_OOM_SCORE_ADJ.read_text().strip() != "0":
            Path(f"/proc/{pid}/oom_score_adj").write_text("0")
    except OSError:
        pass  # the child is already gone, or no /proc: nothing to reset
