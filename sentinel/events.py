"""Events (frozen dataclasses with a timestamp) and the in-process bus that carries them.

The state machine and the supervisor publish; metrics, notifications, the API's event stream
and the daemon's log subscribe. A subscriber's error is logged, never raised into the publisher.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeVar

from sentinel.states import ProcessState, RestartReason

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Event:
    kind: ClassVar[str] = "event"
    timestamp: float = 0.0  # unix time; stamped by the bus when published with 0

    def to_dict(self) -> dict[str, Any]:
        data = {"event": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            data[f.name] = value.name if isinstance(value, ProcessState) else value
        return data


@dataclass(frozen=True, kw_only=True)
class ProcessEvent(Event):
    process: str
    group: str


@dataclass(frozen=True, kw_only=True)
class StateChanged(ProcessEvent):
    kind: ClassVar[str] = "state_changed"
    old: ProcessState
    new: ProcessState
    pid: int | None
    reason: str  # why, in words: "exited with 1", "stop requested", "up for 1s"
    exit_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class Restart(ProcessEvent):
    kind: ClassVar[str] = "restart"
    reason: RestartReason
    exit_code: int | None
    detail: str
    restarts: int  # restarts of this process so far, this one included


@dataclass(frozen=True, kw_only=True)
class BackoffStarted(ProcessEvent):
    kind: ClassVar[str] = "backoff"
    attempt: int
    delay: float


@dataclass(frozen=True, kw_only=True)
class Fatal(ProcessEvent):
    kind: ClassVar[str] = "fatal"
    detail: str
    exit_code: int | None


@dataclass(frozen=True, kw_only=True)
class Flapping(ProcessEvent):
    """`restarts` automatic restarts within `window` seconds: once per episode."""

    kind: ClassVar[str] = "flapping"
    restarts: int
    window: float
    stopped: bool  # flapping.action = "stop": the process went FATAL instead of restarting


@dataclass(frozen=True, kw_only=True)
class Recovered(ProcessEvent):
    """An episode is over: flapping stopped (a window passed with no restart), or health is back."""

    kind: ClassVar[str] = "recovered"
    detail: str


@dataclass(frozen=True, kw_only=True)
class ProbeResultEvent(ProcessEvent):
    kind: ClassVar[str] = "probe_result"
    probe: str  # liveness | readiness | startup
    ok: bool
    latency: float
    detail: str
    warning: bool = False


@dataclass(frozen=True, kw_only=True)
class Unhealthy(ProcessEvent):
    """A liveness (or startup) probe failed failure_threshold times in a row: restart."""

    kind: ClassVar[str] = "unhealthy"
    probe: str
    failures: int
    detail: str


@dataclass(frozen=True, kw_only=True)
class Healthy(ProcessEvent):
    """The liveness probe passed success_threshold times in a row."""

    kind: ClassVar[str] = "healthy"
    detail: str


@dataclass(frozen=True, kw_only=True)
class NotificationResult(Event):
    """A notification was sent, failed for good, or was suppressed by the cooldown."""

    kind: ClassVar[str] = "notification"
    result: str  # sent | failed | suppressed
    target: str  # the URL without its secrets ("" when suppressed)
    title: str


@dataclass(frozen=True, kw_only=True)
class ConfigReloaded(Event):
    kind: ClassVar[str] = "config_reloaded"
    ok: bool
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    error: str = ""


E = TypeVar("E", bound=Event)
Subscriber = Callable[[Event], None]


@dataclass
class _Waiter:
    predicate: Callable[[Event], bool]
    future: asyncio.Future[Event] = field(repr=False)


class EventBus:
    """Synchronous fan-out to subscribers, in publish order."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._subscribers: list[Subscriber] = []
        self._waiters: list[_Waiter] = []
        self._pending: deque[Event] = deque()
        self._delivering = False

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add a subscriber; returns the function that removes it."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def publish(self, event: Event) -> Event:
        """Deliver to every subscriber. An event published by a subscriber is delivered after
        the current one has reached everybody, so every subscriber sees events in one order."""
        if not event.timestamp:
            # Stamped in place: nobody has seen the event yet, and a copy per event cost a
            # few percent of the daemon's CPU at a thousand probe results a second.
            object.__setattr__(event, "timestamp", self._clock())
        self._pending.append(event)
        if self._delivering:
            return event
        self._delivering = True
        try:
            while self._pending:
                self._deliver(self._pending.popleft())
        finally:
            self._delivering = False
        return event

    def _deliver(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber(event)
            except Exception:
                log.exception("event subscriber %r failed on %s", subscriber, event.kind)
        for waiter in list(self._waiters):
            if not waiter.future.done() and waiter.predicate(event):
                waiter.future.set_result(event)

    async def wait_for(self, kind: type[E], predicate: Callable[[E], bool] = lambda e: True) -> E:
        """The next event of `kind` matching `predicate` (guard with asyncio.timeout)."""
        future: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        waiter = _Waiter(lambda e: isinstance(e, kind) and predicate(e), future)
        self._waiters.append(waiter)
        try:
            event = await future
        finally:
            self._waiters.remove(waiter)
        assert isinstance(event, kind)
        return event
