"""Heartbeat check: is a file's modification time recent? For workers that listen on no port."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

# Relative when run as sentinel.checks.heartbeat, a sibling module when run as a file;
# mypy takes the first branch.
if TYPE_CHECKING or __package__:
    from . import _nagios
else:
    import _nagios

_FUTURE_SLACK = 1.0  # seconds an mtime may lead the clock by (coarse timestamps, NFS)


def build_parser() -> _nagios.CheckParser:
    parser = _nagios.CheckParser(
        "HEARTBEAT",
        description="Check that a worker is still making progress: it touches a file (its "
        "heartbeat) every few seconds, and this check fails when the file's modification "
        "time is older than --max-age, or when the file is missing.",
        example="Example, as a sentinel exec probe:\n"
        '  exec = { check = "heartbeat", args = ["--file", "/run/worker.beat", '
        '"--max-age", "30s"] }',
    )
    parser.add_argument("--file", required=True, help="the heartbeat file")
    parser.add_argument(
        "--max-age",
        required=True,
        type=_nagios.duration,
        metavar="DURATION",
        help='CRITICAL when the file is older than this, e.g. "30s"',
    )
    parser.add_argument(
        "--warn-age",
        type=_nagios.duration,
        metavar="DURATION",
        help="WARNING when the file is older than this (less than --max-age)",
    )
    return parser


def check(args: argparse.Namespace) -> _nagios.Result:
    if args.warn_age is not None and args.warn_age >= args.max_age:
        return _nagios.Result(_nagios.Status.UNKNOWN, "--warn-age must be less than --max-age")
    try:
        mtime = os.stat(args.file).st_mtime
    except FileNotFoundError:
        return _nagios.Result(_nagios.Status.CRITICAL, f"{args.file} does not exist")
    except OSError as exc:  # unreadable directory and the like: a setup problem, not staleness
        return _nagios.Result(_nagios.Status.UNKNOWN, f"cannot stat {args.file}: {exc.strerror}")
    # mtime is wall-clock time, so the wall clock (not the monotonic one) is the right ruler.
    age = time.time() - mtime
    perfdata = [_nagios.perf("age", round(age, 3), "s", warn=args.warn_age, crit=args.max_age)]
    if age < -_FUTURE_SLACK:
        # A clock stepped back: the worker's next touch repairs it, so pass but say so.
        summary = f"{args.file} is {_nagios.format_seconds(-age)} in the future"
        return _nagios.Result(_nagios.Status.WARNING, summary, perfdata)
    summary = f"{args.file} is {_nagios.format_seconds(max(age, 0.0))} old"
    if age > args.max_age:
        status = _nagios.Status.CRITICAL
        summary += f" (critical above {_nagios.format_seconds(args.max_age)})"
    elif args.warn_age is not None and age > args.warn_age:
        status = _nagios.Status.WARNING
        summary += f" (warning above {_nagios.format_seconds(args.warn_age)})"
    else:
        status = _nagios.Status.OK
    return _nagios.Result(status, summary, perfdata)


if __name__ == "__main__":
    _nagios.run(build_parser(), check)
