"""The pure state machine, driven input by input with a fake clock."""

from __future__ import annotations

import signal

import pytest

from sentinel.errors import IllegalTransition
from sentinel.events import BackoffStarted, Fatal, Recovered, Restart, StateChanged
from sentinel.events import Flapping as FlappingEvent
from sentinel.machine import (
    KILL_GRACE,
    MIN_SPAWN_INTERVAL,
    TRANSITIONS,
    CancelTimer,
    Exited,
    GroupGone,
    Kill,
    ProcessMachine,
    Publish,
    RestartRequest,
    SendSignal,
    SetTimer,
    Spawn,
    Spawned,
    SpawnFailed,
    Start,
    Stop,
    TimerFired,
    TimerKind,
)
from sentinel.model import Program
from sentinel.states import ProcessState as S
from sentinel.states import RestartReason

BACKOFF = {"initial": 1, "max": 8, "multiplier": 2, "jitter": 0, "reset_after": 60}


def machine(**settings: object) -> ProcessMachine:
    settings.setdefault("backoff", BACKOFF)
    return ProcessMachine("web", "web", Program(command=["x"], **settings), rng=lambda: 0.5)


def running(m: ProcessMachine, now: float = 0.0, pid: int = 100) -> None:
    m.step(Start(), now)
    m.step(Spawned(pid), now)
    if m.state is S.STARTING:
        m.step(TimerFired(TimerKind.STARTED), now + 1)
    assert m.state is S.RUNNING


def published(actions: list[object], kind: type) -> list[object]:
    return [a.event for a in actions if isinstance(a, Publish) and isinstance(a.event, kind)]


def test_start_spawns_then_running_after_start_seconds() -> None:
    """Start spawns, and start_seconds later the process is RUNNING."""
    m = machine(start_seconds=2)
    actions = m.step(Start(), 0)
    assert Spawn() in actions and m.state is S.STARTING
    assert SetTimer(TimerKind.STARTED, 2.0) in m.step(Spawned(42), 0)
    m.step(TimerFired(TimerKind.STARTED), 2)
    assert (m.state, m.pid) == (S.RUNNING, 42)


def test_start_seconds_zero_is_running_at_spawn() -> None:
    """With start_seconds = 0 a process is RUNNING as soon as it is spawned."""
    m = machine(start_seconds=0)
    m.step(Start(), 0)
    m.step(Spawned(1), 0)
    assert m.state is S.RUNNING


def crash(m: ProcessMachine, now: float, code: int = 1) -> list[object]:
    """Crash a RUNNING process; return what the machine asked for."""
    return m.step(Exited(code), now)


def back_up(m: ProcessMachine, now: float, pid: int = 200) -> None:
    """Take a crashed process through its backoff (if any) to RUNNING again."""
    if m.state is S.BACKOFF:
        m.step(TimerFired(TimerKind.BACKOFF), now)
    m.step(Spawned(pid), now)
    m.step(TimerFired(TimerKind.STARTED), now + 1)
    assert m.state is S.RUNNING


def test_first_crash_restarts_at_once() -> None:
    """A crash after a run is repaired at once, as a `restart` of reason exited, no BACKOFF."""
    m = machine(autorestart="always")
    running(m)
    actions = crash(m, 5)
    assert Spawn() in actions and m.state is S.STARTING
    assert not published(actions, BackoffStarted)
    (restart,) = published(actions, Restart)
    assert (restart.reason, restart.exit_code) == (RestartReason.EXITED, 1)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("attempt", "delay"), [(2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (6, 8.0)])
def test_consecutive_crashes_back_off_exponentially(attempt: int, delay: float) -> None:
    """The n-th consecutive crash waits initial * multiplier**(n-2), capped at max."""
    m = machine(autorestart="always")
    running(m)
    for n in range(1, attempt + 1):
        actions = crash(m, 10.0 * n)
        if n == attempt:
            assert m.state is S.BACKOFF
            assert SetTimer(TimerKind.BACKOFF, delay) in actions
            assert published(actions, BackoffStarted)[0].attempt == attempt  # type: ignore[attr-defined]
        back_up(m, 10.0 * n + delay, pid=100 + n)


def test_backoff_resets_after_a_long_run() -> None:
    """A crash after reset_after seconds of RUNNING starts a new series: at once again."""
    m = machine(autorestart="always")
    running(m)
    crash(m, 5)
    back_up(m, 5)
    crash(m, 7)
    assert m.state is S.BACKOFF
    back_up(m, 8)
    actions = crash(m, 9 + 61)
    assert Spawn() in actions and m.state is S.STARTING


