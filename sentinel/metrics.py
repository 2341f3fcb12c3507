"""Prometheus metrics: process snapshots, plus counters and a histogram fed from the event
bus (the names are DESIGN.md's).

A scrape happens in two steps. On the event loop, `sample()` takes what the loop owns: the
process snapshots and a copy of the counters, as frozen data. Off the loop, `render(sample)`
reads the process trees' CPU and memory from /proc and writes the exposition text. Nothing
the loop changes is read from another thread.

Every configured process has its series from start-up (zeros, not absent), and a process
removed by a reload loses its series at the next scrape: everything is produced from the
current set of snapshots. No `_created` series are exposed.
"""

from __future__ import annotations

import bisect
import itertools
import math
import threading
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import ProcessCollector, generate_latest
from prometheus_client.core import Metric
from prometheus_client.registry import Collector, CollectorRegistry

from sentinel import __version__
from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    Event,
    NotificationResult,
    ProbeResultEvent,
    Restart,
    RollingRestart,
)
from sentinel.proctree import ProcessTable
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState, RestartReason

PROBE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NOTIFICATION_RESULTS = ("sent", "failed", "suppressed")


CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text exposition format


def go_float(value: float) -> str:
    """A value as Prometheus's text format writes it: Go's float syntax (1e+06, +Inf, NaN),
    which is what prometheus-client writes too (a unit test holds the two equal)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = repr(float(value))
    dot = text.find(".")
    # Go switches to an exponent sooner than Python (from 1e+06 where Python writes 1000000.0).
    if value > 0 and dot > 6:
        mantissa = f"{text[0]}.{text[1:dot]}{text[dot + 1 :]}".rstrip("0.")
        return f"{mantissa}e+{dot - 1:02d}"
    return text


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


@dataclass(frozen=True)
class Definition:
    """A metric family's name (without a counter's _total), type and help."""

    name: str
    kind: str  # gauge | counter | histogram
    help: str

    def series(self, labels: tuple[tuple[str, str], ...], suffix: str = "") -> Series:
        if self.kind == "counter":
            suffix = "_total"
        return Series.of(self.name + suffix, labels)


@dataclass(frozen=True)
class Series:
    """One time series: what prometheus-client needs, and its exposition line up to the value
    (rendered once, then reused by every scrape)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    prefix: str  # 'name{label="value",...} '

    @staticmethod
    def of(name: str, labels: tuple[tuple[str, str], ...]) -> Series:
        if not labels:
            return Series(name, labels, f"{name} ")
        text = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
        return Series(name, labels, f"{name}{{{text}}} ")


