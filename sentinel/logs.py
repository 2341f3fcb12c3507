"""Output capture: one pipe per stream, drained into a size-rotated log file.

The child writes into a pipe; the event loop moves what arrives into the file with splice(2),
so the bytes never enter Python. Rotation follows logging.RotatingFileHandler and supervisord
(path -> path.1 -> ... -> path.N; with no backups the file starts over), with two promises:

- no file exceeds max_bytes: a splice moves at most the room left, and a full file rotates
  before the next byte is written;
- no line is split across files unless it is longer than LINE_MAX (or max_bytes): splice
  cannot look at the bytes it moves, so at rotation the unfinished last line of the full file
  is cut off it and carried to the start of the new one (with splice, the only bytes Python
  touches). The search for that line's start looks back LINE_MAX bytes at most, so output
  without newlines costs one small read per rotation, not a re-read of the whole file;
  journald splits long lines the same way (LineMax, 48 KiB).

Concatenating path.N ... path.1, path always gives exactly the bytes the child wrote.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import logging
import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

from sentinel.errors import CaptureClosed

log = logging.getLogger(__name__)

PIPE_SIZE = 1 << 20  # a fast writer rarely blocks on a 1 MiB pipe
MIN_PIPE_SIZE = 1 << 16  # the kernel's default: never ask for less
DRAIN_BUDGET = 8 << 20  # per loop callback, so one fast writer cannot starve the loop
LINE_MAX = 1 << 16  # a longer line may be split at a rotation
CHECK_EVERY = 1.0  # s: how often, while output flows, the file is checked to be in place
# A writer in small pieces (a line-buffered program: a write per line) would wake the loop
# for each one, or keep a drain asking the pipe for each line. A drain stops when the pipe
# holds less than CHASE_MIN; then, if at its rate since the last drain the writer would fill
# at most COALESCE_SHARE of the pipe in COALESCE_DELAY (under 128 MB/s with a 1 MiB pipe),
# the pipe is left to fill that long: one wake-up per millisecond at most, not one per
# write, and never a writer kept waiting. A faster writer is drained as its writes arrive.
CHASE_MIN = 1 << 10
COALESCE_DELAY = 0.001  # s
COALESCE_SHARE = 1 / 8
_SPLICE_FLAGS = getattr(os, "SPLICE_F_MOVE", 0) | getattr(os, "SPLICE_F_NONBLOCK", 0)


class LogCapture:
    """Drains one pipe into a size-rotated log file on the asyncio event loop."""

    def __init__(
        self,
        path: Path,
        max_bytes: int,
        backups: int,
        loop: asyncio.AbstractEventLoop | None = None,
        *,
        use_splice: bool = True,  # False: copy through Python (what tests use to cover it)
        pipe: tuple[int, int] | None = None,  # (read, write): a pipe handed over by exec
        warn: Callable[[str], object] | None = None,  # tells the trouble with the file, once
    ) -> None:
        self._path = path
        self._max_bytes = max_bytes  # 0: never rotate
        self._backups = backups
        self._loop = loop
        self._warn = warn or (lambda message: log.error("%s", message))
        self._dir_fd = -1
        self._fd = -1  # -1: the file cannot be opened now: output is dropped, retried
        self._checked = 0.0  # monotonic time the file was last checked
        self._drained = 0.0  # monotonic time of the last drain
        if pipe is None:
            self._read_fd, self._write_fd = os.pipe2(os.O_CLOEXEC)
            # Only our end is non-blocking: children expect a blocking stdout.
            os.set_blocking(self._read_fd, False)
            self._pipe_size = _grow_pipe(self._read_fd)
        else:
            self._read_fd, self._write_fd = pipe
            for fd in pipe:
                os.set_inheritable(fd, False)
            self._pipe_size = fcntl.fcntl(self._read_fd, fcntl.F_GETPIPE_SZ)
        self._pos = 0
        self._written = 0
        self._splice = use_splice and hasattr(os, "splice")  # Linux only
        self._dropped = 0  # bytes thrown away since writing started failing
        self._failing = False
        self._reopen(make_directory=True)
        self._started = False
        self._closed = False
        self._paused: asyncio.TimerHandle | None = None  # set while the pipe is left to fill
        self._waiters: list[tuple[int, asyncio.Future[int]]] = []

    @property
    def write_fd(self) -> int:
        """The fd to hand to a child as stdout/stderr (Popen dup2s it)."""
        return self._write_fd

    @property
    def path(self) -> Path:
        return self._path

    @property
    def written(self) -> int:
        """Bytes stored since this capture was created (monotonic across rotations)."""
        return self._written

    def start(self) -> None:
        """Drain the pipe whenever it is readable."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self._read_fd, self._drain)
        self._started = True

    async def wait_written(self, after: int) -> int:
        """Return `written` once it exceeds `after` (guard with asyncio.timeout)."""
        if self._closed:
            raise CaptureClosed(f"{self._path}: the capture is closed")
        if self._written > after:
            return self._written
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters = [w for w in self._waiters if not w[1].done()]  # drop cancelled ones
        self._waiters.append((after, future))
        return await future

    def read(self, offset: int, length: int) -> tuple[bytes, int]:
        """Read the current file as supervisord's readProcessLog does.

        A negative offset counts from the end; length 0 reads to the end. Returns the data and
        the file offset just after it (the file size when offset is past it: it rotated).
        """
        if length < 0:
            raise ValueError(f"length must be >= 0, got {length}")
        try:
            fd = os.open(self._path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except OSError:  # not there (yet), or a link: nothing of ours to read
            return b"", 0
        try:
            size = os.fstat(fd).st_size
            start = max(size + offset, 0) if offset < 0 else min(offset, size)
            end = size if length == 0 else min(start + length, size)
            data = _pread_all(fd, end - start, start)
        finally:
            os.close(fd)
        return data, start + len(data)

    def hand_over(self) -> tuple[int, int]:
        """For a re-exec: store what the pipe holds, stop draining, and give up the pipe
        (both ends, left open across exec) for the next daemon; the file is closed."""
        self._stop_draining()
        self._pump(self._pipe_size)
        self._closed = True
        self._close_file()
        for fd in (self._read_fd, self._write_fd):
            os.set_inheritable(fd, True)
        return self._read_fd, self._write_fd

    async def aclose(self) -> None:
        """Store what is left in the pipe, then release the pipe and the file. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop_draining()
        # Our write end goes first: when no child holds the pipe, the drain ends at EOF. A
        # child still writing cannot keep us here: the pipe never holds more than its size.
        os.close(self._write_fd)
        self._pump(self._pipe_size)
        os.close(self._read_fd)
        self._close_file()
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(CaptureClosed(f"{self._path}: the capture is closed"))
        self._waiters.clear()

    # --- draining ---------------------------------------------------------------------------

    def _drain(self) -> None:
        # Unfinished work stays in the pipe; it is still readable, so the loop calls again.
        now = time.monotonic()
        if now - self._checked >= CHECK_EVERY:
            self._checked = now
            self.check()
        moved = self._pump(DRAIN_BUDGET)
        since, self._drained = now - self._drained, now
        slow = moved * COALESCE_DELAY < COALESCE_SHARE * self._pipe_size * since
        if moved and slow and self._loop is not None:
            self._loop.remove_reader(self._read_fd)
            self._paused = self._loop.call_later(COALESCE_DELAY, self._resume)

    def _resume(self) -> None:
        self._paused = None
        if self._loop is not None:
            self._loop.add_reader(self._read_fd, self._drain)

    def _stop_draining(self) -> None:
        if self._paused is not None:
            self._paused.cancel()
            self._paused = None
        if self._started and self._loop is not None:
            self._loop.remove_reader(self._read_fd)

    def check(self) -> None:
        """Reopen the file if it is not where it should be (its directory was removed, or it
        was moved away): output goes on into the file that a reader of the path finds, as
        soon as the directory is back. Cheap (two stats): called at most every CHECK_EVERY
        while output flows, and at each spawn."""
        if self._fd >= 0:
            try:
                held = os.fstat(self._fd)
                there = os.stat(self._path.name, dir_fd=self._dir_fd, follow_symlinks=False)
                dir_there = os.stat(self._path.parent)
                dir_held = os.fstat(self._dir_fd)
                if (held.st_ino, held.st_dev) == (there.st_ino, there.st_dev) and (
                    dir_there.st_ino,
                    dir_there.st_dev,
                ) == (dir_held.st_ino, dir_held.st_dev):
                    return
            except OSError:
                pass
            self._warn(f"{self._path} was removed or replaced: reopening it")
        self._reopen()

    def _reopen(self, *, make_directory: bool = False) -> None:
        """Open the directory (at start: made if missing) and the file in it, without
        following a link; on failure, output is dropped until a later check succeeds. A
        directory removed at run time is not made again: it may have been a mount point, and
        the operator who removed it decides when it comes back."""
        self._close_file()
        try:
            if make_directory:
                self._path.parent.mkdir(parents=True, exist_ok=True)
            self._dir_fd = os.open(self._path.parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            self._fd = _open_for_writing(self._dir_fd, self._path.name)
        except OSError as exc:
            self._close_file()
            if not self._failing:
                self._warn(
                    f"cannot open {self._path} ({exc.strerror or exc}): output is dropped "
                    "until it can be"
                )
                self._failing = True
            return
        # No O_APPEND (splice refuses it): we write at our own position, starting at the end
        # so that a daemon restart keeps what is there.
        self._pos = os.lseek(self._fd, 0, os.SEEK_END)
        if self._failing:
            self._warn(f"{self._path}: writing again; {self._dropped} bytes were dropped")
            self._failing, self._dropped = False, 0

    def _close_file(self) -> None:
        for fd in (self._fd, self._dir_fd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._dir_fd = -1

    def _pump(self, budget: int) -> int:
        """Move up to `budget` bytes from the pipe to the file; stop when the pipe is empty.
        Returns how many bytes left the pipe (stored or dropped)."""
        before, left = self._written, budget
        while left > 0:
            asked = min(left, self._pipe_size)
            try:
                moved = self._move(asked)
            except BlockingIOError:
                break  # the pipe is empty
            except OSError as exc:
                # Disk full, I/O error, a failed rotation: dropping the chunk keeps the child
                # running; blocking it until an operator frees space would be an outage.
                moved = self._drop(asked, exc)
            left -= moved
            full = self._max_bytes and self._pos >= self._max_bytes  # it stopped at a rotation
            if moved < min(asked, CHASE_MIN) and not full:
                # The pipe held less than CHASE_MIN: asking again right away would chase a
                # writer that writes a little at a time, a system call per line it writes for
                # as long as it writes. (A writer that brings more is followed: it pays.)
                break
        if self._written != before:
            self._wake()
        return budget - left

    def _move(self, count: int) -> int:
        """Store up to `count` bytes from the pipe; return how many left the pipe."""
        if self._fd < 0:
            raise FileNotFoundError(errno.ENOENT, "the log file is not open")
        if self._max_bytes:
            if self._pos >= self._max_bytes:
                self._rotate()
            count = min(count, self._max_bytes - self._pos)
        if self._splice:
            try:
                moved = os.splice(
                    self._read_fd, self._fd, count, offset_dst=self._pos, flags=_SPLICE_FLAGS
                )
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                log.info("%s: splice unsupported here, copying instead", self._path)
                self._splice = False
                return self._move(count)
            self._pos += moved
        else:
            data = os.read(self._read_fd, count)
            start = self._pos
            try:
                self._write_all(data)
            except OSError as exc:  # what was read and not stored is lost, like a dropped chunk
                self._written += self._pos - start
                self._report(exc, len(data) - (self._pos - start))
                return len(data)
            moved = len(data)
        self._written += moved
        if self._failing and moved:
            self._warn(f"{self._path}: writing again; {self._dropped} bytes were dropped")
            self._failing, self._dropped = False, 0
        return moved

    def _drop(self, count: int, exc: OSError) -> int:
        try:
            dropped = len(os.read(self._read_fd, count))
        except BlockingIOError:
            dropped = 0
        self._report(exc, dropped)
        return dropped

    def _report(self, exc: OSError, dropped: int) -> None:
        if not self._failing:  # once per episode: a full disk must not flood the daemon's log
            self._warn(f"{self._path}: cannot write ({exc}): dropping output until it can")
            self._failing = True
        self._dropped += dropped

    def _rotate(self) -> None:
        cut = self._last_line_end()
        carry = b""
        if 0 < cut < self._pos and self._pos - cut < self._max_bytes:
            carry = _pread_all(self._fd, self._pos - cut, cut)
        if self._backups == 0:
            os.ftruncate(self._fd, 0)  # carry is in memory already
            self._pos = 0
            self._write_all(carry)
            return
        d = self._dir_fd  # renames in the directory held, never through a path
        for n in range(self._backups - 1, 0, -1):
            with contextlib.suppress(FileNotFoundError):
                os.replace(self._backup(n), self._backup(n + 1), src_dir_fd=d, dst_dir_fd=d)
        os.replace(self._path.name, self._backup(1), src_dir_fd=d, dst_dir_fd=d)
        old, self._fd, self._pos = self._fd, _open_for_writing(d, self._path.name), 0
        try:
            if carry:
                self._write_all(carry)
                # Only once the new file holds it: a failure leaves a duplicate, not a loss.
                os.ftruncate(old, cut)
        finally:
            os.close(old)

    def _last_line_end(self) -> int:
        """The offset just after the file's last newline within its last LINE_MAX bytes; 0
        when there is none (a line that long is split at the rotation)."""
        start = max(self._pos - min(self._max_bytes, LINE_MAX), 0)
        found = _pread_all(self._fd, self._pos - start, start).rfind(b"\n")
        return start + found + 1 if found >= 0 else 0

    def _backup(self, n: int) -> str:
        return f"{self._path.name}.{n}"

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # a regular file may take less than asked (a full disk, a signal)
            done = os.pwrite(self._fd, view, self._pos)
            self._pos += done
            view = view[done:]

    def _wake(self) -> None:
        pending = []
        for after, future in self._waiters:
            if future.done():
                continue
            if self._written > after:
                future.set_result(self._written)
            else:
                pending.append((after, future))
        self._waiters = pending


def _grow_pipe(fd: int) -> int:
    """Ask for PIPE_SIZE, settling for what the kernel allows (pipe-max-size, user quota)."""
    size = PIPE_SIZE
    while size > MIN_PIPE_SIZE:
        try:
            return fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            size //= 2
    return fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ)


def _open_for_writing(dir_fd: int, name: str) -> int:
    """The log file `name` in the directory `dir_fd`: never through a link (O_NOFOLLOW), and
    only a regular file or a character device like /dev/null (a FIFO planted there, which
    anybody can make, is refused). Read too: rotation looks back for the last line end."""
    flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY
    try:
        fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise OSError(errno.ELOOP, "it is a symbolic link: not followed") from None
        raise
    mode = os.fstat(fd).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISCHR(mode)):
        os.close(fd)
        raise OSError(errno.EINVAL, "not a regular file")
    os.set_blocking(fd, True)
    return fd


def _pread_all(fd: int, count: int, offset: int) -> bytes:
    parts = []
    while count > 0:  # one read returns at most ~2 GiB, and less at end of file
        part = os.pread(fd, count, offset)
        if not part:
            break
        parts.append(part)
        count -= len(part)
        offset += len(part)
    return b"".join(parts)
