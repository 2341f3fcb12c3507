"""The collector: counting from events, and the fast renderer against prometheus-client's."""

from __future__ import annotations

import math
import random

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    NotificationResult,
    ProbeResultEvent,
    Restart,
)
from sentinel.metrics import SentinelCollector, go_float, make_registry
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import Health, ProcessState, RestartReason

HOSTILE = 'we"ird\\one\nline two ✓ {x="y"}'


def snapshot(
    name: str, state: ProcessState = ProcessState.RUNNING, **fields: object
) -> ProcessSnapshot:
    base = ProcessSnapshot(
        name=name,
        program=name,
        group="pool",
        priority=999,
        state=state,
        pid=None,
        exit_code=-9,
        restarts=0,
        uptime_seconds=0.0,
        start_time=1795600000.25,
        health=Health.UNKNOWN,
        ready=False,
        probes=(),
        configured_probes=(),
        backoff_attempt=0,
        backoff_delay_seconds=1.5,
        backoff_remaining_seconds=0.0,
        flapping=False,
        detail="",
    )
    return base._replace(**fields)  # type: ignore[arg-type]


def collector(*extra: ProcessSnapshot) -> SentinelCollector:
    snapshots = [
        snapshot("web", configured_probes=("liveness",)),
        snapshot(HOSTILE, ProcessState.FATAL, program=HOSTILE, group=HOSTILE),
        # Two instances of one program, in a group shared with another program.
        snapshot("worker_0", program="worker", group="jobs"),
        snapshot("worker_1", ProcessState.BACKOFF, program="worker", group="jobs"),
        snapshot("mailer", group="jobs", configured_probes=("readiness",)),
        *extra,
    ]
    metrics = SentinelCollector(lambda: snapshots)
    for event in (
        Restart(
            process="web",
            group="pool",
            reason=RestartReason.LIVENESS,
            exit_code=-15,
            detail="",
            restarts=1,
        ),
        BackoffStarted(process="web", group="pool", attempt=1, delay=1.5),
        ProbeResultEvent(
            process="web", group="pool", probe="liveness", ok=False, latency=0.003, detail="x"
        ),
        ProbeResultEvent(
            process="web", group="pool", probe="liveness", ok=True, latency=12.0, detail="x"
        ),
        NotificationResult(result="suppressed", target="", title="t"),
    ):
        metrics.on_event(event)
    return metrics


def samples(text: bytes) -> list[tuple[str, str, tuple[tuple[str, str], ...], str]]:
    """Every sample of an exposition, with its family's type, in order, each value as it is
    written (NaN is not equal to itself as a float, and "1e+06" is not "1000000.0")."""
    lines = text.decode().splitlines()
    values = [line.rsplit(" ", 1)[1] for line in lines if not line.startswith("#")]
    parsed = [
        (s.name, f.type, tuple(sorted(s.labels.items())))
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    ]
    assert len(parsed) == len(values)
    return [(*p, v) for p, v in zip(parsed, values, strict=True)]


def render(metrics: SentinelCollector) -> bytes:
    return metrics.render(metrics.sample())


def test_fast_rendering_is_what_prometheus_client_writes() -> None:
    """render() writes the samples generate_latest writes for the same families: hostile
    label values (quotes, backslashes, newlines, braces, non-ASCII), NaN, +Inf, -Inf, -0.0
    and large values included."""
    metrics = collector(
        snapshot(
            "odd",
            backoff_delay_seconds=math.inf,
            start_time=math.nan,
            exit_code=-(2**40),
            configured_probes=("readiness",),
        ),
        snapshot("neg", backoff_delay_seconds=-math.inf, start_time=-0.0),
        snapshot("big", backoff_delay_seconds=1e22, start_time=123456789.123),
    )
    for latency in (math.inf, math.nan, 1e-9):
        metrics.on_event(
            ProbeResultEvent(
                process="odd", group="pool", probe="readiness", ok=True, latency=latency, detail=""
            )
        )
    ours, theirs = render(metrics), generate_latest(make_registry(metrics))
    # Label order differs (ours: process, program, group, then the rest; theirs: sorted),
    # which the format allows; everything else is the same, comments included. CPU and memory are
    # read from /proc at render time: zeros for these pid-less processes.
    assert samples(ours) == samples(theirs)
    comments = [
        [line for line in text.splitlines() if line.startswith(b"#")] for text in (ours, theirs)
    ]
    assert comments[0] == comments[1]


