"""Output capture: one pipe drained into a size-rotated file on the event loop.

The child writes into a pipe (grown to 1 MiB so a fast writer rarely blocks); whenever it is
readable the daemon moves what is there into the file with splice(2), so the bytes never
enter Python. Before a write would take the file past `max_bytes` the file rotates, and at
that one moment the chunk is read instead, so that the old file ends on a line boundary: no
line is lost or split across files (unless a single line is longer than `max_bytes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
from pathlib import Path

log = logging.getLogger(__name__)

F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
PIPE_SIZE = 1 << 20
_BUDGET = 8 << 20  # bytes moved per wake-up at most, so one writer cannot starve the loop
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 1) | getattr(os, "SPLICE_F_NONBLOCK", 2)


class LogCapture:
    """Drains one pipe into a size-rotated log file on the asyncio event loop."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._path = path
        self._max_bytes = max_bytes
        self._backups = backups
        self._loop = loop or asyncio.get_running_loop()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
        with contextlib.suppress(OSError):  # an unprivileged user may be capped lower
            fcntl.fcntl(self._write_fd, F_SETPIPE_SZ, PIPE_SIZE)
        os.set_blocking(self._read_fd, False)  # the write end stays blocking for the child
        self._file_fd = self._open()
        self._position = os.fstat(self._file_fd).st_size  # keep what an earlier run wrote
        self._written = 0
        self._splice = hasattr(os, "splice")
        self._carry = b""  # a partial line held back near the size limit
        self._waiters: list[asyncio.Future[int]] = []
        self._closed = False

    @property
    def write_fd(self) -> int:
        """The fd to hand to a child as its stdout or stderr."""
        return self._write_fd

    @property
    def path(self) -> Path:
        return self._path

    @property
    def written(self) -> int:
        """Bytes written since this capture was created, across rotations."""
        return self._written

    def start(self) -> None:
        self._loop.add_reader(self._read_fd, self._drain)

    async def wait_written(self, after: int) -> int:
        """Resolve once more than `after` bytes have been written (for `tail -f`)."""
        if self._written > after:
            return self._written
        future: asyncio.Future[int] = self._loop.create_future()
        self._waiters.append(future)
        try:
            while self._written <= after:
                await future
                future = self._loop.create_future()
                self._waiters.append(future)
        finally:
            if future in self._waiters:
                self._waiters.remove(future)
        return self._written

    def read(self, offset: int, length: int) -> tuple[bytes, int]:
        """Read the current file like Supervisor's readLog: a negative offset counts from the
        end, length 0 reads to the end. Returns the data and the offset just after it."""
        size = self._position
        start = max(0, size + offset) if offset < 0 else min(offset, size)
        end = size if length <= 0 else min(size, start + length)
        with self._path.open("rb") as f:
            f.seek(start)
            data = f.read(end - start)
        return data, start + len(data)

    async def aclose(self) -> None:
        """Drain what is left in the pipe, then release the pipe and the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._loop.remove_reader(self._read_fd)
        self._drain(budget=None)
        self._write(self._carry)
        for fd in (self._read_fd, self._write_fd, self._file_fd):
            os.close(fd)

    # --- draining ---------------------------------------------------------------------------

    def _drain(self, budget: int | None = _BUDGET) -> None:
        moved = 0
        try:
            while budget is None or moved < budget:
                count = self._move()
                if count == 0:
                    break
                moved += count
        except OSError as exc:
            # Disk full or the like: drop what cannot be written rather than block the child
            # forever on a full pipe.
            log.error("%s: cannot write the log: %s", self._path, exc.strerror)
            self._discard()
        if moved:
            self._written += moved
            for future in self._waiters:
                if not future.done():
                    future.set_result(self._written)

    def _move(self) -> int:
        """Move what the pipe holds (up to its size) to the file; 0 when it is empty."""
        near_limit = self._max_bytes > 0 and self._max_bytes - self._position <= PIPE_SIZE
        if near_limit or self._carry or not self._splice:
            return self._copy()
        try:
            moved = os.splice(
                self._read_fd,
                self._file_fd,
                PIPE_SIZE,
                offset_dst=self._position,
                flags=_SPLICE_FLAGS,
            )
        except BlockingIOError:
            return 0
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            self._splice = False  # this file system cannot splice: copy from now on
            return self._copy()
        self._position += moved
        return moved

    def _copy(self) -> int:
        """Read a chunk and write it so that every file ends on a line boundary.

        Near the limit, a trailing partial line is held back until its newline arrives (or
        the capture closes), so that rotating never splits it; only a line longer than
        max_bytes is split."""
        try:
            data = os.read(self._read_fd, PIPE_SIZE)
        except BlockingIOError:
            return 0
        if not data:
            return 0
        rest, self._carry = self._carry + data, b""
        while rest:
            room = self._max_bytes - self._position if self._max_bytes > 0 else len(rest)
            if len(rest) <= room:
                keep = (
                    len(rest)
                    if rest.endswith(b"\n") or self._max_bytes == 0
                    else rest.rfind(b"\n") + 1
                )
                self._write(rest[:keep])
                self._carry = rest[keep:]
                break
            cut = rest.rfind(b"\n", 0, room) + 1
            if cut == 0:
                if self._position > 0:
                    self._rotate()  # start the long line in a fresh file
                    continue
                cut = room  # a single line longer than max_bytes has to be split
            self._write(rest[:cut])
            rest = rest[cut:]
            self._rotate()
        return len(data)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.pwrite(self._file_fd, view, self._position)
            self._position += written
            view = view[written:]

    def _discard(self) -> None:
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read_fd, PIPE_SIZE):
                pass

    # --- rotation ---------------------------------------------------------------------------

    def _open(self) -> int:
        # No O_APPEND: splice(2) refuses files opened for appending; we track the offset.
        return os.open(self._path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o644)

    def _rotate(self) -> None:
        os.close(self._file_fd)
        if self._backups > 0:
            for n in range(self._backups - 1, 0, -1):
                older = self._path.with_name(f"{self._path.name}.{n}")
                if older.exists():
                    older.replace(self._path.with_name(f"{self._path.name}.{n + 1}"))
            self._path.replace(self._path.with_name(f"{self._path.name}.1"))
        else:
            self._path.unlink(missing_ok=True)
        self._file_fd = self._open()
        self._position = 0