def test_backoff_resets_after_a_long_run_before_a_liveness_restart() -> None:
    """A liveness restart of a process that ran reset_after seconds starts a new series too."""
    m = machine(autorestart="always")
    running(m)
    for n in range(1, 4):  # three quick crashes
        crash(m, 10.0 * n)
        back_up(m, 10.0 * n + 5, pid=100 + n)
    m.step(RestartRequest(RestartReason.LIVENESS, "liveness failed 3x"), 3600)
    actions = m.step(Exited(-15), 3601)
    assert Spawn() in actions and m.state is S.STARTING


def test_zero_initial_backoff_restarts_at_once_and_counts() -> None:
    """initial = 0s restarts every time in the same step, each a counted `restart`."""
    m = machine(autorestart="always", backoff={**BACKOFF, "initial": 0})
    running(m)
    for n in range(1, 4):
        actions = crash(m, 5.0 * n, code=-9)
        assert Spawn() in actions and m.state is S.STARTING
        (restart,) = published(actions, Restart)
        assert (restart.reason, restart.exit_code, restart.restarts) == (
            RestartReason.EXITED,
            -9,
            n,
        )  # type: ignore[attr-defined]
        back_up(m, 5.0 * n + 1)


def test_a_process_that_dies_at_once_is_spawned_at_most_every_min_spawn_interval() -> None:
    """Whatever the backoff says (here: nothing), spawns are MIN_SPAWN_INTERVAL apart."""
    m = machine(autorestart="always", start_seconds=0, backoff={**BACKOFF, "initial": 0})
    m.step(Start(), 0)
    m.step(Spawned(1), 0)
    actions = crash(m, 0.03)
    assert m.state is S.BACKOFF
    (timer,) = [a for a in actions if isinstance(a, SetTimer)]
    assert timer.kind is TimerKind.BACKOFF
    assert timer.delay == pytest.approx(MIN_SPAWN_INTERVAL - 0.03)


def test_failed_starts_go_fatal_after_start_retries() -> None:
    """start_retries failed retries after the first failed start -> FATAL, with a fatal event."""
    m = machine(start_retries=2)
    m.step(Start(), 0)
    for n in range(3):
        m.step(Spawned(10 + n), n * 10)
        actions = m.step(Exited(1), n * 10 + 0.1)
        if n < 2:
            assert m.state is S.BACKOFF
            m.step(TimerFired(TimerKind.BACKOFF), n * 10 + 5)
    assert m.state is S.FATAL
    assert published(actions, Fatal)


def test_spawn_error_is_a_failed_start() -> None:
    """A command that cannot be executed backs off like a start that exited."""
    m = machine()
    m.step(Start(), 0)
    m.step(SpawnFailed("No such file or directory: 'x'"), 0)
    assert m.state is S.BACKOFF and "No such file" in m.detail


@pytest.mark.parametrize(
    ("autorestart", "code", "state"),
    [
        ("on-failure", 0, S.EXITED),
        ("on-failure", 1, S.STARTING),
        ("on-failure", -15, S.STARTING),
        ("always", 0, S.STARTING),
        ("never", 1, S.EXITED),
    ],
)
def test_autorestart_policy(autorestart: str, code: int, state: S) -> None:
    """An exit from RUNNING restarts as autorestart and exit_codes say."""
    m = machine(autorestart=autorestart)
    running(m)
    m.step(Exited(code), 5)
    assert m.state is state


def test_stop_signals_then_kills_after_stop_timeout() -> None:
    """Stop sends stop_signal and sets the kill timer; the timer sends SIGKILL."""
    m = machine(stop_signal="INT", stop_timeout=3)
    running(m)
    actions = m.step(Stop(), 5)
    assert SendSignal(signal.SIGINT) in actions and SetTimer(TimerKind.KILL, 3.0) in actions
    assert m.state is S.STOPPING
    assert m.step(TimerFired(TimerKind.KILL), 8) == [Kill(), SetTimer(TimerKind.ABANDON, 5.0)]
    actions = m.step(Exited(-9), 8.01)
    assert m.state is S.STOPPED and CancelTimer(TimerKind.KILL) in actions


def test_stop_during_backoff_cancels_the_restart() -> None:
    """A stop while in BACKOFF goes to STOPPED and cancels the pending restart."""
    m = machine(autorestart="always")
    running(m)
    crash(m, 5)
    back_up(m, 5)
    crash(m, 6)
    assert m.state is S.BACKOFF
    actions = m.step(Stop(), 6.5)
    assert m.state is S.STOPPED and CancelTimer(TimerKind.BACKOFF) in actions


