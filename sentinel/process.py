"""The process driver: carries out what the state machine decides, for one process.

It spawns the child (own process group, user, umask, cwd, environment, fds 0-2 only), turns
its exit (from the reaper) and its timers (loop.call_later, monotonic) into machine inputs,
signals the whole process group, and owns the pipes that capture its output. Whatever a
process leaves behind when its main pid exits (its group, or descendants that escaped with
setsid) gets the stop signal, then SIGKILL after stop_timeout, and the exit counts only once
they are gone (systemd's KillMode=control-group): a stop returns, and a restart spawns, with
nothing of the old process left running.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import subprocess
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sentinel.events import EventBus, StateChanged
from sentinel.logs import LogCapture
from sentinel.machine import (
    Action,
    CancelTimer,
    Exited,
    Input,
    Kill,
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
)
from sentinel.model import LogSpec, ProcessSpec, lookup_user
from sentinel.reaper import ChildReaper, environment_of
from sentinel.states import STOPPED_STATES, ProcessState, RestartReason

log = logging.getLogger(__name__)

# Set in every child, as supervisord sets SUPERVISOR_PROCESS_NAME; also how leftovers that
# escaped the process group are recognised when the main process has gone.
PROCESS_ENV = "SENTINEL_PROCESS_NAME"
GROUP_ENV = "SENTINEL_GROUP_NAME"
_ENV_KEY = PROCESS_ENV.encode()


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
    ) -> None:
        self.spec = spec
        self._bus = bus
        self._reaper = reaper
        self._loop = loop or asyncio.get_running_loop()
        self._wall_clock = wall_clock
        self.machine = ProcessMachine(spec.name, spec.group, spec.settings, rng)
        self.started_at: float | None = None  # unix time of the current spawn
        self._spawned: float | None = None  # the same on the loop's (monotonic) clock: uptime
        self._popen: subprocess.Popen[bytes] | None = None
        self._timers: dict[TimerKind, asyncio.TimerHandle] = {}
        self._inputs: deque[Input] = deque()
        self._stepping = False
        self._waiters: list[tuple[Callable[[ProcessState], bool], asyncio.Future[None]]] = []
        self._next_spec: ProcessSpec | None = None
        self._stdout: LogCapture | None = None
        self._stderr: LogCapture | None = None
        self._leftovers: _Leftovers | None = None
        self._open_logs()

    # --- the public surface -----------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def state(self) -> ProcessState:
        return self.machine.state

    @property
    def pid(self) -> int | None:
        return self.machine.pid

    def start(self) -> None:
        self.feed(Start())

    def stop(self) -> None:
        self.feed(Stop())

    def restart(self, reason: RestartReason, detail: str = "") -> None:
        self.feed(RestartRequest(reason, detail))

    def send_signal(self, sig: signal.Signals) -> None:
        """Send a user's signal to the running process's group (`sentinel signal`), alone."""
        if self.machine.pid is not None:
            _signal_group(self.machine.pid, sig, resume=False)

    def reconfigure(self, spec: ProcessSpec) -> None:
        """Take a new spec: now if nothing runs, else at the next spawn (a reload restart)."""
        if self.state in STOPPED_STATES:
            self._apply_spec(spec)
        else:
            self._next_spec = spec

    def log(self, stream: str) -> LogCapture | None:
        return self._stderr if stream == "stderr" else self._stdout

    async def wait_for(self, wanted: Callable[[ProcessState], bool]) -> ProcessState:
        """Wait until the state satisfies `wanted` (guard with asyncio.timeout)."""
        if not wanted(self.state):
            future: asyncio.Future[None] = self._loop.create_future()
            self._waiters.append((wanted, future))
            await future
        return self.state

    def status(self) -> dict[str, Any]:
        m = self.machine
        running = m.state in (ProcessState.RUNNING, ProcessState.STARTING, ProcessState.STOPPING)
        uptime = self._loop.time() - self._spawned if running and self._spawned else 0.0
        return {
            "name": self.name,
            "group": self.spec.group,
            "state": m.state.name,
            "state_code": int(m.state),
            "pid": m.pid,
            "exit_code": m.last_exit_code,
            "restarts": m.restarts,
            "uptime_seconds": round(uptime, 3),
            "health": "unknown",
            "ready": m.state is ProcessState.RUNNING,
            "start_time": self.started_at,
            "backoff_attempt": m.attempt,
            "backoff_delay_seconds": m.backoff_delay,
            "detail": m.detail,
            "priority": self.spec.priority,
        }

    async def aclose(self) -> None:
        """Release the log pipes; call once the process is stopped for good."""
        for timer in self._timers.values():
            timer.cancel()
        if self._leftovers is not None:
            self._leftovers.cancel()
        for capture in (self._stdout, self._stderr):
            if capture is not None:
                await capture.aclose()

    # --- inputs and actions -----------------------------------------------------------------

    def feed(self, event: Input) -> None:
        """Give the machine an input; inputs raised while acting are queued, in order."""
        self._inputs.append(event)
        if self._stepping:
            return
        self._stepping = True
        try:
            while self._inputs:
                for action in self.machine.step(self._inputs.popleft(), self._loop.time()):
                    self._act(action)
        finally:
            self._stepping = False

    def _act(self, action: Action) -> None:
        match action:
            case Spawn():
                self._spawn()
            case SendSignal(signal=sig):
                self._signal_group(sig)
            case Kill():
                log.warning("%s: %s: SIGKILL", self.name, self.machine.detail)
                self._signal_group(signal.SIGKILL)
            case SetTimer(kind=kind, delay=delay):
                self._cancel_timer(kind)
                self._timers[kind] = self._loop.call_later(delay, self._timer_fired, kind)
            case CancelTimer(kind=kind):
                self._cancel_timer(kind)
            case Publish(event=event):
                published = self._bus.publish(event)
                if isinstance(published, StateChanged):
                    self._wake_waiters()

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
        settings = self.spec.settings
        try:
            account = lookup_user(settings.user) if settings.user else None
            env = {
                **os.environ,
                **settings.environment,
                PROCESS_ENV: self.name,
                GROUP_ENV: self.spec.group,
            }
            if account is not None:
                env.update(HOME=account.home, USER=account.name, LOGNAME=account.name)
            stdout = self._stdout.write_fd if self._stdout else subprocess.DEVNULL
            if settings.redirect_stderr:
                stderr: int = stdout
            else:
                stderr = self._stderr.write_fd if self._stderr else subprocess.DEVNULL
            popen = subprocess.Popen(
                settings.command,
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
            log.warning("%s: cannot spawn %s", self.name, error)
            self.feed(SpawnFailed(error))
            return
        self._popen = popen
        self.started_at, self._spawned = self._wall_clock(), self._loop.time()
        self._reaper.watch(popen.pid, self._exited)
        _reset_oom_score(popen.pid)
        self.feed(Spawned(popen.pid))

    def _exited(self, code: int) -> None:
        popen, self._popen = self._popen, None
        if popen is not None:
            popen.returncode = code  # reaped by the reaper: tell Popen, so it does not warn
            escaped = escapees(self._reaper).get(self.name, [])
            if _alive(popen.pid, group=True) or escaped:
                log.info("%s: stopping what pid %d left behind", self.name, popen.pid)
                settings = self.spec.settings
                self._leftovers = _Leftovers(
                    self.name,
                    popen.pid,
                    escaped=escaped,
                    stop_signal=settings.stop_signal,
                    stop_timeout=settings.stop_timeout,
                    loop=self._loop,
                    reaper=self._reaper,
                    on_gone=lambda: self._leftovers_gone(code),
                )
                return
        self.feed(Exited(code))

    def _leftovers_gone(self, code: int) -> None:
        self._leftovers = None
        self.feed(Exited(code))

    def _signal_group(self, sig: signal.Signals) -> None:
        pid = self.machine.pid
        if pid is None:
            return
        _signal_group(pid, sig)

    # --- configuration ----------------------------------------------------------------------

    def _apply_spec(self, spec: ProcessSpec) -> None:
        old, self.spec, self._next_spec = self.spec, spec, None
        self.machine.settings = spec.settings
        if _log_layout(old) != _log_layout(spec):
            for capture in (self._stdout, self._stderr):
                if capture is not None:
                    self._loop.create_task(capture.aclose())
            self._open_logs()

    def _open_logs(self) -> None:
        self._stdout = _capture(self.spec.stdout_log, self.spec.settings.stdout, self._loop)
        self._stderr = _capture(self.spec.stderr_log, self.spec.settings.stderr, self._loop)


def escapees(reaper: ChildReaper) -> dict[str, list[int]]:
    """Descendants re-parented to sentinel (their parent exited), by the process that started
    them: its name is in their SENTINEL_PROCESS_NAME."""
    found: dict[str, list[int]] = {}
    for pid in reaper.orphans():
        name = environment_of(pid).get(_ENV_KEY)
        if name is not None:
            found.setdefault(name.decode(errors="replace"), []).append(pid)
    return found


class _Leftovers:
    """What a process left behind when its main pid exited: its process group and the
    descendants that escaped it (setsid), stopped as the process itself would be (the stop
    signal, SIGKILL after stop_timeout) and watched until they are gone.

    They die as sentinel's children (it is their subreaper), so each reaping pass checks
    them: no polling. Something that outlives even SIGKILL (stuck in the kernel) is given
    up on after KILL_GRACE, with a warning, so the process is not stuck for ever.
    """

    KILL_GRACE = 5.0

    def __init__(
        self,
        name: str,
        pgid: int,
        *,
        escaped: list[int],
        stop_signal: signal.Signals,
        stop_timeout: float,
        loop: asyncio.AbstractEventLoop,
        reaper: ChildReaper,
        on_gone: Callable[[], None],
    ) -> None:
        self._name, self._pgid, self._escaped, self._on_gone = name, pgid, escaped, on_gone
        self._signal(stop_signal)
        self._timers = [
            loop.call_later(stop_timeout, self._signal, signal.SIGKILL),
            loop.call_later(stop_timeout + self.KILL_GRACE, self._give_up),
        ]
        # They were alive a moment ago; a death from now on comes with a reaping pass.
        self._unsubscribe = reaper.on_orphan_reaped(self._check)

    def cancel(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._unsubscribe()
        self._unsubscribe = lambda: None

    def _alive(self) -> bool:
        return _alive(self._pgid, group=True) or any(_alive(p) for p in self._escaped)

    def _signal(self, sig: signal.Signals) -> None:
        _signal_group(self._pgid, sig)
        for pid in self._escaped:
            _signal_pid(pid, sig)

    def _check(self) -> None:
        if not self._alive():
            self.cancel()
            self._on_gone()

    def _give_up(self) -> None:
        log.warning("%s: processes of pid %d survive SIGKILL; going on", self._name, self._pgid)
        self.cancel()
        self._on_gone()


def _log_layout(spec: ProcessSpec) -> tuple[object, ...]:
    return spec.stdout_log, spec.stderr_log, spec.settings.stdout, spec.settings.stderr


def _capture(
    path: Path | None, spec: LogSpec, loop: asyncio.AbstractEventLoop
) -> LogCapture | None:
    if path is None:
        return None
    capture = LogCapture(path, spec.max_bytes, spec.backups, loop)
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