UP = Definition("sentinel_program_up", "gauge", "1 when the process is RUNNING.")
STATE = Definition("sentinel_program_state", "gauge", "1 for the current state, 0 for the others.")
RESTARTS = Definition("sentinel_program_restarts", "counter", "Restarts, by reason.")
BACKOFFS = Definition("sentinel_program_backoffs", "counter", "Entries into BACKOFF.")
BACKOFF_DELAY = Definition(
    "sentinel_program_backoff_delay_seconds", "gauge", "The backoff delay now pending."
)
FLAPPING = Definition("sentinel_program_flapping", "gauge", "1 while the process is flapping.")
START_TIME = Definition(
    "sentinel_program_start_time_seconds", "gauge", "Unix time of the current start."
)
EXIT_CODE = Definition(
    "sentinel_program_last_exit_code", "gauge", "Last exit status; negative: killed by that signal."
)
CPU = Definition("sentinel_program_cpu_seconds", "counter", "CPU of the process tree.")
RSS = Definition("sentinel_program_resident_memory_bytes", "gauge", "RSS of the process tree.")
PROBE_SUCCESS = Definition("sentinel_probe_success", "gauge", "1 if the last probe passed.")
PROBE_FAILURES = Definition("sentinel_probe_failures", "counter", "Failed probes.")
PROBE_DURATION = Definition("sentinel_probe_duration_seconds", "histogram", "Probe duration.")
NOTIFICATIONS = Definition("sentinel_notifications", "counter", "Notifications, by result.")
RELOAD_OK = Definition(
    "sentinel_config_last_reload_successful", "gauge", "1 if the last config reload succeeded."
)
BUILD_INFO = Definition("sentinel_build_info", "gauge", "sentinel's version.")
READY = Definition(
    "sentinel_program_ready", "gauge", "1 when RUNNING and ready (readiness probe, READY=1)."
)
WAITING = Definition(
    "sentinel_program_waiting", "gauge", "1 while a start waits for the processes it depends on."
)
ROLL_REMAINING = Definition(
    "sentinel_rolling_restart_remaining",
    "gauge",
    "Instances the running rolling restart of the program has yet to make ready again.",
)
ROLLS = Definition(
    "sentinel_rolling_restarts", "counter", "Rolling restarts of the program, by result."
)
ROLL_STOPPED = Definition(
    "sentinel_rolling_restart_stopped",
    "gauge",
    "1 when the program's last rolling restart stopped at an instance not ready in time.",
)
ROLL_RESULTS = ("completed", "stopped")
# The per-process families, in the order of the exposition.
PROCESS_FAMILIES = (
    UP, STATE, RESTARTS, BACKOFFS, BACKOFF_DELAY, FLAPPING, START_TIME, EXIT_CODE, CPU, RSS,
    READY, WAITING, PROBE_SUCCESS, PROBE_FAILURES, PROBE_DURATION,
)  # fmt: skip
PROGRAM_FAMILIES = (ROLL_REMAINING, ROLLS, ROLL_STOPPED)
_LE = (*(go_float(b) for b in PROBE_BUCKETS), "+Inf")
# sentinel_program_state's values for each current state, in ProcessState order.
_STATE_VALUES = {c: tuple(1.0 if s is c else 0.0 for s in ProcessState) for c in ProcessState}


@dataclass
class Family:
    """One metric family as data: rendered by `_render`, or turned into prometheus-client's.

    Series and values are two parallel lists rather than one list of pairs: 40 000 pairs a
    scrape would be 40 000 objects for the garbage collector to track (and collect).
    """

    definition: Definition
    series: list[Series] = field(default_factory=list)
    values: list[float] = field(default_factory=list)

    def add(self, series: Series, value: float) -> None:
        self.series.append(series)
        self.values.append(value)

    def extend(self, series: Iterable[Series], values: Iterable[float]) -> None:
        self.series.extend(series)
        self.values.extend(values)


class _ProbeSeries:
    """The series of one probe of one process."""

    def __init__(self, labels: tuple[tuple[str, str], ...]) -> None:
        self.success = PROBE_SUCCESS.series(labels)
        self.failures = PROBE_FAILURES.series(labels)
        self.buckets = [PROBE_DURATION.series((*labels, ("le", le)), "_bucket") for le in _LE]
        self.count = PROBE_DURATION.series(labels, "_count")
        self.sum = PROBE_DURATION.series(labels, "_sum")


class _ProcessSeries:
    """Every series of one process, built when it first shows up (or its probes change)."""

    def __init__(self, process: str, program: str, group: str, probes: tuple[str, ...]) -> None:
        # process, program, group, then the rest: a program's processes (its instances) and a
        # group's programs can be summed. All three come from the config.
        labels = (("process", process), ("program", program), ("group", group))
        self.up = UP.series(labels)
        self.state = [STATE.series((*labels, ("state", s.name))) for s in ProcessState]
        self.restarts = [RESTARTS.series((*labels, ("reason", r.value))) for r in RestartReason]
        self.backoffs = BACKOFFS.series(labels)
        self.backoff_delay = BACKOFF_DELAY.series(labels)
        self.flapping = FLAPPING.series(labels)
        self.start_time = START_TIME.series(labels)
        self.exit_code = EXIT_CODE.series(labels)
        self.cpu = CPU.series(labels)
        self.rss = RSS.series(labels)
        self.ready = READY.series(labels)
        self.waiting = WAITING.series(labels)
        self.probes = {p: _ProbeSeries((*labels, ("probe", p))) for p in probes}


