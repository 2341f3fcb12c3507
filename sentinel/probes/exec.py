"""Exec checks: a command (no shell) in its own process group.

Exit codes as Kubernetes reads them by default: 0 passes, anything else fails, so
`test -f /run/ready`, `grep -q` and `pg_isready` work as they do in a pod. With
`codes = "nagios"` (the default for the bundled checks): 0 OK, 1 WARNING (passes, reported),
2 CRITICAL and 3 UNKNOWN (and anything else) fail. The first line of output is the detail. At
the timeout the whole process group is killed. The exit is collected by the daemon's reaper,
which owns waitpid.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from sentinel.environ import ChildEnvironment
from sentinel.exhaustion import Exhaustion, is_exhaustion
from sentinel.model import ExecCheck
from sentinel.pids import signal_members
from sentinel.probes import ProbeResult
from sentinel.reaper import ChildReaper, children_of_daemon, environment_of

_MAX_OUTPUT = 8192  # the first line is all that is kept; the rest is drained and dropped
# In every probe's environment: what a probe left behind (setsid) is found by it.
PROBE_ENV = "SENTINEL_PROBE"
_PROBE_KEY = PROBE_ENV.encode()
_NAGIOS = {0: "OK", 1: "WARNING", 2: "CRITICAL", 3: "UNKNOWN"}


def argv_of(check: ExecCheck, timeout: float) -> list[str]:
    """The command to run; a bundled check runs with sentinel's own Python, and is told to give
    up a little before the probe's timeout so that it can still say why."""
    if check.check is not None:
        own = [] if "--timeout" in check.args else ["--timeout", f"{max(timeout * 0.8, 0.05):g}s"]
        return [sys.executable, "-m", f"sentinel.checks.{check.check}", *own, *check.args]
    assert check.command is not None
    return check.command


class ExecProber:
    def __init__(
        self,
        reaper: ChildReaper,
        loop: asyncio.AbstractEventLoop | None = None,
        environment: ChildEnvironment | None = None,
        exhaustion: Exhaustion | None = None,
    ) -> None:
        self._reaper = reaper
        self._loop = loop or asyncio.get_running_loop()
        self._environment = environment or ChildEnvironment()
        self._exhaustion = exhaustion
        self._running: set[bytes] = set()  # the tokens of probes not finished
        self._tokens = itertools.count(1)
        # What a finished probe left is re-parented to sentinel; it is swept when found.
        self._unlisten = reaper.on_orphan_reaped(self.sweep)

    def sweep(self) -> None:
        """Kill sentinel's children that a finished probe left behind (they escaped its
        process group with setsid). They are sentinel's unreaped children: their pids are
        theirs, and they are reaped as orphans."""
        for pid in children_of_daemon() - self._reaper.watched:
            token = environment_of(pid).get(_PROBE_KEY)
            if token is not None and token not in self._running:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)

    async def probe(self, check: ExecCheck, timeout: float, env: Mapping[str, str]) -> ProbeResult:
        try:
            return await self._probe(check, timeout, env)
        except OSError as exc:
            # Out of descriptors or memory anywhere in the probe (its pipe, its spawn, the
            # look in /proc for what it left): a failed probe and one warning a minute.
            if not is_exhaustion(exc):
                raise
            if self._exhaustion is not None:
                self._exhaustion.report("an exec probe cannot run", exc)
            return ProbeResult(
                False, 0.0, f"cannot run {check.command or check.check!r}: {exc.strerror}"
            )

    async def _probe(self, check: ExecCheck, timeout: float, env: Mapping[str, str]) -> ProbeResult:
        began = time.perf_counter()
        argv = argv_of(check, timeout)
        token = str(next(self._tokens)).encode()
        try:
            read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        except OSError as exc:  # out of descriptors: a failed probe, and one warning a minute
            if self._exhaustion is not None:
                self._exhaustion.report("an exec probe cannot make its pipe", exc)
            return ProbeResult(False, 0.0, f"cannot run {argv[0]!r}: {exc.strerror}")
        self._running.add(token)
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=subprocess.STDOUT,
                close_fds=True,
                process_group=0,
                env=self._environment.build({}, {**env, PROBE_ENV: token.decode()}),
            )
        except OSError as exc:
            self._running.discard(token)
            os.close(read_fd)
            if self._exhaustion is not None and is_exhaustion(exc):
                self._exhaustion.report("an exec probe cannot be spawned", exc)
            return ProbeResult(
                False, time.perf_counter() - began, f"cannot run {argv[0]!r}: {exc.strerror}"
            )
        finally:
            os.close(write_fd)
        exited: asyncio.Future[int] = self._loop.create_future()

        def on_exit(code: int) -> None:
            popen.returncode = code  # reaped by the daemon's reaper: tell Popen
            if not exited.done():
                exited.set_result(code)

        self._reaper.watch(popen.pid, on_exit)
        output = _Output(read_fd, self._loop)
        try:
            # asyncio.wait, not asyncio.timeout: a timeout would cancel the exit future itself.
            done, _ = await asyncio.wait({exited}, timeout=timeout)
            if not done:
                _kill_group(popen.pid)
                await exited
                latency = time.perf_counter() - began
                return ProbeResult(False, latency, f"timed out after {timeout:g}s (killed)")
            code = exited.result()
        finally:
            _kill_leftovers(popen.pid, token)  # whatever the check left behind in its group
            output.close()
            self._running.discard(token)
            self.sweep()
        latency = time.perf_counter() - began
        line = output.first_line() or f"exit {code}"
        if code == 0 or (code == 1 and check.nagios):
            return ProbeResult(True, latency, line, warning=code == 1)
        status = f"exit {code}" if code >= 0 else f"killed by signal {-code}"
        if check.nagios:
            status = _NAGIOS.get(code, status)
        return ProbeResult(False, latency, line if status in line else f"{status}: {line}")


class _Output:
    """Collects a check's output from a non-blocking pipe on the event loop."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd, self._loop = fd, loop
        self._data = bytearray()
        os.set_blocking(fd, False)
        loop.add_reader(fd, self._read)

    def _read(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while chunk := os.read(self._fd, 65536):
                if len(self._data) < _MAX_OUTPUT:
                    self._data += chunk[: _MAX_OUTPUT - len(self._data)]
            self._loop.remove_reader(self._fd)  # EOF

    def close(self) -> None:
        self._read()  # what the check wrote just before it exited
        self._loop.remove_reader(self._fd)
        os.close(self._fd)

    def first_line(self) -> str:
        return self._data.decode(errors="replace").strip().split("\n", 1)[0].strip()


def _kill_leftovers(pgid: int, token: bytes) -> None:
    """SIGKILL what is left in a finished probe's group. Its leader has been reaped, so the
    group's number may be a stranger's by now: only members carrying this probe's token are
    killed, each through a pidfd."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return  # the common case: nothing left, and nobody else has the number
    except PermissionError:
        pass
    signal_members(pgid, signal.SIGKILL, lambda m: environment_of(m.pid).get(_PROBE_KEY) == token)


def _kill_group(pgid: int) -> None:
    """SIGKILL a probe's group while its leader is unreaped (the number is the probe's)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
