"""Programs' output on sentinel's own stdout and stderr (`path = "inherit"`), for containers.

A container's log driver (docker, the kubelet) reads what PID 1 writes: there, programs'
lines belong on sentinel's stdout and stderr, not in files. Each such stream still goes
through a pipe of its own, read on the event loop, cut into whole lines (so that two
programs' lines never interleave mid-line), optionally prefixed with the process name, and
handed to one writer thread per destination. The thread is there because the destination
may block (a full pipe to a slow log driver, a paused terminal): its writes must never stop
the event loop. When a destination falls behind by more than HIGH_WATER bytes, the programs
writing to it are no longer read (their pipes fill and their writes block, as they would
writing to the destination themselves), and are read again once it has caught up to
LOW_WATER: back-pressure on those programs only, never on the others or on the loop.
A line longer than LINE_MAX is cut there, as journald cuts lines longer than its LineMax.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import threading
from collections import deque

log = logging.getLogger(__name__)

LINE_MAX = 1 << 16
READ_SIZE = 1 << 16
HIGH_WATER = 1 << 22  # bytes queued for a destination before its writers are paused
LOW_WATER = 1 << 20  # ... and resumed


class Destination:
    """One of sentinel's own output fds, written by a thread of its own, whole lines at a time."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop) -> None:
        self._fd, self._loop = fd, loop
        self._queue: deque[bytes] = deque()
        self._queued = 0
        self._lock = threading.Condition()
        self._closed = False
        self._paused: set[InheritedOutput] = set()
        self._thread = threading.Thread(target=self._write_all, name=f"sentinel-out-{fd}")
        self._thread.daemon = True
        self._thread.start()

    def put(self, lines: bytes, writer: InheritedOutput) -> None:
        """Queue whole lines (on the loop); pause `writer` if the destination is behind."""
        with self._lock:
            self._queue.append(lines)
            self._queued += len(lines)
            behind = self._queued > HIGH_WATER
            self._lock.notify()
        if behind:
            self._paused.add(writer)
            writer.pause()

    def close(self) -> None:
        """Write what is queued (a few seconds at most), then stop the thread."""
        with self._lock:
            self._closed = True
            self._lock.notify()
        self._thread.join(5)

    def _write_all(self) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._closed:
                    self._lock.wait()
                if not self._queue:
                    return
                chunk = self._queue.popleft()
            self._write(chunk)
            with self._lock:
                self._queued -= len(chunk)
                caught_up = self._queued <= LOW_WATER
            if caught_up and self._paused:
                with contextlib.suppress(RuntimeError):  # the loop is closing
                    self._loop.call_soon_threadsafe(self._resume)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self._fd, view) :]
            except InterruptedError:
                continue
            except BlockingIOError:  # a non-blocking destination: wait until it drains
                threading.Event().wait(0.01)
            except OSError as exc:  # gone (EPIPE) or broken: the lines cannot be written
                log.debug("cannot write to fd %d: %s", self._fd, exc)
                return

    def _resume(self) -> None:
        paused, self._paused = self._paused, set()
        for writer in paused:
            writer.resume()


class InheritedOutput:
    """One program stream, read from its pipe and written line by line to a Destination."""

    def __init__(
        self,
        name: str,
        destination: Destination,
        prefix: bool,
        loop: asyncio.AbstractEventLoop,
        pipe: tuple[int, int] | None = None,  # (read, write): a pipe handed over by exec
    ) -> None:
        self._destination, self._loop = destination, loop
        self._prefix = f"{name} | ".encode() if prefix else b""
        self._read_fd, self._write_fd = pipe or os.pipe2(os.O_CLOEXEC)
        for fd in (self._read_fd, self._write_fd):
            os.set_inheritable(fd, False)
        os.set_blocking(self._read_fd, False)
        self._partial = b""
        self._reading = False
        self._closed = False
        self.resume()

    @property
    def write_fd(self) -> int:
        """The fd to hand to a child as stdout/stderr."""
        return self._write_fd

    def pause(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._read_fd)
            self._reading = False

    def resume(self) -> None:
        if not self._reading and not self._closed:
            self._loop.add_reader(self._read_fd, self._drain)
            self._reading = True

    def hand_over(self) -> tuple[int, int]:
        """For a re-exec: pass on what the pipe holds (an unfinished line too), stop reading,
        and give up the pipe (both ends, left open across exec) for the next daemon."""
        self.pause()
        self._closed = True
        self._drain(final=True)
        for fd in (self._read_fd, self._write_fd):
            os.set_inheritable(fd, True)
        return self._read_fd, self._write_fd

    async def aclose(self) -> None:
        """Pass on what is left in the pipe (and a last unfinished line), then release it."""
        if self._closed:
            return
        self.pause()
        self._closed = True
        os.close(self._write_fd)
        self._drain(final=True)
        os.close(self._read_fd)

    def _drain(self, final: bool = False) -> None:
        chunks = []
        with contextlib.suppress(BlockingIOError):
            while data := os.read(self._read_fd, READ_SIZE):
                chunks.append(data)
                if not final and sum(map(len, chunks)) >= 4 * READ_SIZE:
                    break  # a fast writer must not keep the loop here: the rest comes next
        lines = self._lines(b"".join(chunks), final)
        if lines:
            self._destination.put(lines, self)

    def _lines(self, data: bytes, final: bool) -> bytes:
        """The whole lines in what arrived (prefixed), keeping an unfinished one for later."""
        data = self._partial + data
        end = data.rfind(b"\n") + 1
        whole, self._partial = data[:end], data[end:]
        while len(self._partial) >= LINE_MAX:  # too long to wait for its end: cut it
            whole += self._partial[:LINE_MAX] + b"\n"
            self._partial = self._partial[LINE_MAX:]
        if final and self._partial:
            whole, self._partial = whole + self._partial + b"\n", b""
        if not whole or not self._prefix:
            return whole
        prefix = self._prefix
        return b"".join(prefix + line + b"\n" for line in whole[:-1].split(b"\n"))


class Outputs:
    """sentinel's own stdout and stderr as destinations, each started when a program first
    needs it."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._destinations: dict[str, Destination] = {}

    def open(
        self, name: str, to: str, prefix: bool, pipe: tuple[int, int] | None = None
    ) -> InheritedOutput:
        """A stream of process `name` into sentinel's own `to` ("stdout" or "stderr")."""
        destination = self._destinations.get(to)
        if destination is None:
            fd = 1 if to == "stdout" else 2
            destination = self._destinations[to] = Destination(fd, self._loop)
        return InheritedOutput(name, destination, prefix, self._loop, pipe)

    def close(self) -> None:
        for destination in self._destinations.values():
            destination.close()
