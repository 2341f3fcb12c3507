"""The output capture benchmark's writer: 71-byte log lines to stdout, in writes of one size.

    python linewriter.py WRITE_SIZE TOTAL

Writes exactly TOTAL bytes (a whole number of WRITE_SIZE writes) to fd 1 with os.write(), as
a program logging through a block-buffered stdout does: a write ends where the buffer fills,
not at a line end, so lines straddle writes. Each line is 70 printable bytes and a "\n": a
timestamp, a level and a message, padded with spaces. The lines are built once; the writes
are slices of them that wrap around, so nothing is formatted in the loop.

Only the standard library, and nothing the loop does but os.write(): what it costs is the
system call and the copy into the pipe (or file), as for dd.
"""

from __future__ import annotations

import os
import sys

LINE = 71  # bytes, the "\n" included
LINES = 4096  # distinct lines, repeated: 284 KiB, more than any write
LEVELS = ("INFO", "INFO", "DEBUG", "INFO", "WARN", "INFO", "DEBUG", "ERROR")
MESSAGES = (
    "GET /api/v1/orders/{n} 200 {ms}ms",
    "worker-{w} took job {n} from default",
    "cache miss user:{n}, loading from db",
    "slow query on orders: {ms}ms",
    "upstream timeout, retry {w} of 5",
    "session {n:08x} expired",
)


def line(i: int) -> bytes:
    """The i-th line: a timestamp 37 ms after the previous one, a level and a message."""
    ms = 36_000_000 + 37 * i  # from 10:00:00.000
    stamp = f"2026-11-25T{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}"
    level = LEVELS[i % len(LEVELS)]
    message = MESSAGES[i % len(MESSAGES)].format(
        n=100_000 + i * 7919 % 900_000, ms=i % 997, w=i % 5
    )
    text = f"{stamp}.{ms % 1000:03d}Z {level:<5} {message}".ljust(LINE - 1)
    if len(text) != LINE - 1:
        raise ValueError(f"line {i} is {len(text) + 1} bytes: {text!r}")
    return text.encode("ascii") + b"\n"


def main(argv: list[str]) -> int:
    block = b"".join(line(i) for i in range(LINES))
    try:
        size, total = int(argv[1]), int(argv[2])
    except (IndexError, ValueError):
        size = total = 0
    if not 0 < size <= len(block) or total < 0 or total % size:
        print(
            f"usage: {argv[0]} WRITE_SIZE TOTAL: 0 < WRITE_SIZE <= {len(block)}, "
            f"TOTAL a multiple of WRITE_SIZE",
            file=sys.stderr,
        )
        return 2
    # Two copies: a slice of `size` bytes starting anywhere in the first one is contiguous.
    view = memoryview(block + block)
    offset = 0
    for _ in range(total // size):
        chunk = view[offset : offset + size]
        while chunk:  # a short write (a signal): the rest of this write, then the next one
            chunk = chunk[os.write(1, chunk) :]
        offset = (offset + size) % len(block)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
