"""The state machine's waits for dependencies and its sd_notify inputs, with a fake clock."""

from __future__ import annotations

import pytest

from sentinel.events import Notified, Restart, StateChanged, Waiting
from sentinel.machine import (
    TRANSITIONS,
    CancelTimer,
    Dependencies,
    Exited,
    Follow,
    Notify,
    ProcessMachine,
    Publish,
    SendSignal,
    SetTimer,
    Spawn,
    Spawned,
    Start,
    Stop,
    TimerFired,
    TimerKind,
)
from sentinel.model import Program
from sentinel.states import ProcessState as S
from sentinel.states import RestartReason

BACKOFF = {"initial": 1, "max": 8, "multiplier": 2, "jitter": 0, "reset_after": 60}
HELD = Dependencies(False, ("db",), "waiting for db: not ready")


def machine(**settings: object) -> ProcessMachine:
    settings.setdefault("backoff", BACKOFF)
    return ProcessMachine("api", "api", Program(command=["x"], **settings), rng=lambda: 0.5)


def said(**fields: object) -> Notify:
    return Notify(Notified(process="api", group="api", sender=100, **fields))  # type: ignore[arg-type]


def published(actions: list[object], kind: type) -> list[object]:
    return [a.event for a in actions if isinstance(a, Publish) and isinstance(a.event, kind)]


def test_a_held_start_waits_stopped_then_spawns_when_released() -> None:
    """While dependencies are not ready a start is held (STOPPED, waiting, with the reason);
    it spawns when they are."""
    m = machine(start_seconds=0)
    m.step(HELD, 0)
    actions = m.step(Start(), 0)
    assert Spawn() not in actions
    assert (m.state, m.waiting, m.waiting_for, m.detail) == (
        S.STOPPED,
        True,
        ("db",),
        "waiting for db: not ready",
    )
    assert published(actions, Waiting)
    changed = m.step(Dependencies(False, ("db",), "waiting for db: FATAL"), 1)
    assert [e.detail for e in published(changed, Waiting)] == ["waiting for db: FATAL"]
    actions = m.step(Dependencies(True), 2)
    assert Spawn() in actions and m.state is S.STARTING and not m.waiting


def test_a_stop_cancels_a_held_start() -> None:
    """A stop drops the held start: releasing the dependencies then starts nothing."""
    m = machine()
    m.step(HELD, 0)
    m.step(Start(), 0)
    m.step(Stop(), 1)
    assert (m.state, m.waiting) == (S.STOPPED, False)
    assert Spawn() not in m.step(Dependencies(True), 2)


def test_a_crash_while_held_waits_instead_of_crash_looping() -> None:
    """A running dependent that exits while its dependency is down waits for it (no spawn,
    no backoff series), and restarts (reason exited) once the dependency is back."""
    m = machine(start_seconds=0)
    m.step(Start(), 0)
    m.step(Spawned(10), 0)
    m.step(HELD, 5)  # a running process is left alone
    assert m.state is S.RUNNING
    actions = m.step(Exited(1), 10)
    assert Spawn() not in actions
    assert (m.state, m.waiting) == (S.STOPPED, True)
    actions = m.step(Dependencies(True), 20)
    assert Spawn() in actions
    assert [e.reason for e in published(actions, Restart)] == [RestartReason.EXITED]


def test_a_backoff_that_ends_while_held_waits() -> None:
    """The backoff delay ends while the dependencies are down: STOPPED, waiting."""
    m = machine(start_seconds=1)
    m.step(Start(), 0)
    m.step(Spawned(10), 0)
    m.step(Exited(1), 0.5)  # a failed start: BACKOFF
    assert m.state is S.BACKOFF
    m.step(HELD, 0.6)
    m.step(TimerFired(TimerKind.BACKOFF), 1.5)
    assert (m.state, m.waiting) == (S.STOPPED, True)


