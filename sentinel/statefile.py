"""sentinel's state in `state_dir`: a lock that keeps two daemons off one config, and a record
of what runs, so that the start after a crash stops what the dead daemon left running.

- `sentinel.lock` is flock'd for the daemon's life; the kernel releases it however the daemon
  ends (kill -9 included). It holds the daemon's pid, for the message a second daemon gets.
- `processes.json` holds the daemon's run id and, per process, its main pid with that
  process's start time (field 22 of /proc/PID/stat), its process group, stop signal and stop
  timeout. It is replaced atomically (a rename) soon after any process spawns or exits, and
  removed at a clean shutdown.

`stop_leftovers` is the recovery: a recorded process whose pid still has the recorded start
time gets its stop signal (and SIGCONT), with the members of its group, and SIGKILL after its
stop timeout; so does every process whose environment carries the dead daemon's run id (what
left the group with setsid). Nothing is signalled by its pid alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import secrets
import signal
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from sentinel import untrusted
from sentinel.errors import ConfigError, SentinelError
from sentinel.pids import (
    Pidfd,
    all_pids,
    environment_of,
    group_members,
    stat_of,
    wait_exited,
)

log = logging.getLogger(__name__)

LOCK_FILE = "sentinel.lock"
RECORD_FILE = "processes.json"
RUN_ID_ENV = "SENTINEL_RUN_ID"  # in every child's environment: whose descendant it is
KILL_WAIT = 5.0  # seconds to wait for processes to die of SIGKILL


class AlreadyRunning(SentinelError):
    """Another sentinel holds the state directory's lock."""


def new_run_id() -> str:
    return secrets.token_hex(8)


def prepare(state_dir: Path, config_file: str) -> None:
    """Create the state directory, private to sentinel's user (ConfigError if it cannot)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.close(os.open(state_dir, os.O_RDONLY | os.O_DIRECTORY))
    except OSError as exc:
        raise ConfigError.single(
            config_file, "sentinel.state_dir", f"{state_dir}: {exc.strerror or exc}"
        ) from None


class StateLock:
    """The state directory's lock, held for as long as this daemon (or the one it re-executes
    into: the fd is handed over) runs."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    @classmethod
    def acquire(cls, state_dir: Path) -> StateLock:
        path = state_dir / LOCK_FILE
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                raise AlreadyRunning(
                    f"another sentinel (pid {holder}) runs with the state directory "
                    f"{state_dir}: one config, one daemon"
                ) from None
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        return cls(fd)


@dataclass(frozen=True)
class Entry:
    """One process in the record: what it takes to find it and stop it."""

    pid: int
    start: int
    pgid: int
    stop_signal: int
    stop_timeout: float


@dataclass(frozen=True)
class Record:
    run_id: str
    daemon: int  # the daemon's pid
    processes: Mapping[str, Entry]

    def to_json(self) -> bytes:
        return json.dumps(
            {
                "run_id": self.run_id,
                "daemon": self.daemon,
                "processes": {n: vars(e) for n, e in self.processes.items()},
            }
        ).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Record:
        data = json.loads(raw)
        return cls(
            str(data["run_id"]),
            int(data["daemon"]),
            {
                str(name): Entry(
                    int(e["pid"]),
                    int(e["start"]),
                    int(e["pgid"]),
                    int(e["stop_signal"]),
                    float(e["stop_timeout"]),
                )
                for name, e in data["processes"].items()
            },
        )


def write_record(state_dir: Path, record: Record) -> None:
    """Replace the record atomically: a crash leaves the old one or the new one."""
    tmp = state_dir / f".{RECORD_FILE}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        data = record.to_json()
        while data:
            data = data[os.write(fd, data) :]
    finally:
        os.close(fd)
    os.replace(tmp, state_dir / RECORD_FILE)


