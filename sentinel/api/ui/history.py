"""What the web UI remembers, in memory and bounded: each process's recent events, restarts,
probe results and CPU and memory samples, and the host's restarts over time.

Events come from the bus, always, not only while a page is open: whoever opens a process page
in an incident wants what happened before they looked. CPU and memory are the metrics
collector's own figures (those /metrics serves), sampled by the live hub (live.py) while a
page watches. Numbers sit in flat arrays, not an object per point; with 500 processes all in
a crash loop and two probes each, the whole is a few MB, and a process removed by a reload
takes its history with it.
"""

from __future__ import annotations

from array import array
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    Event,
    Fatal,
    Flapping,
    Healthy,
    ProbeResultEvent,
    ProcessEvent,
    Recovered,
    Restart,
    StateChanged,
    Unhealthy,
)

PROBE_POINTS = 100  # results kept per probe of a process
USAGE_POINTS = 120  # CPU and memory samples kept per process (10 minutes at 5 s)
EVENTS_KEPT = 20  # events kept per process (probe results aside)
RESTARTS_KEPT = 20
RATE_BUCKET = 10.0  # seconds a bucket of the host's restart rate covers
RATE_BUCKETS = 90  # buckets kept: 15 minutes

FAIL, PASS, WARN = 0, 1, 2  # a probe result's outcome in its ring


class Ring:
    """The last `size` rows of a few numeric columns, one typed array per column (array
    typecodes: "d" a double, "f" a float, "b" a small int)."""

    __slots__ = ("_columns", "_count", "_next", "_size")

    def __init__(self, size: int, typecodes: str) -> None:
        self._columns: list[array[Any]] = [array(code, [0]) * size for code in typecodes]
        self._size, self._next, self._count = size, 0, 0

    def append(self, *values: float) -> None:
        for column, value in zip(self._columns, values, strict=True):
            column[self._next] = int(value) if column.typecode == "b" else value
        self._next = (self._next + 1) % self._size
        self._count = min(self._count + 1, self._size)

    def rows(self) -> list[list[float]]:
        """Oldest first."""
        start = (self._next - self._count) % self._size
        order = [(start + i) % self._size for i in range(self._count)]
        return [[column[i] for column in self._columns] for i in order]

    def __len__(self) -> int:
        return self._count


@dataclass
class ProcessHistory:
    events: deque[tuple[float, str, str]] = field(
        default_factory=lambda: deque(maxlen=EVENTS_KEPT)
    )  # (time, kind, what happened)
    restarts: deque[tuple[float, str, int | None, str]] = field(
        default_factory=lambda: deque(maxlen=RESTARTS_KEPT)
    )  # (time, reason, exit code, detail)
    probes: dict[str, Ring] = field(default_factory=dict)  # probe -> (time, latency, outcome)
    usage: Ring | None = None  # (time, CPU seconds of the tree, resident bytes)
    state_since: float | None = None  # when it entered its current state, if seen
    backoff_until: float | None = None  # when the pending backoff ends, if seen
    version: int = 0  # changes whenever something here does

    def to_dict(self) -> dict[str, object]:
        return {
            "events": [list(e) for e in self.events],
            "restarts": [list(r) for r in self.restarts],
            "probes": {kind: ring.rows() for kind, ring in sorted(self.probes.items())},
            "usage": self.usage.rows() if self.usage is not None else [],
        }


class Recorder:
    """Subscribed to the bus: keeps each process's history (`on_event`), and takes samples of
    CPU and memory (`record_usage`). Runs on the loop only."""

    def __init__(self) -> None:
        self._processes: dict[str, ProcessHistory] = {}
        self._rate: deque[list[int]] = deque(maxlen=RATE_BUCKETS)  # [bucket number, restarts]

    def of(self, name: str) -> ProcessHistory | None:
        return self._processes.get(name)

    def restart_rate(self, now: float) -> list[int]:
        """Restarts in each RATE_BUCKET of the last RATE_BUCKETS, oldest first."""
        current = int(now // RATE_BUCKET)
        counts = {bucket: n for bucket, n in self._rate}
        return [counts.get(b, 0) for b in range(current - RATE_BUCKETS + 1, current + 1)]

    def on_event(self, event: Event) -> None:
        if isinstance(event, ConfigReloaded):
            for name in event.removed:
                self._processes.pop(name, None)
            return
        if not isinstance(event, ProcessEvent):
            return
        history = self._processes.get(event.process)
        if history is None:
            history = self._processes[event.process] = ProcessHistory()
        history.version += 1
        if isinstance(event, ProbeResultEvent):
            ring = history.probes.get(event.probe)
            if ring is None:
                ring = history.probes[event.probe] = Ring(PROBE_POINTS, "dfb")
            outcome = (WARN if event.warning else PASS) if event.ok else FAIL
            ring.append(event.timestamp, event.latency, outcome)
            return
        if isinstance(event, StateChanged):
            history.state_since = event.timestamp
        elif isinstance(event, BackoffStarted):
            history.backoff_until = event.timestamp + event.delay
        elif isinstance(event, Restart):
            history.restarts.append(
                (event.timestamp, event.reason.value, event.exit_code, event.detail)
            )
            bucket = int(event.timestamp // RATE_BUCKET)
            if self._rate and self._rate[-1][0] == bucket:
                self._rate[-1][1] += 1
            else:
                self._rate.append([bucket, 1])
        history.events.append((event.timestamp, event.kind, describe(event)))

    def record_usage(self, now: float, usage: dict[str, tuple[float, float]]) -> None:
        """A sample of each process's CPU seconds and resident bytes, taken at `now`."""
        for name, (cpu, rss) in usage.items():
            history = self._processes.get(name)
            if history is None:
                history = self._processes[name] = ProcessHistory()
            if history.usage is None:
                history.usage = Ring(USAGE_POINTS, "ddf")
            history.usage.append(now, cpu, rss)
            history.version += 1


def describe(event: Event) -> str:
    """An event in a few words, as the process page lists it."""
    if isinstance(event, StateChanged):
        return f"{event.old.name} -> {event.new.name}: {event.reason}"
    if isinstance(event, Restart):
        return f"restart #{event.restarts} ({event.reason.value})" + (
            f": {event.detail}" if event.detail else ""
        )
    if isinstance(event, BackoffStarted):
        return f"backoff attempt {event.attempt}, {event.delay:.3g}s"
    if isinstance(event, Flapping):
        stopped = ", stopped" if event.stopped else ""
        return f"flapping: {event.restarts} restarts in {event.window:g}s{stopped}"
    if isinstance(event, Unhealthy):
        return f"unhealthy: {event.probe} failed {event.failures}x: {event.detail}"
    if isinstance(event, Healthy | Recovered | Fatal):
        return event.detail
    return event.kind
