"""The sd_notify protocol for programs, as systemd's service manager speaks it.

A program with `notify = true` gets `NOTIFY_SOCKET`: a datagram socket of its own,
`state_dir/notify/PROCESS.sock`, that this module binds and reads on the event loop. With
`watchdog`, it also gets `WATCHDOG_USEC` and `WATCHDOG_PID` (its own pid: set by a `/bin/sh`
that execs the program, since the pid is known only after the fork).

A datagram is read as systemd reads one: at most 4096 bytes (larger: dropped whole), no NUL
byte (else dropped whole), valid UTF-8 (else dropped), then newline-separated assignments;
a line without `=`, and a key sentinel does not use, is ignored; of a key given twice, the
first counts (systemd's `strv_find_startswith`). The flags are exact assignments: `READY=1`,
`RELOADING=1`, `STOPPING=1`, `WATCHDOG=1`, `WATCHDOG=trigger`. `STATUS=` takes any text;
`MAINPID=` a pid. Fds passed with it (`BARRIER=1`, the fd store) are not taken: the kernel
closes them, which is what ends `systemd-notify`'s wait for the barrier.

Who may speak for a process: the kernel attaches the sender's pid to every datagram
(SO_PASSCRED, SCM_CREDENTIALS). It must be in the process's tree: its main process (or one
it named with MAINPID=), a descendant of it (`systemd-notify` run by the program sends from
its own pid, or as root, from its parent's), or a descendant that was re-parented to
sentinel (it left its parent behind: a member of the process group, or one that escaped it)
and carries the process's SENTINEL_PROCESS_NAME. Anything else is dropped and logged. The
same holds for the pid a MAINPID= names.

What is accepted becomes a `Notified` event on the bus; the daemon hands it to the process's
driver. This module decides nothing about the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import socket
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from sentinel.accounts import lookup_user
from sentinel.bus import EventBus
from sentinel.events import Notified
from sentinel.model import ProcessSpec
from sentinel.snapshot import ProcessTree

log = logging.getLogger(__name__)

MAX_DATAGRAM = 4096  # systemd's NOTIFY_BUFFER_MAX
MAX_SUN_PATH = 107  # sockaddr_un's sun_path, less its terminating NUL
MAX_DEPTH = 64  # ancestors walked up from a sender, at most
_UCRED = struct.Struct("3i")  # pid, uid, gid
_ENV_KEY = b"SENTINEL_PROCESS_NAME"
# WATCHDOG_PID is the program's own pid: known only in the child, so a shell sets it and
# execs the program (keeping the pid).
WATCHDOG_SHIM = 'WATCHDOG_PID=$$; export WATCHDOG_PID; exec "$@"'

TreeLookup = Callable[[str], ProcessTree | None]


def parse(data: bytes) -> dict[str, str] | None:
    """The assignments of one datagram, or None if systemd would drop it whole."""
    if len(data) > MAX_DATAGRAM or b"\0" in data:
        return None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if sep and key and key not in fields:
            fields[key] = value
    return fields


def message(process: str, group: str, sender: int, fields: dict[str, str]) -> Notified:
    """The event for what a datagram said (MAINPID= still to be checked by the caller)."""
    mainpid = fields.get("MAINPID")
    return Notified(
        process=process,
        group=group,
        sender=sender,
        ready=fields.get("READY") == "1",
        reloading=fields.get("RELOADING") == "1",
        stopping=fields.get("STOPPING") == "1",
        watchdog=fields.get("WATCHDOG") == "1",
        watchdog_trigger=fields.get("WATCHDOG") == "trigger",
        status=fields.get("STATUS"),
        mainpid=int(mainpid) if mainpid is not None and mainpid.isascii() and mainpid.isdigit()
        else None,
    )  # fmt: skip


def _stat_of(pid: int) -> tuple[int, int] | None:
    """(parent pid, process group) of a process, or None if it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    fields = raw.rsplit(b")", 1)[1].split()
    return int(fields[1]), int(fields[2])


def _name_of(pid: int) -> bytes | None:
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return None
    for item in environ.split(b"\0"):
        key, _, value = item.partition(b"=")
        if key == _ENV_KEY:
            return value
    return None


def in_tree(pid: int, tree: ProcessTree, name: str, daemon: int | None = None) -> bool:
    """Whether `pid` belongs to the process `name` whose pids `tree` gives (see the module's
    docstring): read from /proc, now."""
    daemon = os.getpid() if daemon is None else daemon
    roots = {tree.main, tree.pgid, *tree.followed}
    current = pid
    for _ in range(MAX_DEPTH):
        if current in roots:
            return True
        found = _stat_of(current)
        if found is None:
            return False
        parent = found[0]
        if parent == daemon:  # re-parented to sentinel: left behind, or an intruder
            return current != daemon and _name_of(current) == name.encode()
        if parent <= 1:
            return False
        current = parent
    return False


class NotifyReceiver:
    """The sd_notify sockets of the processes with `notify = true`."""

    def __init__(
        self,
        directory: Path,
        bus: EventBus,
        trees: TreeLookup,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.directory = directory
        self._bus = bus
        self._trees = trees
        self._loop = loop or asyncio.get_running_loop()
        self._sockets: dict[str, socket.socket] = {}
        self._groups: dict[str, str] = {}
        self._refused: set[tuple[str, int]] = set()  # logged once per (process, sender)

    def launch(self, spec: ProcessSpec, argv: list[str], env: dict[str, str]) -> list[str]:
        """The driver's hook before a spawn: the socket, and what the program is told."""
        settings = spec.settings
        if not settings.notify:
            return argv
        env["NOTIFY_SOCKET"] = str(self.open(spec))
        if settings.watchdog > 0:
            env["WATCHDOG_USEC"] = str(round(settings.watchdog * 1e6))
            env.pop("WATCHDOG_PID", None)
            program = shutil.which(argv[0], path=env.get("PATH", os.defpath))
            if program is None:  # as a spawn without the shell in front would report it
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), argv[0])
            return ["/bin/sh", "-c", WATCHDOG_SHIM, argv[0], program, *argv[1:]]
        for key in ("WATCHDOG_USEC", "WATCHDOG_PID"):  # sentinel's own, from systemd
            env.pop(key, None)
        return argv

    def open(self, spec: ProcessSpec, inherited: int | None = None) -> Path:
        """Bind the process's socket (once); its path. OSError if it cannot be. `inherited`:
        the socket as the daemon before a re-exec had it bound, taken over as it is."""
        path = self.directory / f"{spec.name}.sock"
        self._groups[spec.name] = spec.group
        if spec.name in self._sockets:
            return path
        if inherited is not None:
            sock = socket.socket(fileno=inherited)
            os.set_inheritable(inherited, False)
            self._listen(spec.name, sock)
            return path
        if len(os.fsencode(path)) > MAX_SUN_PATH:
            raise OSError(
                f"the sd_notify socket path {path} is over {MAX_SUN_PATH} bytes: "
                "give [sentinel] state_dir a shorter path"
            )
        self._prepare_directory(spec)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # left by an earlier run
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
            sock.bind(str(path))
            # Anyone may send: who is heard is decided by the sender's credentials (as for
            # systemd's own socket), and a program may run as another user than sentinel.
            path.chmod(0o666)
            sock.setblocking(False)
        except OSError:
            sock.close()
            raise
        self._listen(spec.name, sock)
        return path

    def _listen(self, name: str, sock: socket.socket) -> None:
        self._sockets[name] = sock
        self._loop.add_reader(sock.fileno(), self._readable, name, sock)

    def hand_over(self) -> dict[str, int]:
        """For a re-exec: each socket's descriptor, left open across the exec, so that nothing
        a program says in between is lost (its datagrams wait in the socket)."""
        for sock in self._sockets.values():
            os.set_inheritable(sock.fileno(), True)
        return {name: sock.fileno() for name, sock in self._sockets.items()}

    def _prepare_directory(self, spec: ProcessSpec) -> None:
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o711)
        if spec.settings.user is not None and lookup_user(spec.settings.user).uid != os.geteuid():
            # Another user must be able to reach the socket: traverse, not list.
            for folder in (self.directory.parent, self.directory):
                mode = stat.S_IMODE(folder.stat().st_mode)
                if mode & 0o011 != 0o011:
                    folder.chmod(mode | 0o011)

    def close(self, name: str) -> None:
        """Close the socket of a process that is gone from the config."""
        sock = self._sockets.pop(name, None)
        self._groups.pop(name, None)
        if sock is None:
            return
        self._loop.remove_reader(sock.fileno())
        sock.close()
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{name}.sock").unlink()

    def release(self, name: str, inherited: int) -> None:
        """A socket handed over for a process that no longer has one: closed and removed."""
        os.close(inherited)
        with contextlib.suppress(FileNotFoundError):
            (self.directory / f"{name}.sock").unlink()

    def close_all(self) -> None:
        for name in list(self._sockets):
            self.close(name)

    def _readable(self, name: str, sock: socket.socket) -> None:
        for _ in range(64):  # a flood must not keep the loop here
            try:
                data, ancillary, flags, _ = sock.recvmsg(
                    MAX_DATAGRAM + 1, socket.CMSG_SPACE(_UCRED.size)
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                log.warning("%s: sd_notify socket: %s", name, exc)
                return
            sender = _sender(ancillary)
            if flags & socket.MSG_TRUNC or len(data) > MAX_DATAGRAM:
                self._refuse(name, sender or 0, "over 4096 bytes")
            elif sender is None:
                self._refuse(name, 0, "without credentials")
            else:
                self._receive(name, sender, data)

    def _receive(self, name: str, sender: int, data: bytes) -> None:
        fields = parse(data)
        if fields is None:
            self._refuse(name, sender, "not text (a NUL byte, or not UTF-8)")
            return
        tree = self._trees(name)
        if tree is None or not in_tree(sender, tree, name):
            self._refuse(name, sender, "from outside its process tree")
            return
        event = message(name, self._groups.get(name, name), sender, fields)
        if event.mainpid is not None and not (
            event.mainpid > 1
            and event.mainpid != os.getpid()
            and in_tree(event.mainpid, tree, name)
        ):
            log.warning("%s: MAINPID=%d ignored: not in its process tree", name, event.mainpid)
            event = message(
                name, event.group, sender, {k: v for k, v in fields.items() if k != "MAINPID"}
            )
        if fields.keys() - {"BARRIER"}:
            self._bus.publish(event)

    def _refuse(self, name: str, sender: int, why: str) -> None:
        if (name, sender) not in self._refused:
            if len(self._refused) > 1000:  # a flood from ever new pids: keep logging bounded
                self._refused.clear()
            self._refused.add((name, sender))
            log.warning("%s: sd_notify datagram from pid %d dropped: %s", name, sender, why)


def _sender(ancillary: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(data) >= 12:
            pid = _UCRED.unpack(data[: _UCRED.size])[0]
            return pid if pid > 0 else None
    return None