class _ProgramSeries:
    """The series of one program (its rolling restarts)."""

    def __init__(self, program: str, group: str) -> None:
        labels = (("program", program), ("group", group))
        self.remaining = ROLL_REMAINING.series(labels)
        self.rolls = [ROLLS.series((*labels, ("result", r))) for r in ROLL_RESULTS]
        self.stopped = ROLL_STOPPED.series(labels)


@dataclass
class _Rolls:
    """What the rolling restarts of one program have done."""

    remaining: int = 0
    results: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLL_RESULTS, 0))
    stopped: bool = False


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

    def frozen(self) -> tuple[tuple[int, ...], int, float]:
        """Cumulative bucket counts, the count and the sum, as the exposition has them."""
        return (*itertools.accumulate(self.counts), self.total), self.total, self.sum


@dataclass
class _ProcessCounters:
    restarts: dict[RestartReason, int] = field(
        default_factory=lambda: dict.fromkeys(RestartReason, 0)
    )
    backoffs: int = 0
    probe_success: dict[str, float] = field(default_factory=dict)
    probe_failures: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    probe_durations: dict[str, _Histogram] = field(default_factory=lambda: defaultdict(_Histogram))


@dataclass(frozen=True, slots=True)
class _ProbeSample:
    series: _ProbeSeries
    success: float
    failures: int
    buckets: tuple[int, ...]  # cumulative, +Inf last
    count: int
    sum: float


@dataclass(frozen=True, slots=True)
class _ProcessSample:
    snapshot: ProcessSnapshot
    series: _ProcessSeries
    restarts: tuple[int, ...]  # in RestartReason order
    backoffs: int
    probes: tuple[_ProbeSample, ...]


@dataclass(frozen=True, slots=True)
class _ProgramSample:
    series: _ProgramSeries
    remaining: int
    results: tuple[int, ...]  # in ROLL_RESULTS order
    stopped: bool


@dataclass(frozen=True)
class Sample:
    """What one scrape shows, taken on the event loop; render it anywhere."""

    processes: tuple[_ProcessSample, ...]
    programs: tuple[_ProgramSample, ...]
    notifications: tuple[tuple[Series, int], ...]
    reload_ok: bool
    # Descendants that outlived their parent, by process name (they still count in its tree).
    # It reads /proc, not the loop's state: call it off the loop.
    escaped: Callable[[], Mapping[str, Iterable[int]]]


