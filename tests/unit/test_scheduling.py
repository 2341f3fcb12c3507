"""Probe schedules on the monotonic clock, handed to APScheduler as wall-clock times."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from sentinel.scheduling import CHECK_INTERVAL, GRID, STEP, ClockWatch, MonotonicTrigger

HOUR = 3600.0
TEN_YEARS = 10 * 365 * 86400.0
approx = functools.partial(pytest.approx, abs=1e-4)  # monotonic times, to well under a ms


class Clocks:
    """A monotonic clock, and a wall clock that keeps its distance from it until it steps."""

    def __init__(self) -> None:
        self.monotonic = 1000.0
        # whole seconds apart, so that the wall clock's floats are as exact as the monotonic's
        self.offset = datetime(2026, 1, 1, tzinfo=UTC).timestamp() - self.monotonic

    def __call__(self) -> float:
        return self.monotonic

    def wall(self) -> float:
        return self.monotonic + self.offset

    @property
    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), UTC)

    def step(self, seconds: float) -> None:
        self.offset += seconds


def scheduler_pass(
    trigger: MonotonicTrigger, next_run: datetime, now: datetime
) -> tuple[list[datetime], datetime]:
    """What APScheduler 3.11 does with one job in a pass (`_process_jobs` and
    `Job._get_run_times`): the run times up to `now`, asking the trigger after each, then the
    next fire time, asked again with the last run time."""
    run_times: list[datetime] = []
    fire_time = next_run
    while fire_time <= now:
        run_times.append(fire_time)
        fire_time = trigger.get_next_fire_time(fire_time, now)
        assert len(run_times) < 100, "the scheduler is enumerating missed runs"
    if not run_times:
        return [], next_run
    return run_times, trigger.get_next_fire_time(run_times[-1], now)


@dataclass
class Simulation:
    """One job under a scheduler that runs a pass whenever the wall clock reaches its fire time,
    checked every millisecond of the monotonic clock."""

    period: float
    first_due: float
    clocks: Clocks = field(default_factory=Clocks)
    runs: list[float] = field(default_factory=list)  # monotonic times of the runs owed
    early: list[float] = field(default_factory=list)  # runs started before they were due

    def __post_init__(self) -> None:
        self.trigger = MonotonicTrigger(self.period, self.first_due, self.clocks)
        self.next_run = self.trigger.get_next_fire_time(None, self.clocks.now)

    def run_until(self, monotonic: float) -> None:
        while self.clocks.monotonic < monotonic:
            self.clocks.monotonic = round(self.clocks.monotonic + 0.001, 6)
            run_times, self.next_run = scheduler_pass(self.trigger, self.next_run, self.clocks.now)
            if run_times:
                owed = self.trigger.take_run()
                (self.runs if owed else self.early).append(self.clocks.monotonic)

    def follow_step(self) -> None:
        """What ProbeScheduler does once the step is seen: the job moves to its due time."""
        self.next_run = self.trigger.get_next_fire_time(None, self.clocks.now)


def on_grid(t: float) -> float:
    return math.ceil(round(t / GRID, 6)) * GRID


def test_runs_every_period_from_the_first_due_time() -> None:
    """The first run is at the first due time, the next ones a period apart."""
    sim = Simulation(period=1.0, first_due=1000.5)
    sim.run_until(1003.2)
    assert sim.runs == approx([1000.5, 1001.5, 1002.5])
    assert sim.early == []


def test_due_times_are_rounded_up_to_the_grid() -> None:
    """Due times a few ms apart become one, so their jobs share one scheduler pass."""
    clocks = Clocks()
    a = MonotonicTrigger(1.0, 1000.1201, clocks)
    b = MonotonicTrigger(1.0, 1000.1249, clocks)
    assert a.due == b.due == pytest.approx(1000.125)
    now = clocks.now
    assert a.get_next_fire_time(None, now) == b.get_next_fire_time(None, now)


def test_rounding_does_not_accumulate() -> None:
    """Each due time is the schedule's own, rounded: not the last rounded one plus a period."""
    sim = Simulation(period=0.3333, first_due=1000.0001)
    sim.run_until(1009.9)
    assert len(sim.runs) == 30
    assert sim.runs[-1] == pytest.approx(on_grid(1000.0001 + 29 * 0.3333), abs=0.0011)