def test_manual_restart_stops_then_spawns_and_counts() -> None:
    """A manual restart of a RUNNING process stops it, then spawns at once, reason manual."""
    m = machine()
    running(m)
    m.step(RestartRequest(RestartReason.MANUAL), 5)
    assert m.state is S.STOPPING
    actions = m.step(Exited(-15), 5.1)
    assert Spawn() in actions and m.state is S.STARTING
    assert published(actions, Restart)[0].reason is RestartReason.MANUAL  # type: ignore[attr-defined]


def test_liveness_restart_goes_through_backoff() -> None:
    """A liveness restart stops the process and starts it at once; the next one waits out the
    backoff."""
    m = machine()
    running(m)
    m.step(RestartRequest(RestartReason.LIVENESS, "probe failed 3x"), 5)
    actions = m.step(Exited(-15), 5.1)
    assert m.state is S.STARTING
    assert published(actions, Restart)[0].reason is RestartReason.LIVENESS  # type: ignore[attr-defined]
    back_up(m, 5.2)
    m.step(RestartRequest(RestartReason.LIVENESS, "probe failed 3x"), 10)
    m.step(Exited(-15), 10.1)
    assert m.state is S.BACKOFF and m.backoff_delay == 1.0
    actions = m.step(TimerFired(TimerKind.BACKOFF), 11.1)
    assert published(actions, Restart)[0].reason is RestartReason.LIVENESS  # type: ignore[attr-defined]


def test_stop_wins_over_a_pending_restart() -> None:
    """A stop during a restart's STOPPING phase leaves the process STOPPED."""
    m = machine()
    running(m)
    m.step(RestartRequest(RestartReason.MANUAL), 5)
    m.step(Stop(), 5.05)
    m.step(Exited(-15), 5.1)
    assert m.state is S.STOPPED


def test_every_state_change_is_published() -> None:
    """Each transition publishes one state_changed event with old and new states."""
    m = machine(start_seconds=0)
    changes = [
        e for a in (m.step(Start(), 0), m.step(Spawned(1), 0)) for e in published(a, StateChanged)
    ]
    assert [(c.old, c.new) for c in changes] == [(S.STOPPED, S.STARTING), (S.STARTING, S.RUNNING)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("state_inputs", "bad"),
    [([], Exited(0)), ([], Spawned(1)), ([], TimerFired(TimerKind.KILL))],
)
def test_illegal_input_raises(state_inputs: list[object], bad: object) -> None:
    """An input the current state cannot take is a named error, not a silent no-op."""
    m = machine()
    with pytest.raises(IllegalTransition):
        m.step(bad, 0)  # type: ignore[arg-type]


def crash_loop(
    m: ProcessMachine, times: int, start: float = 0.0, every: float = 1.0
) -> list[object]:
    """Crash a RUNNING process `times` times, `every` seconds apart; return all actions."""
    actions: list[object] = []
    now = start
    for n in range(times):
        actions += m.step(Exited(1), now)
        if m.state is S.BACKOFF:
            actions += m.step(TimerFired(TimerKind.BACKOFF), now + 0.5)
        if m.state is S.STARTING:
            actions += m.step(Spawned(1000 + n), now + 0.5)
        now += every
    return actions


def test_flapping_is_reported_once_per_episode_then_recovered() -> None:
    """`restarts` restarts within `window` -> one flapping event; a quiet window -> recovered."""
    m = machine(start_seconds=0, autorestart="always", flapping={"restarts": 3, "window": 60})
    running(m)
    actions = crash_loop(m, 6, start=10)
    flaps = published(actions, FlappingEvent)
    assert len(flaps) == 1 and flaps[0].restarts == 3 and not flaps[0].stopped  # type: ignore[attr-defined]
    assert m.flapping and m.state is S.RUNNING
    assert SetTimer(TimerKind.FLAPPING, 60.0) in actions
    recovered = m.step(TimerFired(TimerKind.FLAPPING), 80)
    assert published(recovered, Recovered) and not m.flapping


def test_flapping_with_action_stop_goes_fatal() -> None:
    """With action = "stop", the restart that makes it flap is not done: FATAL instead."""
    m = machine(
        start_seconds=0,
        autorestart="always",
        flapping={"restarts": 2, "window": 60, "action": "stop"},
    )
    running(m)
    actions = crash_loop(m, 2, start=10)
    assert m.state is S.FATAL and "flapping: 2 restarts in 60s" in m.detail
    assert published(actions, Fatal) and published(actions, FlappingEvent)[0].stopped  # type: ignore[attr-defined]
    assert m.restarts == 1


