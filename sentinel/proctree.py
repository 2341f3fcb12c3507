"""CPU and resident memory of process trees, from one pass over /proc.

A scrape needs the trees of every supervised process; reading each process's stat file once
(it carries the parent pid, the CPU times and the resident size) and grouping by parent is
far cheaper than walking children files process by process.
"""

from __future__ import annotations

import os
from collections import defaultdict
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class TreeUsage:
    cpu_seconds: float  # user + system of the live tree, and of the children it has reaped
    rss_bytes: int


class ProcessTable:
    """A snapshot of every process: its parent, CPU ticks and resident pages."""

    def __init__(self) -> None:
        self._children: dict[int, list[int]] = defaultdict(list)
        self._usage: dict[int, tuple[int, int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                self._read(int(entry))

    def _read(self, pid: int) -> None:
        try:
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY)
        except OSError:
            return  # it exited while we looked
        try:
            stat = os.read(fd, 4096)
        except OSError:
            return
        finally:
            os.close(fd)
        # After the command name (which may hold spaces and parentheses): state, ppid, ...;
        # utime, stime, cutime, cstime are fields 14-17 of stat(5), rss is field 24.
        fields = stat[stat.rfind(b")") + 2 :].split()
        ticks = int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        self._usage[pid] = (ticks, int(fields[21]))
        self._children[int(fields[1])].append(pid)

    def tree_usage(self, *roots: int) -> TreeUsage:
        """Usage of the trees below `roots` (a main pid, and descendants that escaped it)."""
        if len(roots) == 1 and roots[0] not in self._children:  # the common case: no children
            cpu, rss = self._usage.get(roots[0], (0, 0))
            return TreeUsage(cpu / _TICKS, rss * _PAGE)
        seen: set[int] = set()
        todo = [root for root in roots if root in self._usage]
        ticks = pages = 0
        while todo:
            pid = todo.pop()
            if pid in seen:
                continue
            seen.add(pid)
            cpu, rss = self._usage[pid]
            ticks, pages = ticks + cpu, pages + rss
            todo.extend(self._children.get(pid, ()))
        return TreeUsage(ticks / _TICKS, pages * _PAGE)
