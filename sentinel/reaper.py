"""Reaping children on SIGCHLD, on the event loop: exit detection without a tick or a thread.

sentinel is a child subreaper, so a grandchild whose parent exits is re-parented to sentinel
instead of init: it is reaped here, and `children_of_daemon` can find it to kill it on stop.
One mechanism serves both: a SIGCHLD wakes the loop, `waitpid(-1)` collects every exit, and
each is handed to whoever registered its pid. This module owns waitpid for the daemon: nothing
else in the daemon may wait for children (no asyncio child watchers, no subprocess.run).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os
import signal
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from pathlib import Path

log = logging.getLogger(__name__)

PR_SET_CHILD_SUBREAPER = 36
ExitCallback = Callable[[int], None]  # receives the exit code; negative: killed by that signal


def become_subreaper() -> bool:
    """Ask the kernel to re-parent orphaned descendants to this process (Linux only)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


class ChildReaper:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._callbacks: dict[int, ExitCallback] = {}
        self._orphan_listeners: list[Callable[[], None]] = []

    def install(self) -> None:
        if not become_subreaper():
            log.warning("cannot become a child subreaper: escaped grandchildren go to init")
        self._loop.add_signal_handler(signal.SIGCHLD, self.reap)
        self.reap()  # children that exited before the handler was in place

    def close(self) -> None:
        self._loop.remove_signal_handler(signal.SIGCHLD)

    def watch(self, pid: int, callback: ExitCallback) -> None:
        """Call `callback(exit_code)` when `pid` exits. Register right after spawning, before
        awaiting anything, so the exit cannot be reaped first."""
        self._callbacks[pid] = callback

    def on_orphan_reaped(self, listener: Callable[[], None]) -> Callable[[], None]:
        """Call `listener()` after a pass that reaped orphans (what a dead process left behind
        dies as one of them); returns the function that removes it."""
        self._orphan_listeners.append(listener)
        return lambda: self._orphan_listeners.remove(listener)

    @property
    def watched(self) -> AbstractSet[int]:
        """The pids being watched (spawned by sentinel and not yet reaped): a live view, for
        the loop; copy it to take it elsewhere."""
        return self._callbacks.keys()

    def reap(self) -> None:
        orphans = 0
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            code = os.waitstatus_to_exitcode(status)
            callback = self._callbacks.pop(pid, None)
            if callback is None:
                log.debug("reaped orphan %d (exit %d)", pid, code)
                orphans += 1
                continue
            try:
                callback(code)
            except Exception:
                log.exception("exit callback for pid %d failed", pid)
        if orphans:
            for listener in list(self._orphan_listeners):
                try:
                    listener()
                except Exception:
                    log.exception("orphan listener %r failed", listener)


def children_of_daemon() -> set[int]:
    """Direct children of this process, escaped grandchildren included (they were re-parented).
    Those not in `ChildReaper.watched` are orphans: nobody here spawned them."""
    pids: set[int] = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        try:
            pids.update(int(p) for p in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def environment_of(pid: int) -> dict[bytes, bytes]:
    """The environment a process started with ({} if it is gone or unreadable)."""
    try:
        raw = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}
