"""The collector: counting from events, and the fast renderer against prometheus-client's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    NotificationResult,
    ProbeResultEvent,
    Restart,
)
from sentinel.metrics import SentinelCollector, make_registry
from sentinel.model import Program
from sentinel.states import ProcessState, RestartReason


def driver(name: str, state: ProcessState = ProcessState.RUNNING, **settings: Any) -> Any:
    program = Program.model_validate({"command": ["x"], **settings})
    spec = SimpleNamespace(name=name, group="pool", settings=program)
    machine = SimpleNamespace(
        state=state, backoff_delay=1.5, flapping=False, last_exit_code=-9, pid=None
    )
    return SimpleNamespace(spec=spec, machine=machine, started_at=1795600000.25)


def collector() -> SentinelCollector:
    drivers = [
        driver("web", liveness={"tcp": {"port": 1}}),
        driver('we"ird\\one', ProcessState.FATAL),
    ]
    metrics = SentinelCollector(lambda: drivers)
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


def samples(text: bytes) -> list[tuple[str, str, tuple[tuple[str, str], ...], float]]:
    """Every sample of an exposition, with its family's type, in order."""
    return [
        (s.name, f.type, tuple(sorted(s.labels.items())), s.value)
        for f in text_string_to_metric_families(text.decode())
        for s in f.samples
    ]


def test_fast_rendering_is_what_prometheus_client_writes() -> None:
    """render() has exactly the samples, types and order generate_latest writes."""
    metrics = collector()
    ours, theirs = metrics.render(), generate_latest(make_registry(metrics))
    assert samples(ours) == samples(theirs)
    comments = [
        [line for line in text.splitlines() if line.startswith(b"#")] for text in (ours, theirs)
    ]
    assert comments[0] == comments[1]


def test_counts_and_zeros() -> None:
    """Counters move with events; every process has every series, zeros included."""
    text = collector().render().decode()
    web = 'program="web",group="pool"'
    for line in (
        f'sentinel_program_restarts_total{{{web},reason="liveness"}} 1.0',
        f'sentinel_program_restarts_total{{{web},reason="exited"}} 0.0',
        f"sentinel_program_backoffs_total{{{web}}} 1.0",
        f'sentinel_probe_failures_total{{{web},probe="liveness"}} 1.0',
        f'sentinel_probe_duration_seconds_bucket{{{web},probe="liveness",le="0.005"}} 1.0',
        f'sentinel_probe_duration_seconds_count{{{web},probe="liveness"}} 2.0',
        'sentinel_program_state{program="we\\"ird\\\\one",group="pool",state="FATAL"} 1.0',
        'sentinel_notifications_total{result="suppressed"} 1.0',
    ):
        assert line + "\n" in text, line
    assert "_created" not in text


def test_removed_process_forgets_its_counts() -> None:
    """A process removed by a reload starts from zero if it comes back."""
    metrics = collector()
    web = 'sentinel_program_restarts_total{program="web",group="pool",reason="liveness"}'
    assert f"{web} 1.0\n" in metrics.render().decode()
    metrics.on_event(ConfigReloaded(ok=True, removed=("web",)))
    assert f"{web} 0.0\n" in metrics.render().decode()
