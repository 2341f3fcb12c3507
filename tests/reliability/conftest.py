"""Fixtures for the reliability tests: a real sentinel, and what its children leave."""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterable
from pathlib import Path

from tests.integration.conftest import (  # noqa: F401 (fixtures, found by pytest here)
    SentinelProcess,
    closed_port,
    sentinel,
    wait_until,
    webhook,
)


def read_pids(path: Path, count: int = 1, timeout: float = 10.0) -> list[int]:
    """The pids a child wrote, one a line, once there are `count` of them."""

    def ready() -> list[int] | None:
        try:
            pids = [int(x) for x in path.read_text().split()]
        except (FileNotFoundError, ValueError):
            return None
        return pids if len(pids) >= count else None

    found: list[int] = wait_until(ready, timeout, f"{count} pids in {path}")
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def reap(pids: Iterable[int]) -> None:
    """Collect processes that were re-parented to the test (a subreaper) once they exit."""
    for pid in pids:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


def kill_and_reap(pids: Iterable[int]) -> None:
    pids = list(pids)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    reap(pids)


def kill_9(daemon: SentinelProcess) -> None:
    """SIGKILL a daemon, as a crash would."""
    daemon.terminate(signal.SIGKILL)