def test_the_two_questions_of_one_run_get_one_answer() -> None:
    """APScheduler asks twice per run with the same arguments: the schedule moves once."""
    clocks = Clocks()
    trigger = MonotonicTrigger(1.0, 1000.0, clocks)
    previous, now = clocks.now, clocks.now
    first = trigger.get_next_fire_time(previous, now)
    clocks.monotonic += 0.0003  # the run was submitted in between
    assert trigger.get_next_fire_time(previous, now) == first
    assert trigger.due == pytest.approx(1001.0)
    assert trigger.take_run() is True
    assert trigger.take_run() is False


def test_is_told_each_new_due_time_once() -> None:
    dues: list[float] = []
    clocks = Clocks()
    trigger = MonotonicTrigger(1.0, 1000.0, clocks, on_due=dues.append)
    previous, now = clocks.now, clocks.now
    trigger.get_next_fire_time(previous, now)
    trigger.get_next_fire_time(previous, now)
    assert dues == [approx(1001.0)]


@pytest.mark.parametrize("step", [-HOUR, HOUR, TEN_YEARS])
def test_never_answers_now_or_earlier_for_a_run(step: float) -> None:
    """Whatever the wall clock did, a pass computes one run: missed ones are not enumerated."""
    clocks = Clocks()
    trigger = MonotonicTrigger(1.0, 1000.0, clocks)
    next_run = trigger.get_next_fire_time(None, clocks.now)
    clocks.step(step)
    clocks.monotonic = 1000.0
    now = clocks.now
    run_times, after = scheduler_pass(trigger, next_run, now)
    assert len(run_times) == (0 if step < 0 else 1)
    if run_times:
        assert after > now
        assert after - now == timedelta(seconds=1)


def test_missed_runs_are_skipped_not_replayed() -> None:
    """After the loop was blocked for 10.5 periods, one run, then back on the schedule."""
    sim = Simulation(period=1.0, first_due=1000.5)
    sim.run_until(1000.6)
    sim.clocks.monotonic = 1011.0  # blocked: nothing ran meanwhile
    sim.run_until(1013.0)
    assert sim.runs == approx([1000.5, 1011.001, 1011.5, 1012.5])
    assert sim.early == []


def test_a_step_back_is_followed_once_seen() -> None:
    """After a step back the job waits for its old wall time; moved, it runs when due."""
    sim = Simulation(period=1.0, first_due=1000.5)
    sim.run_until(1000.7)
    sim.clocks.step(-HOUR)
    sim.run_until(1001.7)
    assert sim.runs == approx([1000.5])  # stuck: the wall time of its due moved away
    sim.follow_step()
    sim.run_until(1003.0)
    assert sim.runs == approx([1000.5, 1001.701, 1002.5])
    assert sim.early == []


@pytest.mark.parametrize("step", [HOUR, TEN_YEARS])
def test_a_step_forward_does_not_run_the_job_early(step: float) -> None:
    """The early start the step causes is not owed: the job runs when due, once."""
    sim = Simulation(period=1.0, first_due=1000.5)
    sim.run_until(1000.7)
    sim.clocks.step(step)
    sim.run_until(1003.0)
    assert sim.early == approx([1000.701])
    assert sim.runs == approx([1000.5, 1001.5, 1002.5])


def test_a_run_a_little_early_is_on_time() -> None:
    """A run less than one grid step before its due time is owed (the wall time is read apart
    from the monotonic one, microseconds off)."""
    clocks = Clocks()
    trigger = MonotonicTrigger(1.0, 1000.0, clocks)
    clocks.monotonic = 1000.0 - GRID / 2
    trigger.get_next_fire_time(clocks.now, clocks.now)
    assert trigger.take_run() is True
    assert trigger.due == pytest.approx(1001.0)


def test_period_must_be_positive() -> None:
    with pytest.raises(ValueError, match="more than zero"):
        MonotonicTrigger(0.0, 1000.0, Clocks())


# --- ClockWatch -----------------------------------------------------------------------------


