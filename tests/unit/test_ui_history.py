"""What the web UI remembers of each process: bounded rings fed by events."""

from __future__ import annotations

from sentinel.api.ui.history import (
    EVENTS_KEPT,
    FAIL,
    PASS,
    PROBE_POINTS,
    RATE_BUCKET,
    RATE_BUCKETS,
    WARN,
    Recorder,
    Ring,
)
from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    ProbeResultEvent,
    Restart,
    StateChanged,
)
from sentinel.states import ProcessState, RestartReason

T0 = 1_800_000_000.0  # a multiple of RATE_BUCKET


def test_a_ring_keeps_the_last_rows_in_order() -> None:
    """Oldest first; past its size, the oldest go."""
    ring = Ring(3, "dfb")
    assert ring.rows() == [] and len(ring) == 0
    for i in range(5):
        ring.append(float(i), i / 2, i % 2)
    assert ring.rows() == [[2.0, 1.0, 0], [3.0, 1.5, 1], [4.0, 2.0, 0]]
    assert len(ring) == 3


def probe(t: float, ok: bool, warning: bool = False) -> ProbeResultEvent:
    return ProbeResultEvent(
        timestamp=t, process="web", group="web", probe="liveness", ok=ok,
        latency=0.004, detail="HTTP 200", warning=warning,
    )  # fmt: skip


def test_probe_results_are_kept_per_probe_and_bounded() -> None:
    """Pass, warning, fail: the last PROBE_POINTS of each probe."""
    recorder = Recorder()
    for i in range(PROBE_POINTS + 10):
        recorder.on_event(probe(T0 + i, ok=i % 3 != 0, warning=i % 3 == 2))
    history = recorder.of("web")
    assert history is not None
    rows = history.probes["liveness"].rows()
    assert (
        len(rows) == PROBE_POINTS and rows[0][0] == T0 + 10 and rows[-1][0] == T0 + PROBE_POINTS + 9
    )
    assert [r[2] for r in rows[:3]] == [PASS, WARN, FAIL]  # results 10, 11 and 12
    assert abs(rows[0][1] - 0.004) < 1e-6
    assert len(history.events) == 0  # probe results are not listed as events


def test_restarts_states_and_backoffs_are_remembered() -> None:
    """The last restart with its reason, when the state began, when the backoff ends."""
    recorder = Recorder()
    recorder.on_event(
        StateChanged(timestamp=T0, process="web", group="web", old=ProcessState.RUNNING,
                     new=ProcessState.BACKOFF, pid=None, reason="exited with 1", exit_code=1)
    )  # fmt: skip
    recorder.on_event(
        Restart(timestamp=T0 + 1, process="web", group="web", reason=RestartReason.LIVENESS,
                exit_code=None, detail="HTTP 503", restarts=1)
    )  # fmt: skip
    recorder.on_event(
        BackoffStarted(timestamp=T0 + 2, process="web", group="web", attempt=2, delay=4.0)
    )
    history = recorder.of("web")
    assert history is not None
    assert history.state_since == T0 and history.backoff_until == T0 + 6
    assert list(history.restarts) == [(T0 + 1, "liveness", None, "HTTP 503")]
    assert [e[1] for e in history.events] == ["state_changed", "restart", "backoff"]
    assert history.events[1][2] == "restart #1 (liveness): HTTP 503"


def test_events_are_bounded_and_go_with_their_process() -> None:
    """A crash loop keeps EVENTS_KEPT events; a reload that removes the process drops them."""
    recorder = Recorder()
    for i in range(EVENTS_KEPT * 3):
        recorder.on_event(
            Restart(timestamp=T0 + i, process="web", group="web", reason=RestartReason.EXITED,
                    exit_code=1, detail="exited with 1", restarts=i + 1)
        )  # fmt: skip
    history = recorder.of("web")
    assert history is not None and len(history.events) == EVENTS_KEPT
    recorder.on_event(ConfigReloaded(ok=True, removed=("web",)))
    assert recorder.of("web") is None


def test_the_restart_rate_counts_per_bucket() -> None:
    """Restarts per RATE_BUCKET seconds, RATE_BUCKETS of them, the current one last."""
    recorder = Recorder()
    for t in (T0, T0 + 1, T0 + RATE_BUCKET * 2):
        recorder.on_event(
            Restart(timestamp=t, process="web", group="web", reason=RestartReason.EXITED,
                    exit_code=1, detail="", restarts=1)
        )  # fmt: skip
    rate = recorder.restart_rate(T0 + RATE_BUCKET * 2)
    assert len(rate) == RATE_BUCKETS and sum(rate) == 3
    assert rate[-1] == 1 and rate[-3] == 2  # T0 starts a bucket
    assert sum(recorder.restart_rate(T0 + RATE_BUCKET * (RATE_BUCKETS + 5))) == 0


def test_cpu_and_memory_samples_are_kept() -> None:
    """(time, CPU seconds, resident bytes) per process, each sample a new version."""
    recorder = Recorder()
    recorder.record_usage(T0, {"web": (1.5, 1024.0)})
    recorder.record_usage(T0 + 5, {"web": (2.0, 2048.0)})
    history = recorder.of("web")
    assert history is not None and history.usage is not None
    assert history.usage.rows() == [[T0, 1.5, 1024.0], [T0 + 5, 2.0, 2048.0]]
    assert history.version == 2
