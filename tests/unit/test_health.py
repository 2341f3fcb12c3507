"""Probe results -> verdicts, with Kubernetes semantics."""

from __future__ import annotations

import pytest

from sentinel.health import HealthTracker, ProbeKind, Verdict
from sentinel.model import Probe
from sentinel.states import Health, ProbeResult

LIVE, READY, START = ProbeKind.LIVENESS, ProbeKind.READINESS, ProbeKind.STARTUP
OK, FAIL = ProbeResult(True, 0.01, "ok"), ProbeResult(False, 0.01, "HTTP 503")


def probe(failures: int = 3, successes: int = 1) -> Probe:
    return Probe.model_validate(
        {"tcp": {"port": 1}, "failure_threshold": failures, "success_threshold": successes}
    )


@pytest.mark.parametrize(
    ("results", "verdicts", "health"),
    [
        ([OK], [Verdict.HEALTHY], Health.HEALTHY),
        ([FAIL, FAIL], [None, None], Health.UNKNOWN),
        ([FAIL, FAIL, FAIL], [None, None, Verdict.UNHEALTHY], Health.UNHEALTHY),
        ([FAIL, FAIL, OK, FAIL, FAIL], [None, None, Verdict.HEALTHY, None, None], Health.HEALTHY),
        (
            [OK, OK, FAIL, FAIL, FAIL, FAIL],
            [Verdict.HEALTHY, None, None, None, Verdict.UNHEALTHY, None],
            Health.UNHEALTHY,
        ),
    ],
)
def test_liveness_thresholds(
    results: list[ProbeResult], verdicts: list[Verdict | None], health: Health
) -> None:
    """failure_threshold failures in a row make it unhealthy; a success in between resets the count."""
    tracker = HealthTracker({LIVE: probe()})
    assert [tracker.record(LIVE, r) for r in results] == verdicts
    assert tracker.health is health


def test_success_threshold() -> None:
    """success_threshold successes in a row are needed to become ready."""
    tracker = HealthTracker({READY: probe(failures=1, successes=2)})
    assert [tracker.record(READY, r) for r in (OK, FAIL, OK, OK, OK)] == [
        None,
        None,
        None,
        Verdict.READY,
        None,
    ]
    assert tracker.ready


def test_readiness_goes_back_and_forth_without_health() -> None:
    """Readiness only moves `ready`; health stays unknown."""
    tracker = HealthTracker({READY: probe(failures=1)})
    assert not tracker.ready
    assert tracker.record(READY, OK) is Verdict.READY
    assert tracker.record(READY, FAIL) is Verdict.NOT_READY
    assert (tracker.ready, tracker.health) == (False, Health.UNKNOWN)


def test_startup_holds_the_others_off() -> None:
    """Until startup passes, liveness results are ignored; then startup itself is inactive."""
    tracker = HealthTracker({START: probe(failures=5), LIVE: probe(failures=1)})
    assert (tracker.active(START), tracker.active(LIVE)) == (True, False)
    assert tracker.record(LIVE, FAIL) is None
    assert tracker.record(START, FAIL) is None
    assert tracker.record(START, OK) is Verdict.STARTED
    assert (tracker.active(START), tracker.active(LIVE)) == (False, True)
    assert tracker.record(LIVE, FAIL) is Verdict.UNHEALTHY


def test_startup_failing_is_unhealthy() -> None:
    """A startup probe that fails failure_threshold times restarts, as in Kubernetes."""
    tracker = HealthTracker({START: probe(failures=2)})
    assert [tracker.record(START, FAIL) for _ in range(2)] == [None, Verdict.UNHEALTHY]


def test_last_result_is_kept_for_status() -> None:
    """The last result of each probe is kept, even one that did not count."""
    tracker = HealthTracker({START: probe(), LIVE: probe()})
    tracker.record(LIVE, FAIL)
    assert tracker.last[LIVE] is FAIL
