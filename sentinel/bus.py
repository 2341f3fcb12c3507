"""The in-process event bus: stamps events and fans them out to subscribers, in order.

The state machine and the supervisor publish; metrics, notifications, the API's event stream
and the daemon's log subscribe. A subscriber's error is logged, never raised into the publisher.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from sentinel.events import Event

log = logging.getLogger(__name__)

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
