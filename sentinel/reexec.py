"""Re-executing the daemon in place, as systemd's daemon-reexec does: an upgrade of sentinel
that keeps every program running.

The daemon serializes what it knows (each process's state machine, timers, run and log pipes;
the metrics' counters; its run id and the state directory's lock) into a memfd, clears
close-on-exec on that memfd, the lock and the pipes, and execs `python -m sentinel run -c
CONFIG --adopt-fd N` under the same pid. Its children stay its children: the new daemon
watches their exits (any that exited meanwhile wait as zombies), drains the same pipes into
the log files and goes on with the same counters. What cannot cross an exec is started
afresh: the control socket (closed and bound again), probes' verdicts, the event history.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

ADOPT_OPTION = "--adopt-fd"
FORMAT = 1  # of the hand-over; a daemon refuses one it does not know


class HandoverError(Exception):
    """The hand-over from the daemon before exec cannot be read."""


def write_handover(data: dict[str, Any]) -> int:
    """The hand-over in a memfd left open across exec; its fd."""
    fd = os.memfd_create("sentinel-handover", 0)  # no MFD_CLOEXEC: it must cross the exec
    payload = json.dumps({"format": FORMAT, **data}).encode()
    while payload:
        payload = payload[os.write(fd, payload) :]
    os.lseek(fd, 0, os.SEEK_SET)
    return fd


def read_handover(fd: int) -> dict[str, Any]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
        os.close(fd)
        data: dict[str, Any] = json.loads(b"".join(chunks))
    except (OSError, ValueError) as exc:
        raise HandoverError(f"cannot read the hand-over on fd {fd}: {exc}") from None
    if data.get("format") != FORMAT:
        raise HandoverError(f"a hand-over of format {data.get('format')!r}: expected {FORMAT}")
    return data


def exec_daemon(config: Path, fd: int) -> NoReturn:
    """Become a new `sentinel run` (the installed code, whatever version it is now)."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    argv = [sys.executable, "-m", "sentinel", "run", "-c", str(config), ADOPT_OPTION, str(fd)]
    os.execv(sys.executable, argv)
