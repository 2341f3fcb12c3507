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
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping

from sentinel.environ import ChildEnvironment
from sentinel.model import ExecCheck
from sentinel.probes import ProbeResult
from sentinel.reaper import ChildReaper

_MAX_OUTPUT = 8192  # the first line is all that is kept; the rest is drained and dropped
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
    ) -> None:
        self._reaper = reaper
        self._loop = loop or asyncio.get_running_loop()
        self._environment = environment or ChildEnvironment()

    async def probe(self, check: ExecCheck, timeout: float, env: Mapping[str, str]) -> ProbeResult:
        began = time.perf_counter()
        argv = argv_of(check, timeout)
        read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
        try:
            popen = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=write_fd,
                stderr=subprocess.STDOUT,
                close_fds=True,
                process_group=0,
                env=self._environment.build({}, env),
            )
        except OSError as exc:
            os.close(read_fd)
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
            _kill_group(popen.pid)  # whatever the check left behind in its group
            output.close()
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


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
