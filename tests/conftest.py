"""Shared test fixtures: real components, and a guard against leaked processes."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

PR_SET_CHILD_SUBREAPER = 36


def pytest_configure(config: pytest.Config) -> None:
    # Orphans of anything a test starts come back to the test process instead of init,
    # so the leak guard below sees a grandchild that escaped a daemon that died.
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def require_binary(name: str, *extra_dirs: str) -> str:
    """Return the path of a real component, or fail (CI) / skip (a dev machine without it).

    CI sets SENTINEL_REQUIRE_ALL=1, so a missing install is a red test there, never a silent skip.
    """
    path = shutil.which(name, path=os.pathsep.join([*extra_dirs, os.environ.get("PATH", "")]))
    if path is not None:
        return path
    message = f"{name} is not installed (see .ci/run for the packages the tests need)"
    if os.environ.get("SENTINEL_REQUIRE_ALL") == "1":
        pytest.fail(message)
    pytest.skip(message)


def descendants(root: int) -> set[int]:
    """Pids below `root`, read from /proc (children files list direct children per thread)."""
    found: set[int] = set()
    todo = [root]
    while todo:
        pid = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for tid in tasks:
            try:
                text = Path(f"/proc/{pid}/task/{tid}/children").read_text()
            except (FileNotFoundError, ProcessLookupError):
                continue
            for child in text.split():
                if int(child) not in found:
                    found.add(int(child))
                    todo.append(int(child))
    return found


def _is_zombie_or_gone(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    """Fail a test that leaves a child, grandchild or zombie of the test process behind."""
    with no_leaks():
        yield


@contextlib.contextmanager
def no_leaks(ignore_below: Iterable[int] = ()) -> Iterator[None]:
    """Fail if a child, grandchild or zombie of the test process started inside is left.
    What runs below `ignore_below` (a browser, which starts and ends its renderers as it
    likes) is not the test's to end."""
    before = descendants(os.getpid())
    yield
    spared = set(ignore_below)
    for pid in ignore_below:
        spared |= descendants(pid)
    leaked = sorted(descendants(os.getpid()) - before - spared)
    if leaked:
        described = []
        for pid in leaked:
            try:
                cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                cmd = "?"
            zombie = " (zombie)" if _is_zombie_or_gone(pid) else ""
            described.append(f"{pid}{zombie}: {cmd.strip()}")
        _clean_up(leaked)
        pytest.fail("processes left behind by the test:\n  " + "\n  ".join(described))


def _clean_up(pids: list[int]) -> None:
    """Kill and reap what a failing test left, so one leak does not cascade into other tests."""
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for pid in pids:
        with contextlib.suppress(ChildProcessError):  # a grandchild: its own parent reaps it
            os.waitpid(pid, 0)
