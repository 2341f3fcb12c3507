"""Prometheus metrics: a collector that reads state at scrape time, plus counters and a
histogram fed from the event bus (the names are DESIGN.md's).

Every configured process has its series from start-up (zeros, not absent), and a process
removed by a reload loses its series at the next scrape: everything is produced from the
current set of drivers. No `_created` series are exposed.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector, CollectorRegistry

from sentinel import __version__
from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    Event,
    NotificationResult,
    ProbeResultEvent,
    Restart,
)
from sentinel.process import ProcessDriver
from sentinel.proctree import tree_usage
from sentinel.states import ProcessState, RestartReason

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NOTIFICATION_RESULTS = ("sent", "failed", "suppressed")
_STATES = [s for s in ProcessState]


@dataclass
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * len(PROBE_BUCKETS))
    total: int = 0
    sum: float = 0.0

    def observe(self, value: float) -> None:
        index = bisect.bisect_left(PROBE_BUCKETS, value)
        if index < len(self.counts):
            self.counts[index] += 1
        self.total += 1
        self.sum += value

    def buckets(self) -> list[tuple[str, float]]:
        cumulative, out = 0, []
        for bound, count in zip(PROBE_BUCKETS, self.counts, strict=True):
            cumulative += count
            out.append((repr(bound), float(cumulative)))
        out.append(("+Inf", float(self.total)))
        return out


@dataclass
class _ProcessCounters:
    restarts: dict[RestartReason, int] = field(
        default_factory=lambda: dict.fromkeys(RestartReason, 0)
    )
    backoffs: int = 0
    probe_success: dict[str, float] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    probe_durations: dict[str, _Histogram] = field(default_factory=lambda: defaultdict(_Histogram))


class SentinelCollector(Collector):
    def __init__(
        self,
        drivers: Callable[[], Iterable[ProcessDriver]],
        escaped: Callable[[], Mapping[str, list[int]]] = dict,
    ) -> None:
        """`escaped()` maps a process name to its descendants that outlived their parent (now
        children of sentinel, the subreaper): they still count in the process's tree."""
        self._drivers = drivers
        self._escaped = escaped
        self._cpu_lock = threading.Lock()  # two scrapes at once must not both move the base
        self._cpu_base: dict[str, float] = defaultdict(float)
        self._cpu_last: dict[str, float] = defaultdict(float)
        self._counters: dict[str, _ProcessCounters] = defaultdict(_ProcessCounters)
        self.notifications: dict[str, int] = dict.fromkeys(NOTIFICATION_RESULTS, 0)
        self.last_reload_ok = True

    def on_event(self, event: Event) -> None:
        """Subscribed to the bus: counts restarts, backoffs and probe results."""
        if isinstance(event, Restart):
            self._counters[event.process].restarts[event.reason] += 1
        elif isinstance(event, BackoffStarted):
            self._counters[event.process].backoffs += 1
        elif isinstance(event, ProbeResultEvent):
            counters = self._counters[event.process]
            counters.probe_success[event.probe] = 1.0 if event.ok else 0.0
            counters.probe_durations[event.probe].observe(event.latency)
            if not event.ok:
                counters.probe_failures[event.probe] += 1
        elif isinstance(event, NotificationResult) and event.result in self.notifications:
            self.notifications[event.result] += 1
        elif isinstance(event, ConfigReloaded):
            self.last_reload_ok = event.ok
            for name in event.removed:
                self._counters.pop(name, None)
                with self._cpu_lock:
                    self._cpu_base.pop(name, None)
                    self._cpu_last.pop(name, None)

    def collect(self) -> Iterator[Metric]:
        drivers = list(self._drivers())
        escaped = self._escaped()
        labels = ["program", "group"]

        def gauge(name: str, doc: str, *extra: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=[*labels, *extra])

        def counter(name: str, doc: str, *extra: str) -> CounterMetricFamily:
            return CounterMetricFamily(name, doc, labels=[*labels, *extra])

        up = gauge("sentinel_program_up", "1 when the process is RUNNING.")
        state = gauge(
            "sentinel_program_state", "1 for the current state, 0 for the others.", "state"
        )
        restarts = counter("sentinel_program_restarts", "Restarts, by reason.", "reason")
        backoffs = counter("sentinel_program_backoffs", "Entries into BACKOFF.")
        delay = gauge("sentinel_program_backoff_delay_seconds", "The backoff delay now pending.")
        flapping = gauge("sentinel_program_flapping", "1 while the process is flapping.")
        started = gauge("sentinel_program_start_time_seconds", "Unix time of the current start.")
        exit_code = gauge(
            "sentinel_program_last_exit_code",
            "Last exit status; negative: killed by that signal.",
        )
        cpu = counter("sentinel_program_cpu_seconds", "CPU of the process tree.")
        rss = gauge("sentinel_program_resident_memory_bytes", "RSS of the process tree.")
        success = gauge("sentinel_probe_success", "1 if the last probe passed.", "probe")
        failures = counter("sentinel_probe_failures", "Failed probes.", "probe")
        durations = HistogramMetricFamily(
            "sentinel_probe_duration_seconds", "Probe duration.", labels=[*labels, "probe"]
        )
        for driver in drivers:
            spec, machine = driver.spec, driver.machine
            key = [spec.name, spec.group]
            counters = self._counters[spec.name]
            running = machine.state is ProcessState.RUNNING
            up.add_metric(key, 1.0 if running else 0.0)
            for s in _STATES:
                state.add_metric([*key, s.name], 1.0 if machine.state is s else 0.0)
            for reason, count in counters.restarts.items():
                restarts.add_metric([*key, reason.value], count)
            backoffs.add_metric(key, counters.backoffs)
            delay.add_metric(key, machine.backoff_delay)
            flapping.add_metric(key, 1.0 if machine.flapping else 0.0)
            started.add_metric(key, driver.started_at or 0.0)
            exit_code.add_metric(key, machine.last_exit_code or 0)
            roots = [*([machine.pid] if machine.pid else []), *escaped.get(spec.name, [])]
            usage = tree_usage(*roots) if roots else None
            cpu.add_metric(key, self._cpu_counter(spec.name, usage.cpu_seconds if usage else 0.0))
            rss.add_metric(key, usage.rss_bytes if usage else 0.0)
            for probe in _configured_probes(driver):
                success.add_metric([*key, probe], counters.probe_success.get(probe, 0.0))
                failures.add_metric([*key, probe], counters.probe_failures[probe])
                histogram = counters.probe_durations[probe]
                durations.add_metric([*key, probe], histogram.buckets(), histogram.sum)
        yield from (
            up,
            state,
            restarts,
            backoffs,
            delay,
            flapping,
            started,
            exit_code,
            cpu,
            rss,
            success,
            failures,
            durations,
        )

        notifications = CounterMetricFamily(
            "sentinel_notifications", "Notifications, by result.", labels=["result"]
        )
        for result, count in self.notifications.items():
            notifications.add_metric([result], count)
        yield notifications
        yield GaugeMetricFamily(
            "sentinel_config_last_reload_successful",
            "1 if the last config reload succeeded.",
            value=1.0 if self.last_reload_ok else 0.0,
        )
        info = GaugeMetricFamily("sentinel_build_info", "sentinel's version.", labels=["version"])
        info.add_metric([__version__], 1.0)
        yield info

    def _cpu_counter(self, name: str, live: float) -> float:
        """The tree's CPU as a counter: what exited members (or earlier runs) used stays
        counted, so the series never goes back when a process exits or restarts."""
        with self._cpu_lock:
            total = self._cpu_base[name] + live
            if total < self._cpu_last[name]:
                self._cpu_base[name] += self._cpu_last[name] - total
                total = self._cpu_last[name]
            self._cpu_last[name] = total
            return total


def _configured_probes(driver: ProcessDriver) -> list[str]:
    s = driver.spec.settings
    return [
        kind
        for kind, probe in (
            ("liveness", s.liveness),
            ("readiness", s.readiness),
            ("startup", s.startup),
        )
        if probe is not None
    ]


def make_registry(collector: SentinelCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry
