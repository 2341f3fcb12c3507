"""What the benchmark scripts share: polling, a process's CPU and memory from /proc, the
installed console scripts, and making sure nothing a daemon started outlives the run."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PR_SET_CHILD_SUBREAPER = 36


class BenchmarkError(Exception):
    """The benchmark could not run (a timeout, a daemon exiting): not a measurement."""


def wait_for(check: Callable[[], bool], timeout: float, what: str, poll: float) -> float:
    """Poll `check` until true (for what emits no event to wait on); the seconds it took."""
    began = time.monotonic()
    deadline = began + timeout
    while not check():
        if time.monotonic() > deadline:
            raise BenchmarkError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(poll)
    return time.monotonic() - began


def cpu_seconds_of(pid: int) -> float:
    """utime + stime of a process, all its threads, from /proc (in clock ticks: 10 ms)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def rss_bytes_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


def installed_script(script: str, module: str) -> list[str]:
    """The console script next to this Python (not a pyenv shim), else `python -m`."""
    found = shutil.which(script, path=str(Path(sys.executable).parent))
    return [found] if found is not None else [sys.executable, "-m", module]


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


# --- leftovers --------------------------------------------------------------------------------


def become_subreaper() -> None:
    """Orphans of our descendants (a killed daemon's programs) are re-parented to us."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def own_children() -> set[int]:
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        with contextlib.suppress(OSError):
            pids.update(int(p) for p in (task / "children").read_text().split())
    return pids


def describe(pid: int) -> str:
    """A process by its command line and the supervisor that started it."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").strip()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return f"{pid} (gone)"
    owner = next(
        (
            e.decode(errors="replace")
            for e in environ
            if e.startswith((b"SENTINEL_PROCESS_NAME=", b"SUPERVISOR_PROCESS_NAME="))
        ),
        "no supervisor marker",
    )
    return f"{pid} {cmdline.decode(errors='replace')!r} ({owner})"


def reap_leftovers(keep: frozenset[int] = frozenset()) -> list[str]:
    """Kill and reap every child still ours except `keep` (every daemon is stopped by now);
    describe them."""
    found = own_children() - keep
    described = [describe(pid) for pid in sorted(found)]
    for pid in found:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in found:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
    return described
