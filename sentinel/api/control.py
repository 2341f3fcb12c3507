"""What the control plane's endpoints need from the daemon.

The daemon implements `Control`; the JSON API (app.py) and the XML-RPC endpoint (xmlrpc.py)
use nothing else, so neither reaches a process driver.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Iterable, Sequence
from typing import Protocol

from sentinel.bus import EventBus
from sentinel.events import ConfigReloaded, Event
from sentinel.metrics import SentinelCollector
from sentinel.model import Config
from sentinel.snapshot import ProcessSnapshot


class LogReader(Protocol):
    """A process's captured output (logs.LogCapture)."""

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

    async def reload(self) -> ConfigReloaded: ...

    def request_shutdown(self) -> None: ...


class BadRequest(Exception):
    """A request the API cannot act on (400), with what was expected."""
