"""What the control plane's endpoints need from the daemon.

The daemon implements `Control`; the JSON API (app.py) and the XML-RPC endpoint (xmlrpc.py)
use nothing else, so neither reaches a process driver.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from sentinel.bus import EventBus
from sentinel.events import ConfigReloaded, Event
from sentinel.metrics import SentinelCollector
from sentinel.model import Config
from sentinel.snapshot import ProcessSnapshot

MAX_LOG_READ = 1 << 20  # bytes one log read returns at most (length 0: "to the end", capped)


class LogReader(Protocol):
    """A process's captured output (logs.LogCapture)."""

    @property
    def path(self) -> Path: ...

    @property
    def written(self) -> int: ...

    def read(self, offset: int, length: int) -> tuple[bytes, int]: ...

    async def wait_written(self, after: int) -> int: ...


class Processes(Protocol):
    """The supervised processes, by name (supervisor.Supervisor)."""

    def select(self, names: Iterable[str]) -> list[str]: ...

    def snapshots(self, names: Iterable[str] = ...) -> list[ProcessSnapshot]: ...

    def log(self, name: str, stream: str) -> LogReader | None: ...

    async def start(self, names: Iterable[str], wait: bool = ...) -> dict[str, bool]: ...

    async def stop(self, names: Iterable[str], wait: bool = ...) -> dict[str, bool]: ...

    async def restart(self, names: Iterable[str], wait: bool = ...) -> dict[str, bool]: ...

    def signal(self, names: Iterable[str], sig: signal.Signals) -> dict[str, bool]: ...

    async def rolling_restart(
        self, names: Iterable[str], wait: bool = ...
    ) -> tuple[dict[str, bool], Sequence[RollOutcome]]: ...


class RollOutcome(Protocol):
    """How a rolling restart of one program went (rolling.RollResult)."""

    @property
    def program(self) -> str: ...

    @property
    def restarted(self) -> tuple[str, ...]: ...

    @property
    def stopped_at(self) -> str | None: ...

    @property
    def left(self) -> tuple[str, ...]: ...

    @property
    def detail(self) -> str: ...


class Control(Protocol):
    """What the API needs from the daemon."""

    @property
    def processes(self) -> Processes: ...

    @property
    def config(self) -> Config:
        """The configuration in force."""

    bus: EventBus
    closing: asyncio.Event  # set when the daemon shuts down: ends the streams
    metrics: SentinelCollector
    http_address: str | None  # where [control].http listens, as bound

    @property
    def recent(self) -> Sequence[Event]:
        """The last events, oldest first."""

    def read_config(self) -> Config:
        """The config file as a reload would take it, applied to nothing (ConfigError if a
        reload would reject it). Reads files only: call it off the loop."""

    async def reload(self) -> ConfigReloaded:
        """Apply the config file: add, remove, and restart what changed (ConfigError: nothing
        changes)."""

    async def apply(self, config: Config) -> ConfigReloaded:
        """Run `config`: the running config with process groups added or removed."""

    async def reexec(self) -> None:
        """Re-execute sentinel in place, programs running (ConfigError: refused, nothing
        changes)."""

    def request_shutdown(self) -> None: ...

    def essential_down(self) -> list[str]:
        """The essential processes that are not RUNNING."""

    @property
    def shutting_down(self) -> bool:
        """A shutdown was asked for: processes are stopping, or stopped."""


class BadRequest(Exception):
    """A request the API cannot act on (400), with what was expected."""