@dataclass
class Timer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """What ClockWatch uses of an event loop: its clock and call_at."""

    def __init__(self, clocks: Clocks) -> None:
        self.clocks = clocks
        self.timers: list[Timer] = []

    def time(self) -> float:
        return self.clocks.monotonic

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(when, callback)
        self.timers.append(timer)
        return timer

    def pending(self) -> list[float]:
        return [t.when for t in self.timers if not t.cancelled]

    def run_until(self, monotonic: float) -> None:
        while due := sorted(
            (t for t in self.timers if not t.cancelled and t.when <= monotonic),
            key=lambda t: t.when,
        ):
            timer = due[0]
            self.clocks.monotonic = max(self.clocks.monotonic, timer.when)
            timer.cancelled = True  # ran
            timer.callback()
        self.clocks.monotonic = monotonic


@dataclass
class FakeTrigger:
    due: float


def watch(
    clocks: Clocks, triggers: dict[str, FakeTrigger] | None = None
) -> tuple[ClockWatch, FakeLoop, list[float]]:
    """A ClockWatch on a fake loop, with the jobs in `triggers` (none: every job has started)."""
    loop = FakeLoop(clocks)
    steps: list[float] = []
    clock_watch = ClockWatch(
        loop, triggers or {}, lambda: steps.append(clocks.monotonic), wall=clocks.wall
    )
    return clock_watch, loop, steps


def test_watch_has_a_timer_only_while_a_job_is_due() -> None:
    """No due time, no timer; one just after the earliest due time."""
    clock_watch, loop, _ = watch(Clocks())
    assert loop.pending() == []
    clock_watch.expect(1002.0, "b")
    clock_watch.expect(1001.0, "a")
    clock_watch.expect(1003.0, "c")
    assert loop.pending() == [approx(1001.0 + GRID)]
    loop.run_until(1005.0)
    assert loop.pending() == []
    clock_watch.expect(1006.0, "a")
    clock_watch.stop()
    assert loop.pending() == []


def test_watch_sees_a_step_back_when_a_job_is_due() -> None:
    """The step is seen at the first due time after it, not later."""
    clocks = Clocks()
    clock_watch, loop, steps = watch(clocks)
    for due, job_id in ((1001.0, "a"), (1002.0, "b"), (1003.0, "c")):
        clock_watch.expect(due, job_id)
    loop.run_until(1001.5)
    clocks.step(-HOUR)
    loop.run_until(1005.0)
    assert steps == [approx(1002.0 + GRID)]


def test_watch_checks_at_most_every_check_interval() -> None:
    """Due times closer together than CHECK_INTERVAL share a check."""
    clock_watch, loop, _ = watch(Clocks())
    for due, job_id in ((1001.0, "a"), (1001.01, "b"), (1001.02, "c")):
        clock_watch.expect(due, job_id)
    loop.run_until(1002.0)
    checks = [t.when for t in loop.timers]
    assert checks == [approx(1001.0 + GRID), approx(1001.0 + GRID + CHECK_INTERVAL)]


def test_watch_checks_again_until_a_due_job_has_started() -> None:
    """A job still not started after its due time (a step not seen yet) keeps the watch on."""
    triggers = {"a": FakeTrigger(1001.0)}
    clock_watch, loop, _ = watch(Clocks(), triggers)
    clock_watch.expect(1001.0, "a")
    loop.run_until(1001.1)
    checks = [t.when for t in loop.timers]
    assert checks == [approx(1001.0 + GRID + n * CHECK_INTERVAL) for n in range(3)]
    triggers["a"].due = 1002.0  # it started: its trigger moved on, and said so
    clock_watch.expect(1002.0, "a")
    loop.run_until(1001.5)
    assert loop.pending() == [approx(1002.0 + GRID)]


@pytest.mark.parametrize(
    ("step", "seen"), [(STEP / 2, False), (-STEP / 2, False), (2 * STEP, True)]
)
def test_watch_ignores_what_is_not_a_step(step: float, seen: bool) -> None:
    clocks = Clocks()
    clock_watch, loop, steps = watch(clocks)
    clock_watch.expect(1001.0, "a")
    clocks.step(step)
    loop.run_until(1002.0)
    assert bool(steps) is seen