def test_manual_restarts_do_not_count_as_flapping() -> None:
    """A person's restarts are not the program flapping."""
    m = machine(start_seconds=0, flapping={"restarts": 2, "window": 60})
    running(m)
    for n in range(4):
        m.step(RestartRequest(RestartReason.MANUAL), n)
        m.step(Exited(-15), n + 0.1)
        m.step(Spawned(50 + n), n + 0.2)
    assert not m.flapping


# --- what a process leaves behind ----------------------------------------------------------


def test_an_exit_with_leftovers_drains_before_the_restart() -> None:
    """The main process exits while its group still runs: STOPPING with no pid (it was reaped),
    the stop signal to the group and one KILL timer; the restart comes once the group is gone."""
    m = machine(autorestart="always", stop_timeout=4)
    running(m, pid=100)
    actions = m.step(Exited(1, leftovers=True), 5)
    assert (m.state, m.pid, m.draining) == (S.STOPPING, None, True)
    assert SendSignal(signal.SIGTERM, group=True) in actions
    assert SetTimer(TimerKind.KILL, 4.0) in actions
    (change,) = published(actions, StateChanged)
    assert change.reason == "exited with 1; stopping what it left behind"  # type: ignore[attr-defined]
    assert not published(actions, Restart)
    actions = m.step(GroupGone(), 5.2)
    assert Spawn() in actions and m.state is S.STARTING
    assert CancelTimer(TimerKind.KILL) in actions
    (restart,) = published(actions, Restart)
    assert (restart.reason, restart.exit_code) == (RestartReason.EXITED, 1)  # type: ignore[attr-defined]


def test_leftovers_that_ignore_the_stop_signal_are_killed_then_abandoned() -> None:
    """stop_timeout after the exit, SIGKILL; if something survives even that, the process is
    given up on KILL_GRACE later and the exit judged, so it is never STOPPING for ever."""
    m = machine(autorestart="never", stop_timeout=4)
    running(m)
    m.step(Exited(0, leftovers=True), 5)
    assert m.step(TimerFired(TimerKind.KILL), 9) == [
        Kill(),
        SetTimer(TimerKind.ABANDON, KILL_GRACE),
    ]
    m.step(TimerFired(TimerKind.ABANDON), 9 + KILL_GRACE)
    assert m.state is S.EXITED and "survive SIGKILL" in m.detail


def test_a_failed_start_with_leftovers_is_still_a_failed_start() -> None:
    """An exit during STARTING drains first, then counts as a failed start."""
    m = machine(start_seconds=5)
    m.step(Start(), 0)
    m.step(Spawned(7), 0)
    m.step(Exited(2, leftovers=True), 0.5)
    assert m.state is S.STOPPING
    m.step(GroupGone(), 0.6)
    assert m.state is S.BACKOFF and m.failed_starts == 1


def test_a_stop_during_the_drain_wins() -> None:
    """A user's stop while the leftovers drain ends in STOPPED, not in a restart."""
    m = machine(autorestart="always")
    running(m)
    m.step(Exited(1, leftovers=True), 5)
    assert m.step(Stop(), 5.1) == []
    m.step(GroupGone(), 5.2)
    assert m.state is S.STOPPED


def test_a_stopped_process_whose_leftovers_linger_waits_for_them() -> None:
    """After a stop, the main exit with leftovers keeps the process STOPPING (the stop signal
    goes to what escaped the group, not again to the group) until they are gone."""
    m = machine()
    running(m)
    m.step(Stop(), 5)
    actions = m.step(Exited(-15, leftovers=True), 5.1)
    assert actions == [SendSignal(signal.SIGTERM, group=False)]
    assert (m.state, m.pid) == (S.STOPPING, None)
    m.step(GroupGone(), 5.3)
    assert m.state is S.STOPPED


# --- the table ----------------------------------------------------------------------------


def test_every_state_but_unknown_has_a_row() -> None:
    """Each state Supervisor defines (UNKNOWN aside: never set) says what it accepts."""
    assert set(TRANSITIONS) == set(S) - {S.UNKNOWN}


def test_a_move_the_table_does_not_list_is_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each state change is checked against the table, not only each input."""
    row = dict(TRANSITIONS[S.STOPPED])
    row[Start] = (ProcessMachine._start, frozenset())
    monkeypatch.setitem(TRANSITIONS, S.STOPPED, row)  # type: ignore[arg-type]
    with pytest.raises(IllegalTransition, match="STOPPED -> STARTING is not listed"):
        machine().step(Start(), 0)


def test_group_gone_is_illegal_outside_stopping() -> None:
    """GroupGone only ends a STOPPING: anywhere else the driver has a bug."""
    m = machine()
    running(m)
    with pytest.raises(IllegalTransition):
        m.step(GroupGone(), 5)
