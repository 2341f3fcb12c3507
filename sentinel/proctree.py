"""CPU and resident memory of a process and all its descendants, read from /proc."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class TreeUsage:
    cpu_seconds: float  # user + system of the live tree, and of the children it has reaped
    rss_bytes: int


def descendants(pid: int) -> list[int]:
    """`pid` and every process below it (children files list each thread's children)."""
    found, todo = [pid], [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for tid in tasks:
            try:
                children = Path(f"/proc/{parent}/task/{tid}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                todo.append(child)
    return found


def tree_usage(*roots: int) -> TreeUsage:
    """Usage of the trees below `roots` (a main pid, and descendants that escaped it)."""
    cpu_ticks = rss_pages = 0
    for member in {m for root in roots for m in descendants(root)}:
        try:
            stat = Path(f"/proc/{member}/stat").read_text()
            statm = Path(f"/proc/{member}/statm").read_text()
        except OSError:
            continue  # it exited while we looked
        fields = stat.rsplit(")", 1)[1].split()
        # utime, stime, cutime, cstime: fields 14-17 of stat(5), 12-15 after the command name
        cpu_ticks += sum(int(f) for f in fields[11:15])
        rss_pages += int(statm.split()[1])
    return TreeUsage(cpu_ticks / _TICKS, rss_pages * _PAGE)