def test_ready_over_notify_makes_it_running_and_ready() -> None:
    """With start_seconds = "notify", READY=1 makes it RUNNING; without READY=1 in
    start_timeout, it is stopped and that is a failed start."""
    m = machine(notify=True, start_seconds="notify", start_timeout=5)
    m.step(Start(), 0)
    actions = m.step(Spawned(10), 0)
    assert SetTimer(TimerKind.START_TIMEOUT, 5.0) in actions
    assert m.state is S.STARTING and not m.notify_ready
    actions = m.step(said(ready=True, status="serving"), 2)
    assert (m.state, m.notify_ready, m.notify_status) == (S.RUNNING, True, "serving")
    assert CancelTimer(TimerKind.START_TIMEOUT) in actions

    slow = machine(notify=True, start_seconds="notify", start_timeout=5)
    slow.step(Start(), 0)
    slow.step(Spawned(10), 0)
    actions = slow.step(TimerFired(TimerKind.START_TIMEOUT), 5)
    assert slow.state is S.STOPPING and any(isinstance(a, SendSignal) for a in actions)
    slow.step(Exited(-15), 5.1)
    assert slow.state is S.BACKOFF
    assert slow.detail.startswith("no READY=1 within 5s")


def test_reloading_and_stopping_clear_ready() -> None:
    """RELOADING=1 and STOPPING=1 take readiness away until the next READY=1."""
    m = machine(notify=True, start_seconds=0)
    m.step(Start(), 0)
    m.step(Spawned(10), 0)
    m.step(said(ready=True), 1)
    m.step(said(reloading=True), 2)
    assert (m.notify_ready, m.notify_phase) == (False, "reloading")
    m.step(said(ready=True), 3)
    assert (m.notify_ready, m.notify_phase) == (True, "")
    m.step(said(stopping=True), 4)
    assert (m.notify_ready, m.notify_phase) == (False, "stopping")


def test_a_missed_watchdog_restarts_through_the_backoff() -> None:
    """The watchdog is armed at the spawn and re-armed by each WATCHDOG=1; when it fires the
    process is stopped and restarted with reason watchdog."""
    m = machine(notify=True, start_seconds=0, watchdog=2)
    m.step(Start(), 0)
    assert SetTimer(TimerKind.WATCHDOG, 2.0) in m.step(Spawned(10), 0)
    assert SetTimer(TimerKind.WATCHDOG, 2.0) in m.step(said(watchdog=True), 1)
    actions = m.step(TimerFired(TimerKind.WATCHDOG), 3)
    assert m.state is S.STOPPING and CancelTimer(TimerKind.WATCHDOG) in actions
    changes = published(actions, StateChanged)
    assert changes[0].reason == "watchdog restart: stopping"  # type: ignore[attr-defined]
    actions = m.step(Exited(-15), 3.1)
    assert m.state is S.STARTING  # the first restart after a run is at once
    restart = published(actions, Restart)[0]
    assert (restart.reason, restart.detail) == (  # type: ignore[attr-defined]
        RestartReason.WATCHDOG,
        "no WATCHDOG=1 within 2s",
    )


def test_watchdog_trigger_and_mainpid() -> None:
    """WATCHDOG=trigger restarts at once; MAINPID= makes another pid the main process."""
    m = machine(notify=True, start_seconds=0)
    m.step(Start(), 0)
    m.step(Spawned(10), 0)
    assert Follow(42) in m.step(said(mainpid=42, ready=True), 1)
    assert m.pid == 42
    m.step(said(watchdog_trigger=True), 2)
    assert m.state is S.STOPPING


def test_notify_is_ignored_when_nothing_runs() -> None:
    """A late datagram (the process has stopped) changes nothing."""
    m = machine(notify=True, start_seconds=0)
    assert m.step(said(ready=True, mainpid=5), 0) == []
    assert (m.state, m.notify_ready, m.pid) == (S.STOPPED, False, None)


@pytest.mark.parametrize("state", list(TRANSITIONS))
def test_every_state_takes_dependencies_and_notify(state: S) -> None:
    """Dependencies and Notify may come in any state: the table has them all."""
    assert Dependencies in TRANSITIONS[state]
    assert Notify in TRANSITIONS[state]
