"""The web UI's live updates: one hub per listener turns the event bus into batched messages
for every open page, and samples CPU and memory while anyone watches.

While at least one page is open, the hub subscribes to the bus and notes which processes an
event touched; every TICK seconds it snapshots those (and only those), keeps the rows that
differ from what it last sent, and sends them to every main page as one message. A crash
loop of 500 programs is thus at most one message a tick, whatever the event rate, and a
probe that passes again with a new latency sends nothing. A process page also gets its
process's history (history.py) when that changed. A page that cannot keep up loses its
queued messages and is sent everything afresh. When the last page closes, the hub
unsubscribes and stops: with nobody watching, the UI costs the daemon nothing but
history.py's bookkeeping.

The rows' time fields are unix times (when the state began, when the backoff ends, when the
process started): pages count uptimes and countdowns themselves, and a row changes only when
something about the process does. Each message carries the daemon's time, for the page to
correct its clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from sentinel.api.control import Control
from sentinel.api.ui.history import Recorder
from sentinel.errors import NoSuchProcess
from sentinel.events import ConfigReloaded, Event, ProcessEvent
from sentinel.metrics import CPU, RSS, SentinelCollector
from sentinel.metrics import Sample as MetricsSample
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState

log = logging.getLogger(__name__)

TICK = 0.5  # seconds between batches
SAMPLE_EVERY = 5.0  # seconds between CPU and memory samples
KEEP_ALIVE = 15.0  # seconds of silence before a comment line, so that proxies keep the stream
QUEUED = 8  # messages a page may fall behind before it is sent everything afresh

Row = dict[str, Any]


class Subscription:
    """One open page: the messages for it, as server-sent event text."""

    def __init__(self, hub: Hub, process: str | None) -> None:
        self.process = process  # a process page's process; None: the main page
        self.fresh = True  # it needs everything (just opened, or fell behind)
        self.version = -1  # the version of its process's history it was sent
        self._hub = hub
        self._queue: asyncio.Queue[str] = asyncio.Queue(maxsize=QUEUED)

    def put(self, message: str) -> None:
        if self._queue.full():  # a page that cannot keep up: everything again, next tick
            while not self._queue.empty():
                self._queue.get_nowait()
            self.fresh = True
            self.version = -1
            return
        self._queue.put_nowait(message)

    async def next(self, timeout: float) -> str | None:
        """The next message; None after `timeout` seconds without one."""
        try:
            async with asyncio.timeout(timeout):
                return await self._queue.get()
        except TimeoutError:
            return None

    def close(self) -> None:
        self._hub.leave(self)


class Hub:
    def __init__(
        self,
        control: Control,
        history: Recorder,
        tick: float = TICK,
        sample_every: float = SAMPLE_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._control = control
        self._history = history
        self._tick_every, self._sample_every, self._clock = tick, sample_every, clock
        self._subscriptions: list[Subscription] = []
        self._rows: dict[str, Row] = {}  # what pages were last sent, by process
        self._rate: list[int] = []
        self._dirty: set[str] = set()
        self._everything = True  # the set of processes may have changed: snapshot them all
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def join(self, process: str | None = None) -> Subscription:
        """A subscription for a page (`process`: a process page's); close it when done."""
        subscription = Subscription(self, process)
        self._subscriptions.append(subscription)
        if self._task is None or self._task.done():
            self._everything = True
            self._task = asyncio.get_running_loop().create_task(self._run())
        self._wake.set()  # its first message now, not a tick later
        return subscription

    def leave(self, subscription: Subscription) -> None:
        with contextlib.suppress(ValueError):
            self._subscriptions.remove(subscription)

    @property
    def watched(self) -> bool:
        return bool(self._subscriptions)

    # --- the loop while pages are open ------------------------------------------------------

    async def _run(self) -> None:
        unsubscribe = self._control.bus.subscribe(self._on_event)
        sampler = asyncio.get_running_loop().create_task(self._sample_while_watched())
        try:
            while self._subscriptions and not self._control.closing.is_set():
                self._wake.clear()
                try:
                    self._send()
                except Exception:  # a bug here must not end live updates for good
                    log.exception("web UI: building an update failed")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._tick_every):
                        await self._wake.wait()
        finally:
            unsubscribe()
            sampler.cancel()
            self._rows.clear()
            self._dirty.clear()

    def _on_event(self, event: Event) -> None:
        if isinstance(event, ProcessEvent):
            self._dirty.add(event.process)
        elif isinstance(event, ConfigReloaded):
            self._everything = True

    def _send(self) -> None:
        now = self._clock()
        changed, removed = self._changed_rows(now)
        rate = self._history.restart_rate(now)
        rate_changed = rate != self._rate
        self._rate = rate
        by_process: dict[str | None, str] = {}
        for subscription in list(self._subscriptions):
            fresh = subscription.fresh
            subscription.fresh = False
            if subscription.process is None:
                if fresh:
                    message = _message(now, list(self._rows.values()), [], rate, fresh=True)
                elif changed or removed or rate_changed:
                    message = by_process.get(None) or _message(now, changed, removed, rate)
                    by_process[None] = message
                else:
                    continue
                subscription.put(message)
            else:
                self._send_process(subscription, now, changed, fresh)

    def _send_process(
        self, subscription: Subscription, now: float, changed: list[Row], fresh: bool
    ) -> None:
        name = subscription.process
        assert name is not None
        row = self._rows.get(name)
        if fresh or any(r["name"] == name for r in changed):
            removed = [name] if row is None else []
            subscription.put(_message(now, [row] if row else [], removed, None, fresh=fresh))
        history = self._history.of(name)
        if history is not None and history.version != subscription.version:
            subscription.version = history.version
            subscription.put(_sse("history", {"now": now, "history": history.to_dict()}))

    def _changed_rows(self, now: float) -> tuple[list[Row], list[str]]:
        """Rows that differ from those last sent, and the processes gone since."""
        processes = self._control.processes
        if self._everything:
            self._everything = False
            self._dirty.clear()
            snapshots = processes.snapshots()
            gone = self._rows.keys() - {s.name for s in snapshots}
            for name in gone:
                del self._rows[name]
            removed = sorted(gone)
        else:
            names = [name for name in self._dirty if name in self._rows]
            self._dirty.clear()
            try:
                snapshots = processes.snapshots(names) if names else []
            except NoSuchProcess:  # removed by a reload that has not said so yet
                self._everything = True
                return self._changed_rows(now)
            removed = []
        changed = []
        for snapshot in snapshots:
            row = self.row(snapshot, now)
            if self._rows.get(snapshot.name) != row:
                self._rows[snapshot.name] = row
                changed.append(row)
        return changed, removed

    def row(self, s: ProcessSnapshot, now: float) -> Row:
        """A process as the table shows it."""
        history = self._history.of(s.name)
        last = history.restarts[-1] if history is not None and history.restarts else None
        since = history.state_since if history is not None else None
        backoff_until = None
        if s.state is ProcessState.BACKOFF:
            seen = history.backoff_until if history is not None else None
            backoff_until = seen if seen is not None else round(now + s.backoff_remaining_seconds)
        running = s.pid is not None
        return {
            "name": s.name,
            "group": s.group,
            "state": s.state.name,
            "health": str(s.health),
            "ready": s.ready,
            "probes": list(s.configured_probes),
            "pid": s.pid,
            "exit_code": s.exit_code,
            "since": since if since is not None else (s.start_time if running else s.stop_time),
            "started": s.start_time if running else None,
            "restarts": s.restarts,
            "last_restart": _restart_text(last),
            "last_restart_at": last[0] if last is not None else None,
            "probe": _probe_text(s),
            "probe_ok": _probe_ok(s),
            "backoff_until": backoff_until,
            "flapping": s.flapping,
            "detail": s.detail,
            "waiting_for": list(s.waiting_for),
            "notify_status": s.notify_status,  # what the program said over sd_notify
            "notify_phase": s.notify_phase,
        }

    # --- CPU and memory ---------------------------------------------------------------------

    async def _sample_while_watched(self) -> None:
        metrics = self._control.metrics
        while True:
            try:
                sample = metrics.sample()  # what the loop owns, copied on the loop
                usage = await asyncio.to_thread(usage_of, metrics, sample)  # /proc, off it
                self._history.record_usage(self._clock(), usage)
            except Exception:
                log.exception("web UI: sampling CPU and memory failed")
            await asyncio.sleep(self._sample_every)


def usage_of(metrics: SentinelCollector, sample: MetricsSample) -> dict[str, tuple[float, float]]:
    """Each process's CPU seconds and resident bytes, as /metrics gives them."""
    cpu: dict[str, float] = {}
    rss: dict[str, float] = {}
    for family in metrics.families(sample):
        if family.definition in (CPU, RSS):
            into = cpu if family.definition is CPU else rss
            for series, value in zip(family.series, family.values, strict=True):
                into[series.labels[0][1]] = value  # the "process" label comes first
    return {name: (cpu[name], rss.get(name, 0.0)) for name in cpu}


def _restart_text(last: tuple[float, str, int | None, str] | None) -> str:
    if last is None:
        return ""
    _, reason, _, detail = last
    if not detail or detail.startswith(reason):  # "exited with 3" says it already
        return detail or reason
    return f"{reason}: {detail}"


def _probe_text(s: ProcessSnapshot) -> str:
    """What the probes say, failing ones first (the same line the CLI's DETAIL shows)."""
    failing = s.failing_probes
    if failing:
        return failing
    return "; ".join(f"{p.probe}: {p.detail}" for p in s.probes)


def _probe_ok(s: ProcessSnapshot) -> bool | None:
    if not s.probes:
        return None
    return all(p.ok for p in s.probes)


def _message(
    now: float, rows: Iterable[Row], removed: list[str], rate: list[int] | None, fresh: bool = False
) -> str:
    data: dict[str, Any] = {"now": now, "rows": list(rows), "removed": removed, "fresh": fresh}
    if rate is not None:
        data["restart_rate"] = rate
    return _sse("rows", data)


def _sse(event: str, data: object) -> str:
    return f"event: {event}\ndata: {orjson.dumps(data).decode()}\n\n"
