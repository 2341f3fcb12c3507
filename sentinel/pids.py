"""Which process a pid is: its start time, pidfds, and signals that reach only who was meant.

A pid alone names a process only until it is reaped; then the number may be handed to anybody.
A process is named here by its pid *and* its start time (field 22 of /proc/PID/stat, clock
ticks since boot), which no later process can share with it, and it is signalled through a
pidfd opened while it was known to be that process (a pidfd keeps naming the process it was
opened on, even after the number is reused).

Process groups are numbered after their leader, and a number whose last member is gone may
lead a stranger's group the next instant. While the leader is unreaped (the supervisor's
child, alive or a zombie) the number is pinned and `killpg` is safe; after that, each member
is checked and signalled alone (`signal_members`).
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Stat:
    """What /proc/PID/stat says about a process that sentinel needs."""

    pid: int
    state: str  # "R", "S", "Z" (zombie)...
    ppid: int
    pgrp: int
    session: int
    start: int  # clock ticks after boot: with the pid, names the process for ever


def stat_of(pid: int) -> Stat | None:
    """The process's /proc/PID/stat, or None when there is no such process."""
    try:
        fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        raw = os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)
    # The command name is in parentheses and may hold anything, ")" and spaces included.
    fields = raw[raw.rfind(b")") + 2 :].split()
    try:
        return Stat(
            pid, fields[0].decode(), int(fields[1]), int(fields[2]), int(fields[3]), int(fields[19])
        )
    except (IndexError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    found = stat_of(pid)
    return found.start if found is not None else None


class Pidfd:
    """A process, held by a pidfd: signals reach it or nobody, never a pid's next owner."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self._fd = pid, fd

    @classmethod
    def open(cls, pid: int, start: int | None = None) -> Pidfd | None:
        """A pidfd on `pid`; with `start`, only if the process is still the one that started
        then (checked after the pidfd is open: it cannot change owner after that). None when
        it is gone, or is somebody else."""
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            return None
        if start is not None and start_time(pid) != start:
            os.close(fd)
            return None
        os.set_inheritable(fd, False)
        return cls(pid, fd)

    def fileno(self) -> int:
        return self._fd

    def send(self, sig: int) -> bool:
        """Signal the process; False when it has exited (or the fd is closed)."""
        if self._fd < 0:
            return False
        try:
            signal.pidfd_send_signal(self._fd, sig)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def exited(self) -> bool:
        """Whether the process has exited (a zombie has)."""
        if self._fd < 0:
            return True
        readable, _, _ = select.select([self._fd], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:
        self.close()


def environment_of(pid: int) -> dict[bytes, bytes]:
    """The environment a process started with ({} if it is gone or unreadable)."""
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            raw = f.read()
    except OSError:
        return {}
    pairs = (item.partition(b"=") for item in raw.split(b"\0") if item)
    return {key: value for key, _, value in pairs}


def all_pids() -> list[int]:
    return [int(e) for e in os.listdir("/proc") if e.isdigit()]


def group_members(pgid: int, pids: Iterable[int] | None = None) -> list[Stat]:
    """The live (not zombie) processes in process group `pgid`."""
    found = []
    for pid in all_pids() if pids is None else pids:
        stat = stat_of(pid)
        if stat is not None and stat.pgrp == pgid and stat.state != "Z":
            found.append(stat)
    return found


def signal_members(
    pgid: int, sig: int, belongs: Callable[[Stat], bool], pids: Iterable[int] | None = None
) -> int:
    """Signal, one by one through pidfds, the members of group `pgid` that `belongs` accepts.
    For a group whose leader has been reaped: its number may now lead a stranger's group.
    Returns how many were signalled."""
    sent = 0
    for member in group_members(pgid, pids):
        if not belongs(member):
            continue
        pidfd = Pidfd.open(member.pid, member.start)
        if pidfd is None:
            continue
        try:
            again = stat_of(member.pid)  # under the pidfd: still in that group?
            if again is not None and again.pgrp == pgid and pidfd.send(sig):
                sent += 1
        finally:
            pidfd.close()
    return sent


def descends_from(stat: Stat, ancestor: int, limit: int = 64) -> bool:
    """Whether the process is below `ancestor` in the process tree (as it is now)."""
    current: Stat | None = stat
    for _ in range(limit):
        if current is None or current.ppid <= 1:
            return current is not None and current.ppid == ancestor
        if current.ppid == ancestor:
            return True
        current = stat_of(current.ppid)
    return False


def wait_exited(pidfds: Iterable[Pidfd], timeout: float) -> list[Pidfd]:
    """Wait up to `timeout` seconds for every process to exit; the ones still running."""
    pending = [p for p in pidfds if not p.exited()]
    poller = select.poll()
    for p in pending:
        poller.register(p.fileno(), select.POLLIN)
    deadline = time.monotonic() + timeout
    while pending:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        for fd, _ in poller.poll(left * 1000):
            with contextlib.suppress(KeyError):
                poller.unregister(fd)
            pending = [p for p in pending if p.fileno() != fd]
    return pending
