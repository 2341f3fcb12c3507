"""Memory check: resident memory of a whole process tree, to restart a leaking program."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

# Relative when run as sentinel.checks.memory, a sibling module when run as a file;
# mypy takes the first branch.
if TYPE_CHECKING or __package__:
    from . import _nagios
else:
    import _nagios

_LISTED = 5  # processes named in the long output, largest first


@dataclass(frozen=True)
class _Process:
    pid: int
    name: str
    rss: int  # bytes


def build_parser() -> _nagios.CheckParser:
    parser = _nagios.CheckParser(
        "MEMORY",
        description="Check the resident memory (RSS) of a process and all its descendants, "
        "like superlance's memmon: a liveness probe that fails above --critical makes "
        "sentinel restart a program that leaks. Each process's RSS is added, so pages "
        "shared between processes count once per process, as in `ps`. A pid that does not "
        "exist is UNKNOWN: there is nothing to measure.",
        example="Example, as a sentinel exec probe (the pid comes from $SENTINEL_PID):\n"
        '  exec = { check = "memory", args = ["--critical", "1GiB", "--warning", "800MiB"] }',
    )
    parser.add_argument(
        "--pid",
        type=int,
        default=None,
        help="the root of the tree (default: $SENTINEL_PID, set by sentinel's exec probes)",
    )
    parser.add_argument(
        "--critical",
        required=True,
        type=_nagios.size,
        metavar="SIZE",
        help='CRITICAL when the tree uses more than this, e.g. "500MB" or "1GiB"',
    )
    parser.add_argument("--warning", type=_nagios.size, metavar="SIZE", help="WARNING above this")
    return parser


def check(args: argparse.Namespace) -> _nagios.Result:
    unknown = _nagios.Status.UNKNOWN
    root = args.pid
    if root is None:
        env = os.environ.get("SENTINEL_PID", "")
        if not env.isdigit():
            return _nagios.Result(unknown, "no --pid given and $SENTINEL_PID is not a pid")
        root = int(env)
    tree = [p for p in (_read(pid) for pid in _tree(root)) if p is not None]
    if not tree or tree[0].pid != root:
        return _nagios.Result(unknown, f"no process with pid {root}")
    total = sum(p.rss for p in tree)
    summary = (
        f"process tree of pid {root} ({tree[0].name}, {len(tree)} "
        f"process{'es' if len(tree) > 1 else ''}) uses {_nagios.format_bytes(total)} RSS"
    )
    if total > args.critical:
        status = _nagios.Status.CRITICAL
        summary += f", critical above {_nagios.format_bytes(args.critical)}"
    elif args.warning is not None and total > args.warning:
        status = _nagios.Status.WARNING
        summary += f", warning above {_nagios.format_bytes(args.warning)}"
    else:
        status = _nagios.Status.OK
    perfdata = [
        _nagios.perf("rss", total, "B", warn=args.warning, crit=args.critical, minimum=0),
        _nagios.perf("processes", len(tree)),
    ]
    largest = sorted(tree, key=lambda p: p.rss, reverse=True)[:_LISTED]
    details = [f"{p.pid} {p.name}: {_nagios.format_bytes(p.rss)}" for p in largest]
    return _nagios.Result(status, summary, perfdata, details)


def _tree(root: int) -> list[int]:
    """`root` and its descendants, from one pass over every process's parent in /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                # The name, in parentheses, may hold spaces and ")": split after the last ")".
                ppid = int(stat.read().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # it exited while we looked
            continue
        children.setdefault(ppid, []).append(int(entry))
    found, todo = [root], [root]
    while todo:
        for child in children.get(todo.pop(), ()):
            found.append(child)
            todo.append(child)
    return found


def _read(pid: int) -> _Process | None:
    """A process's name and RSS, or None once it has gone."""
    name, rss = "?", 0  # kernel threads and zombies have no VmRSS: they hold no user memory
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                key, _, value = line.partition(":")
                if key == "Name":
                    name = value.strip()
                elif key == "VmRSS":
                    rss = int(value.split()[0]) * 1024  # the kernel writes "12345 kB"
    except OSError:
        return None
    return _Process(pid, name, rss)


if __name__ == "__main__":
    _nagios.run(build_parser(), check)