def test_counts_and_zeros() -> None:
    """Counters move with events; every process has every series, zeros included."""
    text = render(collector()).decode()
    web = 'process="web",program="web",group="pool"'
    for line in (
        f'sentinel_program_restarts_total{{{web},reason="liveness"}} 1.0',
        f'sentinel_program_restarts_total{{{web},reason="exited"}} 0.0',
        f"sentinel_program_backoffs_total{{{web}}} 1.0",
        f'sentinel_probe_failures_total{{{web},probe="liveness"}} 1.0',
        f'sentinel_probe_duration_seconds_bucket{{{web},probe="liveness",le="0.005"}} 1.0',
        f'sentinel_probe_duration_seconds_count{{{web},probe="liveness"}} 2.0',
        'sentinel_program_state{process="we\\"ird\\\\one\\nline two ✓ {x=\\"y\\"}",'
        'program="we\\"ird\\\\one\\nline two ✓ {x=\\"y\\"}",'
        'group="we\\"ird\\\\one\\nline two ✓ {x=\\"y\\"}",state="FATAL"} 1.0',
        'sentinel_notifications_total{result="suppressed"} 1.0',
    ):
        assert line + "\n" in text, line
    assert "_created" not in text
    parsed = samples(text.encode())  # and Prometheus's own parser reads it back
    assert (
        "sentinel_program_up",
        "gauge",
        (("group", "pool"), ("process", "web"), ("program", "web")),
        "1.0",
    ) in parsed


def test_every_process_series_names_its_process_program_and_group_first() -> None:
    """Each per-process series starts with process, program and group, in that order, from
    the snapshot: instances share their program, programs share their group."""
    text = render(collector()).decode()
    per_process = [
        line
        for line in text.splitlines()
        if line.startswith(("sentinel_program_", "sentinel_probe_"))
    ]
    expected = {
        "web": 'process="web",program="web",group="pool"',
        "worker_0": 'process="worker_0",program="worker",group="jobs"',
        "worker_1": 'process="worker_1",program="worker",group="jobs"',
        "mailer": 'process="mailer",program="mailer",group="jobs"',
    }
    for process, labels in expected.items():
        lines = [line for line in per_process if f'{{process="{process}",' in line]
        # up, 8 states, 4 restart reasons, backoffs, delay, flapping, start, exit code, cpu, rss
        assert len(lines) >= 19, process
        for line in lines:
            rest = line.split("{", 1)[1]
            assert rest.startswith((labels + ",", labels + "}")), line
    assert all(line.split("{", 1)[1].startswith('process="') for line in per_process)
    parsed = samples(text.encode())
    worker_up = sorted(
        dict(labels)["process"]
        for name, _, labels, _ in parsed
        if name == "sentinel_program_up" and dict(labels)["program"] == "worker"
    )
    assert worker_up == ["worker_0", "worker_1"]


def test_a_sample_is_frozen_at_the_moment_it_is_taken() -> None:
    """What the loop changes after sample() does not reach a render of that sample (the
    render runs on another thread)."""
    metrics = collector()
    before = metrics.sample()
    metrics.on_event(
        Restart(
            process="web",
            group="pool",
            reason=RestartReason.EXITED,
            exit_code=1,
            detail="",
            restarts=2,
        )
    )
    exited = (
        'sentinel_program_restarts_total{process="web",program="web",group="pool",reason="exited"}'
    )
    assert f"{exited} 0.0\n" in metrics.render(before).decode()
    assert f"{exited} 1.0\n" in render(metrics).decode()


def test_removed_process_forgets_its_counts() -> None:
    """A process removed by a reload starts from zero if it comes back."""
    metrics = collector()
    web = 'sentinel_program_restarts_total{process="web",program="web",group="pool",reason="liveness"}'
    assert f"{web} 1.0\n" in render(metrics).decode()
    metrics.on_event(ConfigReloaded(ok=True, removed=("web",)))
    assert f"{web} 0.0\n" in render(metrics).decode()


@pytest.mark.parametrize(
    "value",
    [
        0.0, -0.0, 1.0, -1.0, 0.5, 1e-9, 123456.0, 1234567.0, 1e6, 1e21, 1e22, 2.5e300,
        -1234567.0, 1 / 3, 2**53 + 0.0, math.inf, -math.inf, math.nan, 5e-324,
    ],
)  # fmt: skip
def test_go_float_is_prometheus_clients(value: float) -> None:
    """Values are written as prometheus-client writes them (Go's float syntax)."""
    assert go_float(value) == floatToGoString(value)


def test_go_float_on_random_values() -> None:
    """The same on a spread of magnitudes and signs."""
    rng = random.Random(7)
    for _ in range(20000):
        value = rng.choice((-1, 1)) * rng.random() * 10 ** rng.randint(-30, 30)
        assert go_float(value) == floatToGoString(value), value