class SentinelCollector(Collector):
    def __init__(
        self,
        snapshots: Callable[[], Iterable[ProcessSnapshot]],
        escaped: Callable[[], Callable[[], Mapping[str, Iterable[int]]]] = lambda: dict,
    ) -> None:
        """`snapshots()` gives every configured process as it is now; `escaped()` gives a
        function that finds, without touching the loop's state, the descendants that outlived
        their parent (now children of sentinel, the subreaper), by process name. Both are
        called on the loop."""
        self._snapshots = snapshots
        self._escaped = escaped
        # Every series' exposition text is rendered once and kept while its process lasts.
        self._series: dict[tuple[str, str, str, tuple[str, ...]], _ProcessSeries] = {}
        self._notification_series = {
            r: NOTIFICATIONS.series((("result", r),)) for r in NOTIFICATION_RESULTS
        }
        self._reload_series = RELOAD_OK.series(())
        self._info_series = BUILD_INFO.series((("version", __version__),))
        self._cpu_lock = threading.Lock()  # two scrapes rendering at once must not both move it
        self._cpu_base: dict[str, float] = defaultdict(float)
        self._cpu_last: dict[str, float] = defaultdict(float)
        self._counters: dict[str, _ProcessCounters] = defaultdict(_ProcessCounters)
        self._program_series: dict[tuple[str, str], _ProgramSeries] = {}
        self._rolls: dict[str, _Rolls] = defaultdict(_Rolls)
        self.notifications: dict[str, int] = dict.fromkeys(NOTIFICATION_RESULTS, 0)
        self.last_reload_ok = True
        # sentinel's own CPU, memory and descriptors (process_*), as every exporter has them.
        self._own = CollectorRegistry(auto_describe=False)
        ProcessCollector(registry=self._own)

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
        elif isinstance(event, RollingRestart):
            rolls = self._rolls[event.program]
            if event.phase in ROLL_RESULTS:
                rolls.remaining = 0
                rolls.results[event.phase] += 1
                rolls.stopped = event.phase == "stopped"
            else:
                rolls.remaining = event.total - event.done
        elif isinstance(event, NotificationResult) and event.result in self.notifications:
            self.notifications[event.result] += 1
        elif isinstance(event, ConfigReloaded):
            self.last_reload_ok = event.ok
            for name in event.removed:
                self._counters.pop(name, None)
                with self._cpu_lock:
                    self._cpu_base.pop(name, None)
                    self._cpu_last.pop(name, None)

    def export(self) -> dict[str, Any]:
        """The counters, as JSON-able data, for a re-executed daemon (`restore`): counters
        never go back, not even across an upgrade."""
        return {
            "processes": {
                name: {
                    "restarts": {r.value: n for r, n in c.restarts.items()},
                    "backoffs": c.backoffs,
                    "probe_success": dict(c.probe_success),
                    "probe_failures": dict(c.probe_failures),
                    "probe_durations": {
                        p: [h.counts, h.total, h.sum] for p, h in c.probe_durations.items()
                    },
                }
                for name, c in self._counters.items()
            },
            "notifications": dict(self.notifications),
            "reload_ok": self.last_reload_ok,
            "cpu": [dict(self._cpu_base), dict(self._cpu_last)],
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        for name, c in data["processes"].items():
            counters = self._counters[name]
            for reason, n in c["restarts"].items():
                counters.restarts[RestartReason(reason)] = int(n)
            counters.backoffs = int(c["backoffs"])
            counters.probe_success.update(c["probe_success"])
            counters.probe_failures.update(c["probe_failures"])
            for probe, (counts, total, total_sum) in c["probe_durations"].items():
                counters.probe_durations[probe] = _Histogram(list(counts), total, total_sum)
        self.notifications.update(data["notifications"])
        self.last_reload_ok = bool(data["reload_ok"])
        base, last = data["cpu"]
        self._cpu_base.update(base)
        self._cpu_last.update(last)

    def sample(self) -> Sample:
        """Everything a scrape shows that the loop owns, copied: call on the loop."""
        known, self._series = self._series, {}
        known_programs, self._program_series = self._program_series, {}
        processes = []
        programs = []
        for snapshot in self._snapshots():
            program_key = (snapshot.program, snapshot.group)
            if program_key not in self._program_series:
                program_series = known_programs.get(program_key) or _ProgramSeries(*program_key)
                self._program_series[program_key] = program_series
                rolls = self._rolls[snapshot.program]
                programs.append(
                    _ProgramSample(
                        program_series,
                        rolls.remaining,
                        tuple(rolls.results.values()),
                        rolls.stopped,
                    )
                )
            key = (snapshot.name, snapshot.program, snapshot.group, snapshot.configured_probes)
            series = self._series[key] = known.get(key) or _ProcessSeries(*key)
            counters = self._counters[snapshot.name]
            probes = []
            for probe, probe_series in series.probes.items():
                buckets, count, total = counters.probe_durations[probe].frozen()
                probes.append(
                    _ProbeSample(
                        probe_series,
                        counters.probe_success.get(probe, 0.0),
                        counters.probe_failures[probe],
                        buckets,
                        count,
                        total,
                    )
                )
            processes.append(
                _ProcessSample(
                    snapshot,
                    series,
                    tuple(counters.restarts.values()),
                    counters.backoffs,
                    tuple(probes),
                )
            )
        return Sample(
            processes=tuple(processes),
            programs=tuple(programs),
            notifications=tuple(
                (self._notification_series[r], n) for r, n in self.notifications.items()
            ),
            reload_ok=self.last_reload_ok,
            escaped=self._escaped(),
        )

    def collect(self) -> Iterator[Metric]:
        """The prometheus-client view of the same families `render` writes."""
        for family in self.families(self.sample()):
            d = family.definition
            metric = Metric(d.name, d.help, d.kind)
            for series, value in zip(family.series, family.values, strict=True):
                metric.add_sample(series.name, dict(series.labels), value)
            yield metric

    def render(self, sample: Sample) -> bytes:
        """The text exposition format: the samples prometheus-client's generate_latest writes
        (a test holds them equal), several times faster. With 1000 processes there are some
        40 000 samples, and generate_latest escapes and sorts every label of each one anew;
        here each series' text is rendered once, when its process first shows up. Safe to
        call off the loop."""
        return _render(self.families(sample))

    def render_own(self) -> bytes:
        """sentinel's own process metrics (process_cpu_seconds_total, ...): reads /proc/self,
        safe off the loop."""
        return generate_latest(self._own)

    def families(self, sample: Sample) -> list[Family]:
        escaped = sample.escaped()
        table = ProcessTable()
        process_families = [Family(d) for d in PROCESS_FAMILIES]
        (up, state, restarts, backoffs, delay, flapping, started, exit_code, cpu, rss) = (
            process_families[:10]
        )
        ready, waiting, success, failures, durations = process_families[10:]
        for process in sample.processes:
            snapshot, series = process.snapshot, process.series
            current = snapshot.state
            up.add(series.up, 1.0 if current is ProcessState.RUNNING else 0.0)
            state.extend(series.state, _STATE_VALUES[current])
            restarts.extend(series.restarts, process.restarts)
            backoffs.add(series.backoffs, process.backoffs)
            delay.add(series.backoff_delay, snapshot.backoff_delay_seconds)
            flapping.add(series.flapping, 1.0 if snapshot.flapping else 0.0)
            started.add(series.start_time, snapshot.start_time or 0.0)
            exit_code.add(series.exit_code, snapshot.exit_code or 0)
            roots = [*([snapshot.pid] if snapshot.pid else []), *escaped.get(snapshot.name, ())]
            usage = table.tree_usage(*roots)
            cpu.add(series.cpu, self._cpu_counter(snapshot.name, usage.cpu_seconds))
            rss.add(series.rss, usage.rss_bytes)
            ready.add(series.ready, 1.0 if snapshot.ready else 0.0)
            waiting.add(series.waiting, 1.0 if snapshot.waiting_for else 0.0)
            for probe in process.probes:
                success.add(probe.series.success, probe.success)
                failures.add(probe.series.failures, probe.failures)
                durations.extend(probe.series.buckets, probe.buckets)
                durations.add(probe.series.count, probe.count)
                durations.add(probe.series.sum, probe.sum)
        remaining, rolls, stopped = (Family(d) for d in PROGRAM_FAMILIES)
        for program in sample.programs:
            remaining.add(program.series.remaining, program.remaining)
            rolls.extend(program.series.rolls, program.results)
            stopped.add(program.series.stopped, 1.0 if program.stopped else 0.0)
        notifications = Family(NOTIFICATIONS)
        for series_, count in sample.notifications:
            notifications.add(series_, count)
        reload_ok = Family(RELOAD_OK)
        reload_ok.add(self._reload_series, 1.0 if sample.reload_ok else 0.0)
        info = Family(BUILD_INFO)
        info.add(self._info_series, 1.0)
        return [*process_families, remaining, rolls, stopped, notifications, reload_ok, info]

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


def make_registry(collector: SentinelCollector) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)
    return registry


def _render(families: list[Family]) -> bytes:
    out: list[str] = []
    for family in families:
        d = family.definition
        name = d.name + ("_total" if d.kind == "counter" else "")
        help_text = d.help.replace("\\", r"\\").replace("\n", r"\n")
        out.append(f"# HELP {name} {help_text}\n# TYPE {name} {d.kind}\n")
        for series, value in zip(family.series, family.values, strict=True):
            out.append(series.prefix)
            out.append(_value(value))
    return "".join(out).encode()


def _value(value: float) -> str:
    """The value and the line's end, as prometheus-client writes it (Go's float syntax)."""
    if value == 1:
        return "1.0\n"
    if value == 0 and math.copysign(1.0, value) > 0:  # -0.0 is written "-0.0"
        return "0.0\n"
    if type(value) is int:  # counts: exact, and valid float syntax at any size
        return f"{value}.0\n"
    return go_float(value) + "\n"