def read_record(state_dir: Path) -> Record | None:
    try:
        fd = os.open(state_dir / RECORD_FILE, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return Record.from_json(f.read())
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        log.warning("%s is unreadable (%s): ignoring it", state_dir / RECORD_FILE, exc)
        return None


def remove_record(state_dir: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (state_dir / RECORD_FILE).unlink()


def carrying(run_id: str, pids: Iterable[int] | None = None) -> list[Pidfd]:
    """Pidfds on the processes whose environment carries `run_id` (not this one)."""
    wanted, own = run_id.encode(), os.getpid()
    found = []
    for pid in all_pids() if pids is None else pids:
        if pid == own:
            continue
        before = stat_of(pid)
        if before is None or before.state == "Z":
            continue
        if environment_of(pid).get(RUN_ID_ENV.encode()) != wanted:
            continue
        pidfd = Pidfd.open(pid, before.start)  # the same process whose environment was read
        if pidfd is not None:
            found.append(pidfd)
    return found


def stop_leftovers(record: Record, describe: Callable[[str], None] = log.warning) -> int:
    """Stop what a dead daemon's record names; returns how many processes were signalled."""
    targets: dict[int, tuple[Pidfd, float]] = {}  # pid -> (its pidfd, its stop timeout)
    for name, entry in record.processes.items():
        leader = Pidfd.open(entry.pid, entry.start)
        if leader is None:
            continue  # gone, or its pid now belongs to somebody else
        describe(f"{name}: pid {entry.pid} outlived the sentinel that started it: stopping it")
        targets[entry.pid] = (leader, entry.stop_timeout)
        for member in group_members(entry.pgid):
            if member.pid in targets:
                continue
            pidfd = Pidfd.open(member.pid, member.start)
            # The group's number is pinned while its leader lives: checked under both pidfds.
            again = stat_of(member.pid)
            pinned = again is not None and again.pgrp == entry.pgid and not leader.exited()
            if pidfd is not None and pinned:
                targets[member.pid] = (pidfd, entry.stop_timeout)
                continue
            if pidfd is not None:
                pidfd.close()
    signals = {e.pid: e.stop_signal for e in record.processes.values()}
    for pidfd in carrying(record.run_id):
        if pidfd.pid in targets:
            pidfd.close()
            continue
        # The name is the process's own environment's say: escaped, it only labels a line.
        claimed = environment_of(pidfd.pid).get(b"SENTINEL_PROCESS_NAME", b"?")
        name = untrusted.clean(claimed.decode(errors="replace"), 100)
        describe(f"{name}: pid {pidfd.pid} outlived the sentinel that started it: stopping it")
        timeout = max((e.stop_timeout for e in record.processes.values()), default=10.0)
        targets[pidfd.pid] = (pidfd, timeout)
    if not targets:
        return 0
    for pid, (pidfd, _) in targets.items():
        sig = signals.get(pid, signal.SIGTERM)
        pidfd.send(sig)
        if sig not in (signal.SIGKILL, signal.SIGCONT):
            pidfd.send(signal.SIGCONT)
    timeout = max(t for _, t in targets.values())
    left = wait_exited([p for p, _ in targets.values()], timeout)
    for pidfd in left:
        describe(f"pid {pidfd.pid} still runs {timeout:g}s after the stop signal: SIGKILL")
        pidfd.send(signal.SIGKILL)
    wait_exited(left, KILL_WAIT)
    for pidfd, _ in targets.values():
        pidfd.close()
    return len(targets)


def recover(state_dir: Path, run_id: str) -> None:
    """At start-up, with the lock held: stop whatever the last daemon left running."""
    record = read_record(state_dir)
    if record is None or record.run_id == run_id:
        return
    stopped = stop_leftovers(record)
    if stopped:
        log.warning("stopped %d processes left by a sentinel that did not shut down", stopped)
    remove_record(state_dir)


class Recorder:
    """Keeps `processes.json` current: a change schedules one write `delay` seconds later, so
    that a crash loop of 50 processes is a few writes a second, not one per spawn. What a
    crash catches between a spawn and its write is still found by its run id."""

    def __init__(
        self,
        state_dir: Path,
        run_id: str,
        entries: Callable[[], Mapping[str, Entry]],
        loop: asyncio.AbstractEventLoop,
        delay: float = 0.2,
    ) -> None:
        self._state_dir, self.run_id, self._entries = state_dir, run_id, entries
        self._loop, self._delay = loop, delay
        self._pending: asyncio.TimerHandle | None = None
        self._failing = False

    def changed(self) -> None:
        if self._pending is None:
            self._pending = self._loop.call_later(self._delay, self.write)

    def write(self) -> None:
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        try:
            write_record(self._state_dir, Record(self.run_id, os.getpid(), self._entries()))
        except OSError as exc:
            if not self._failing:  # once per episode
                log.error("cannot write %s: %s", self._state_dir / RECORD_FILE, exc)
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        """A clean shutdown: nothing is left to find."""
        if self._pending is not None:
            self._pending.cancel()
            self._pending = None
        remove_record(self._state_dir)
