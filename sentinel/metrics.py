"""Prometheus metrics: a collector that reads state at scrape time, plus counters and a
histogram fed from the event bus (the names are DESIGN.md's).

Every configured process has its series from start-up (zeros, not absent), and a process
removed by a reload loses its series at the next scrape: everything is produced from the
current set of drivers. No `_created` series are exposed.
"""

from __future__ import annotations

import bisect
import functools
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString as _untyped_go_float

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
from sentinel.proctree import ProcessTable
from sentinel.states import ProcessState, RestartReason

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# How prometheus-client writes a value (Go's float syntax: 1e+06, +Inf), through a typed name.
_go_float: Callable[[float], str] = _untyped_go_float
NOTIFICATION_RESULTS = ("sent", "failed", "suppressed")
_LABEL_NAMES = ("program", "group", "probe")


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True)
class Labels:
    """A set of labels, rendered once and shared by every sample that carries it."""

    pairs: tuple[tuple[str, str], ...]
    text: str  # 'program="web",group="web"': no braces, joinable with another Labels

    @staticmethod
    def of(*pairs: tuple[str, str]) -> Labels:
        return Labels(pairs, ",".join(f'{k}="{_escape(v)}"' for k, v in pairs))


NO_LABELS = Labels((), "")
Sample = tuple[str, Labels, Labels, float]  # suffix, the process's labels, one more label, value


@functools.cache
def _extra(name: str, value: str) -> Labels:
    return Labels(((name, value),), f',{name}="{_escape(value)}"')


_STATE_LABELS = [(s, _extra("state", s.name)) for s in ProcessState]
_REASON_LABELS = {r: _extra("reason", r.value) for r in RestartReason}
_LE_LABELS = [*(_extra("le", _go_float(b)) for b in PROBE_BUCKETS), _extra("le", "+Inf")]


