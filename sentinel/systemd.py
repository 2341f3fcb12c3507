"""Talking to the service manager that runs sentinel: sd_notify, the watchdog, the journal.

The sd_notify protocol is a few lines: newline-separated KEY=VALUE assignments in one
datagram to the unix socket named by $NOTIFY_SOCKET (a path, or "@name" in the abstract
namespace). sentinel says READY=1 once its control socket is up and its autostart programs
are spawned, STATUS= with its processes counted by state, RELOADING=1 (with MONOTONIC_USEC, as
systemd 253 asks for Type=notify-reload) while a reload is applied, STOPPING=1 at shutdown.

With $WATCHDOG_USEC (and $WATCHDOG_PID naming this process, or unset), WATCHDOG=1 goes out at
half that interval from a timer on the event loop itself: if the loop stalls, the pings stop
and systemd restarts sentinel. Without $NOTIFY_SOCKET all of this is a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class ServiceManager:
    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        env = os.environ if environ is None else environ
        self._loop = loop or asyncio.get_running_loop()
        self._address = _address(env.get("NOTIFY_SOCKET", ""))
        self._sock: socket.socket | None = None
        if self._address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._watchdog = _watchdog_interval(env) if self._sock is not None else None
        self._timer: asyncio.TimerHandle | None = None
        self._last_status = ""

    @property
    def active(self) -> bool:
        return self._sock is not None

    def notify(self, **fields: str) -> None:
        """Send KEY=VALUE fields in one datagram (READY="1", STATUS="..."); never raises."""
        if self._sock is None or self._address is None:
            return
        message = "\n".join(f"{key}={value}" for key, value in fields.items())
        try:
            self._sock.sendto(message.encode(), self._address)
        except OSError as exc:  # the manager went away: nothing to tell it
            log.debug("sd_notify failed: %s", exc)

    def ready(self, status: str) -> None:
        self._last_status = status
        self.notify(READY="1", STATUS=status)
        self._arm_watchdog()

    def status(self, status: str) -> None:
        if status != self._last_status:
            self._last_status = status
            self.notify(STATUS=status)

    def reloading(self) -> None:
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000
        self.notify(RELOADING="1", MONOTONIC_USEC=str(usec), STATUS="reloading the config")

    def reloaded(self, status: str) -> None:
        self._last_status = status
        self.notify(READY="1", STATUS=status)

    def stopping(self) -> None:
        self.notify(STOPPING="1", STATUS="stopping every program")
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def _arm_watchdog(self) -> None:
        if self._watchdog is None or self._timer is not None:
            return

        def ping() -> None:
            self.notify(WATCHDOG="1")
            assert self._watchdog is not None
            self._timer = self._loop.call_later(self._watchdog, ping)

        ping()


def _address(value: str) -> str | bytes | None:
    if not value:
        return None
    if value.startswith("@"):  # the abstract namespace: a leading NUL byte
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    log.warning("NOTIFY_SOCKET=%r is neither a path nor @name: not notifying", value)
    return None


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Half of $WATCHDOG_USEC, in seconds, if the watchdog is meant for this process."""
    with contextlib.suppress(ValueError):
        usec = int(env.get("WATCHDOG_USEC", ""))
        pid = env.get("WATCHDOG_PID")
        if usec > 0 and (pid is None or int(pid) == os.getpid()):
            return usec / 2e6
    return None


def journal_stream(environ: Mapping[str, str] | None = None, fd: int = 2) -> bool:
    """Whether `fd` is connected to the journal: $JOURNAL_STREAM ("DEVICE:INODE") names it."""
    env = os.environ if environ is None else environ
    device, _, inode = env.get("JOURNAL_STREAM", "").partition(":")
    try:
        stat = os.fstat(fd)
        return (stat.st_dev, stat.st_ino) == (int(device), int(inode))
    except (OSError, ValueError):
        return False
