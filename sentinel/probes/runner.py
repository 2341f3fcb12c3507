"""Runs each RUNNING process's probes and turns their results into health verdicts.

A process's probes are scheduled when it becomes RUNNING: initial_delay after it was spawned
(the kubelet counts it from the container's start), plus a random part of the period so that
a thousand probes do not fire in the same millisecond, as the kubelet spreads them; they are
unscheduled when it leaves RUNNING. A startup probe runs alone
until it passes once. Every result is a `probe_result` event; when liveness (or startup)
fails failure_threshold times in a row the runner publishes `unhealthy`, and the daemon, the
one place that wires this feedback, restarts the process with reason `liveness`. A readiness
verdict (and the startup probe's pass, for a process without a readiness probe) is a
`readiness` event, which the daemon hands to the supervisor for what waits on it.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from sentinel.bus import EventBus
from sentinel.events import Event, Healthy, ProbeResultEvent, Readiness, StateChanged, Unhealthy
from sentinel.health import HealthTracker, ProbeKind, Verdict
from sentinel.model import Probe, ProcessSpec
from sentinel.probes import ProbeResult
from sentinel.probes.exec import ExecProber
from sentinel.probes.http import HttpProber
from sentinel.probes.tcp import probe_tcp
from sentinel.snapshot import NO_PROBES, HealthStatus, ProbeStatus
from sentinel.states import Health, ProcessState
from sentinel.untrusted import DETAIL_MAX, clean

log = logging.getLogger(__name__)

SpecLookup = Callable[[str], ProcessSpec | None]
# A process whose readiness (or startup) probe has not run in this run: not ready. (Its state
# may already be RUNNING while the event that starts its probes is still on its way.)
NOT_YET_PROBED = HealthStatus(Health.UNKNOWN, False, ())


class Scheduler(Protocol):
    """Runs jobs periodically (scheduling.ProbeScheduler; wired in by the daemon)."""

    def add(
        self, job_id: str, job: Callable[[], Awaitable[None]], period: float, first_in: float
    ) -> None: ...

    def remove(self, job_id: str) -> None: ...


class _Watch:
    """The probes of one process instance (one pid)."""

    def __init__(self, spec: ProcessSpec, pid: int, since: float) -> None:
        s = spec.settings
        probes = {
            ProbeKind.LIVENESS: s.liveness,
            ProbeKind.READINESS: s.readiness,
            ProbeKind.STARTUP: s.startup,
        }
        self.spec, self.pid, self.since = spec, pid, since
        self.probes: dict[ProbeKind, Probe] = {k: p for k, p in probes.items() if p is not None}
        self.tracker = HealthTracker(self.probes)
        self.env = {
            "SENTINEL_PROGRAM": spec.name,
            "SENTINEL_GROUP": spec.group,
            "SENTINEL_PID": str(pid),
        }

    def job_id(self, kind: ProbeKind) -> str:
        return f"{self.spec.name}:{kind.value}"


class ProbeRunner:
    def __init__(
        self,
        bus: EventBus,
        scheduler: Scheduler,
        http: HttpProber,
        execs: ExecProber,
        spec_of: SpecLookup,
        *,
        rng: Callable[[], float] = random.random,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._bus, self._scheduler, self._http, self._execs = bus, scheduler, http, execs
        self._spec_of, self._rng, self._clock = spec_of, rng, clock
        self._watches: dict[str, _Watch] = {}
        self._spawned: dict[str, float] = {}  # when each process was last spawned (clock)
        # The probes of a process restarted as unhealthy, kept for `status` (and alerts) until
        # it runs again: why it was restarted stays visible through its BACKOFF.
        self._failed: dict[str, _Watch] = {}

    def on_event(self, event: Event) -> None:
        """Subscribed to the bus: probes follow the process into and out of RUNNING."""
        if not isinstance(event, StateChanged):
            return
        if event.new is ProcessState.STARTING:
            self._spawned[event.process] = self._clock()  # initial_delay counts from here
        if event.new is ProcessState.RUNNING and event.pid is not None:
            self._begin(event.process, event.pid)
        elif event.old is ProcessState.RUNNING:
            self._end(event.process)
        if event.new is ProcessState.STOPPED:  # stopped on purpose (or removed): no longer news
            self._failed.pop(event.process, None)
            self._spawned.pop(event.process, None)

    def resume(self, name: str, pid: int) -> None:
        """A RUNNING process adopted after a re-exec: its probes start again (their verdicts
        start over, as after a restart of sentinel)."""
        self._begin(name, pid)

    def health(self, name: str) -> HealthStatus:
        """What the probes of a process say: of its current run, or of the run that was
        restarted as unhealthy (so that why stays visible through its BACKOFF)."""
        watch = self._watches.get(name) or self._failed.get(name)
        if watch is None:
            spec = self._spec_of(name)
            if spec is not None and {"readiness", "startup"} & set(spec.probe_kinds):
                return NOT_YET_PROBED  # not ready until its probe says so
            return NO_PROBES
        tracker = watch.tracker
        return HealthStatus(
            health=tracker.health,
            ready=tracker.ready if ProbeKind.READINESS in watch.probes else tracker.started,
            probes=tuple(
                ProbeStatus(kind.value, r.ok, r.detail, r.latency, r.warning)
                for kind, r in tracker.last.items()
            ),
        )

    # --- scheduling -------------------------------------------------------------------------

    def _begin(self, name: str, pid: int) -> None:
        self._end(name)
        self._failed.pop(name, None)
        spec = self._spec_of(name)
        if spec is None or not spec.probe_kinds:
            return
        watch = _Watch(spec, pid, self._spawned.pop(name, self._clock()))
        self._watches[name] = watch
        for kind in watch.probes:
            if watch.tracker.active(kind):
                self._schedule(watch, kind)

    def _end(self, name: str) -> None:
        watch = self._watches.pop(name, None)
        if watch is not None:
            for kind in watch.probes:
                self._scheduler.remove(watch.job_id(kind))

    def _schedule(self, watch: _Watch, kind: ProbeKind) -> None:
        probe = watch.probes[kind]
        elapsed = self._clock() - watch.since
        first_in = max(0.0, probe.initial_delay - elapsed) + self._rng() * probe.period

        async def run() -> None:
            result = await self._check(probe, watch.env)
            if self._watches.get(watch.spec.name) is watch:  # not restarted meanwhile
                self._record(watch, kind, result)

        self._scheduler.add(watch.job_id(kind), run, probe.period, first_in)

    async def _check(self, probe: Probe, env: Mapping[str, str]) -> ProbeResult:
        if probe.http is not None:
            return await self._http.probe(probe.http, probe.timeout)
        if probe.tcp is not None:
            return await probe_tcp(probe.tcp, probe.timeout)
        assert probe.exec is not None
        return await self._execs.probe(probe.exec, probe.timeout, env)

    # --- verdicts ---------------------------------------------------------------------------

    def _record(self, watch: _Watch, kind: ProbeKind, result: ProbeResult) -> None:
        spec = watch.spec
        self._bus.publish(
            ProbeResultEvent(
                process=spec.name,
                group=spec.group,
                probe=kind.value,
                ok=result.ok,
                latency=result.latency,
                detail=clean(result.detail, DETAIL_MAX),
                warning=result.warning,
            )
        )
        verdict = watch.tracker.record(kind, result)
        if verdict is Verdict.STARTED:
            self._scheduler.remove(watch.job_id(ProbeKind.STARTUP))
            for other in watch.probes:
                if other is not ProbeKind.STARTUP:
                    self._schedule(watch, other)
            if ProbeKind.READINESS not in watch.probes:  # ready, as far as probes go
                self._bus.publish(
                    Readiness(process=spec.name, group=spec.group, ready=True, detail=result.detail)
                )
        elif verdict in (Verdict.READY, Verdict.NOT_READY):
            self._bus.publish(
                Readiness(
                    process=spec.name,
                    group=spec.group,
                    ready=verdict is Verdict.READY,
                    detail=result.detail,
                )
            )
        elif verdict is Verdict.UNHEALTHY:
            failures = watch.probes[kind].failure_threshold
            self._end(spec.name)  # no more probes for this pid: it is being restarted
            self._failed[spec.name] = watch
            self._bus.publish(
                Unhealthy(
                    process=spec.name,
                    group=spec.group,
                    probe=kind.value,
                    failures=failures,
                    detail=f"{kind.value} failed {failures}x: {clean(result.detail, DETAIL_MAX)}",
                )
            )
        elif verdict is Verdict.HEALTHY:
            detail = clean(result.detail, DETAIL_MAX)
            self._bus.publish(Healthy(process=spec.name, group=spec.group, detail=detail))