@dataclass
class Family:
    """One metric family as data: rendered by `_render`, or turned into prometheus-client's."""

    name: str  # without the _total of a counter
    kind: str  # gauge | counter | histogram
    help: str
    samples: list[Sample] = field(default_factory=list)

    def add(
        self, labels: Labels, value: float, extra: Labels = NO_LABELS, suffix: str = ""
    ) -> None:
        if self.kind == "counter":
            suffix = "_total"
        self.samples.append((suffix, labels, extra, value))


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

    def add_to(self, family: Family, labels: Labels) -> None:
        cumulative, add = 0, family.add
        for le, count in zip(_LE_LABELS, self.counts, strict=False):
            cumulative += count
            add(labels, cumulative, le, "_bucket")
        add(labels, self.total, _LE_LABELS[-1], "_bucket")
        family.add(labels, self.total, suffix="_count")
        family.add(labels, self.sum, suffix="_sum")


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
        self._label_cache: dict[tuple[str, ...], Labels] = {}
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
        """The prometheus-client view of the same families `render` writes."""
        for family in self.families():
            metric = Metric(family.name, family.help, family.kind)
            for suffix, labels, extra, value in family.samples:
                metric.add_sample(family.name + suffix, dict(labels.pairs + extra.pairs), value)
            yield metric

    def render(self) -> bytes:
        """The text exposition format: the samples prometheus-client's generate_latest writes
        (a test holds them equal), several times faster. With 1000 processes there are some
        40 000 samples, and generate_latest escapes and sorts every label of each one anew;
        here a process's labels are rendered once per scrape."""
        return _render(self.families())

    def families(self) -> list[Family]:
        drivers = list(self._drivers())
        escaped = self._escaped()
        table = ProcessTable()
        up = Family("sentinel_program_up", "gauge", "1 when the process is RUNNING.")
        state = Family(
            "sentinel_program_state", "gauge", "1 for the current state, 0 for the others."
        )
        restarts = Family("sentinel_program_restarts", "counter", "Restarts, by reason.")
        backoffs = Family("sentinel_program_backoffs", "counter", "Entries into BACKOFF.")
        delay = Family(
            "sentinel_program_backoff_delay_seconds", "gauge", "The backoff delay now pending."
        )
        flapping = Family("sentinel_program_flapping", "gauge", "1 while the process is flapping.")
        started = Family(
            "sentinel_program_start_time_seconds", "gauge", "Unix time of the current start."
        )
        exit_code = Family(
            "sentinel_program_last_exit_code",
            "gauge",
            "Last exit status; negative: killed by that signal.",
        )
        cpu = Family("sentinel_program_cpu_seconds", "counter", "CPU of the process tree.")
        rss = Family("sentinel_program_resident_memory_bytes", "gauge", "RSS of the process tree.")
        success = Family("sentinel_probe_success", "gauge", "1 if the last probe passed.")
        failures = Family("sentinel_probe_failures", "counter", "Failed probes.")
        durations = Family("sentinel_probe_duration_seconds", "histogram", "Probe duration.")
        for driver in drivers:
            spec, machine = driver.spec, driver.machine
            key = self._labels(spec.name, spec.group)
            counters = self._counters[spec.name]
            current = machine.state
            up.add(key, 1.0 if current is ProcessState.RUNNING else 0.0)
            for s, labels in _STATE_LABELS:
                state.add(key, 1.0 if current is s else 0.0, labels)
            for reason, count in counters.restarts.items():
                restarts.add(key, count, _REASON_LABELS[reason])
            backoffs.add(key, counters.backoffs)
            delay.add(key, machine.backoff_delay)
            flapping.add(key, 1.0 if machine.flapping else 0.0)
            started.add(key, driver.started_at or 0.0)
            exit_code.add(key, machine.last_exit_code or 0)
            roots = [*([machine.pid] if machine.pid else []), *escaped.get(spec.name, [])]
            usage = table.tree_usage(*roots)
            cpu.add(key, self._cpu_counter(spec.name, usage.cpu_seconds))
            rss.add(key, usage.rss_bytes)
            for probe in _configured_probes(driver):
                probe_key = self._labels(spec.name, spec.group, probe)
                success.add(probe_key, counters.probe_success.get(probe, 0.0))
                failures.add(probe_key, counters.probe_failures[probe])
                counters.probe_durations[probe].add_to(durations, probe_key)
        notifications = Family("sentinel_notifications", "counter", "Notifications, by result.")
        for result, count in self.notifications.items():
            notifications.add(NO_LABELS, count, _extra("result", result))
        reload_ok = Family(
            "sentinel_config_last_reload_successful",
            "gauge",
            "1 if the last config reload succeeded.",
        )
        reload_ok.add(NO_LABELS, 1.0 if self.last_reload_ok else 0.0)
        info = Family("sentinel_build_info", "gauge", "sentinel's version.")
        info.add(NO_LABELS, 1.0, _extra("version", __version__))
        return [
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
            notifications,
            reload_ok,
            info,
        ]

    def _labels(self, *values: str) -> Labels:
        """program, group (and probe) labels, rendered once per process and kept."""
        labels = self._label_cache.get(values)
        if labels is None:
            labels = self._label_cache[values] = Labels.of(*zip(_LABEL_NAMES, values, strict=False))
        return labels

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


def _render(families: list[Family]) -> bytes:
    out: list[str] = []
    for family in families:
        name = family.name + ("_total" if family.kind == "counter" else "")
        help_text = family.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {family.kind}\n")
        for suffix, labels, extra, value in family.samples:
            text = _value(value)
            if labels.text:
                out.append(f"{family.name}{suffix}{{{labels.text}{extra.text}}} {text}\n")
            elif extra.text:
                out.append(f"{family.name}{suffix}{{{extra.text[1:]}}} {text}\n")
            else:
                out.append(f"{family.name}{suffix} {text}\n")
    return "".join(out).encode()


def _value(value: float) -> str:
    if value == 0:
        return "0.0"
    if value == 1:
        return "1.0"
    return _go_float(value)
