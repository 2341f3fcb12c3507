"""Periodic probe runs with APScheduler 3's AsyncIOScheduler (the only apscheduler importer).

Each job runs a coroutine on the daemon's event loop every `period` seconds, never overlapping
itself (max_instances=1: a run still going when the next is due makes that one skip); runs
that were missed are skipped, not replayed.

APScheduler 3 keeps its schedule in wall-clock datetimes, and the wall clock steps (NTP fixing
a bad RTC, `date -s`). Stepped back, it waits out the step before running any job; stepped
forward by years, an IntervalTrigger makes it enumerate every missed run, stalled and growing
in memory (agronholm/apscheduler#1066). So each job's schedule lives on the monotonic clock, in
its `MonotonicTrigger`: APScheduler only ever sees the wall-clock datetime that the next due
time corresponds to when it asks. A step forward makes jobs due early; their triggers see it,
and the early runs are skipped. A step back leaves APScheduler asleep until wall times that
moved away; the `ClockWatch` sees it just after the earliest job was due. Either way every job
is then moved to the wall time that its monotonic due time now corresponds to.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

log = logging.getLogger(__name__)

# Due times are rounded up to this grid: a probe runs at most this late (half a percent of a 1 s
# period), and the probes due within one grid step share one scheduler pass (at a thousand
# probes a second: five runs a pass instead of under three, and a fifth less CPU).
GRID = 0.005
# The wall clock moved this far from the monotonic clock has stepped. NTP slews both alike, so
# between steps their distance holds; a smaller step costs a job one late or skipped-early run.
STEP = 0.1
# The clocks are compared at most this often: a step back holds a probe up by at most this, and
# at a thousand probes a second the comparisons cost next to nothing.
CHECK_INTERVAL = 0.05

Job = Callable[[], Awaitable[None]]
Clock = Callable[[], float]


def _on_grid(monotonic: float) -> float:
    """`monotonic` rounded up to the grid (less a hair: a time on the grid stays there, whatever
    the float division makes of it)."""
    return math.ceil(monotonic / GRID - 1e-6) * GRID


class MonotonicTrigger(BaseTrigger):  # type: ignore[misc]  # apscheduler is untyped
    """Due every `period` seconds from `first_due`, both on the monotonic `clock`.

    APScheduler asks with its own wall-clock `now`, and is answered the wall time that the next
    due time corresponds to at that moment: `now + (due - clock())`. Asked with a previous fire
    time (it is starting a run), the answer is always after `now`, so APScheduler computes one
    run whatever the wall clock did, and runs that were missed are skipped. A run started well
    before its due time (the wall clock jumped ahead) is not owed: the answer is that same due
    time, and `take_run` says so. APScheduler asks twice per run with the same arguments (for
    the run times, then for the next one): the second answer is the first.
    """

    def __init__(
        self,
        period: float,
        first_due: float,
        clock: Clock,
        on_due: Callable[[float], None] | None = None,
    ) -> None:
        if period <= 0:
            raise ValueError(f"period must be more than zero, got {period}")
        self.period = period
        self._next = first_due  # unrounded, so that rounding never accumulates
        self.due = _on_grid(first_due)  # the next due time on the monotonic clock
        self._clock = clock
        self._on_due = on_due  # told each new due time
        self._owed = False
        self._answered: tuple[datetime, datetime, datetime] | None = None  # previous, now, answer

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        if previous_fire_time is None:  # the job is added, or moved after a step of the clock
            return now + timedelta(seconds=self.due - self._clock())
        answered = self._answered
        if answered is not None and answered[0] == previous_fire_time and answered[1] == now:
            return answered[2]
        monotonic = self._clock()
        if monotonic >= self.due - GRID:  # on time or late: this run is owed
            self._owed = True
            missed = max(0, math.floor((monotonic - self._next) / self.period))
            self._next += (missed + 1) * self.period
            if self._next <= monotonic:  # float rounding on a boundary
                self._next += self.period
            self.due = _on_grid(self._next)
            if self._on_due is not None:
                self._on_due(self.due)
        answer = now + timedelta(seconds=max(self.due - monotonic, 1e-6))
        self._answered = (previous_fire_time, now, answer)
        return answer

    def take_run(self) -> bool:
        """Whether a run is owed, once: False for a run APScheduler started before it was due."""
        owed, self._owed = self._owed, False
        return owed

    def __repr__(self) -> str:
        return f"<MonotonicTrigger every {self.period}s, next due at {self.due:.3f}>"


class ClockWatch:
    """Sees a step of the wall clock that would leave APScheduler asleep.

    After a step back APScheduler finds no job due (their wall times moved away) and sleeps
    until the earliest of them. So a loop timer follows the earliest due time of any job on the
    monotonic clock: just after APScheduler should have started that job (at most every
    CHECK_INTERVAL, and again until it has), it compares the wall clock's distance from the
    monotonic clock with the last one seen, and calls `on_step` on a step. There is a timer
    only while a job is due.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        triggers: Mapping[str, MonotonicTrigger],
        on_step: Callable[[], None],
        wall: Clock = time.time,
    ) -> None:
        self._loop, self._triggers, self._on_step, self._wall = loop, triggers, on_step, wall
        self._checked = loop.time()
        self._offset = wall() - self._checked
        self._dues: list[tuple[float, str]] = []  # a heap: (due time, job id), not yet started
        self._timer: asyncio.TimerHandle | None = None
        self._armed_for = 0.0  # the earliest due time, which the timer checks after

    def expect(self, due: float, job_id: str) -> None:
        """The job is due at `due` (monotonic)."""
        heapq.heappush(self._dues, (due, job_id))
        if self._timer is None or due < self._armed_for:
            self._arm()

    def check(self) -> None:
        self._checked = self._loop.time()
        offset = self._wall() - self._checked
        stepped, self._offset = offset - self._offset, offset
        if abs(stepped) > STEP:
            log.warning("the wall clock stepped by %+.3fs; probes keep their schedule", stepped)
            self._on_step()

    def stop(self) -> None:
        self._dues.clear()
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._dues:
            # A grid step after the due time, when APScheduler (woken for the same instant, on
            # the same loop) should have started the job.
            self._armed_for = self._dues[0][0]
            when = max(self._armed_for + GRID, self._checked + CHECK_INTERVAL)
            self._timer = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        self._timer = None
        self.check()
        while self._dues and self._dues[0][0] + GRID <= self._checked:
            due, job_id = self._dues[0]
            trigger = self._triggers.get(job_id)
            if trigger is not None and trigger.due == due:
                break  # not started yet (a smaller step, or one just after the check): watch on
            heapq.heappop(self._dues)  # started (the trigger moved on), or the job is gone
        self._arm()


class ProbeScheduler:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._scheduler = AsyncIOScheduler(
            event_loop=self._loop,
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )
        self._triggers: dict[str, MonotonicTrigger] = {}
        self._failed: dict[str, type[BaseException]] = {}  # job -> the error it last raised
        self._watch = ClockWatch(self._loop, self._triggers, self._follow_step)

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        self._watch.stop()
        self._scheduler.shutdown(wait=False)

    def add(self, job_id: str, job: Job, period: float, first_in: float) -> None:
        """Run `job` every `period` seconds, the first time `first_in` seconds from now."""
        trigger = MonotonicTrigger(
            period,
            self._loop.time() + first_in,
            self._loop.time,
            on_due=lambda due: self._watch.expect(due, job_id),
        )

        async def run() -> None:
            if not trigger.take_run():
                # Started before it was due: the wall clock jumped ahead. Its trigger has put it
                # back already; the other jobs are put back now, not each by an early run.
                self._watch.check()
                return
            try:
                await job()
            except Exception as exc:
                # A traceback for the first failure of a kind, not for every run: a probe a
                # second failing the same way must not flood the log (out of descriptors).
                if self._failed.get(job_id) is not type(exc):
                    self._failed[job_id] = type(exc)
                    log.exception("probe job %s failed (repeats are not logged)", job_id)
            else:
                self._failed.pop(job_id, None)
            finally:
                trigger.take_run()  # a run due meanwhile was skipped (max_instances), not owed

        self._triggers[job_id] = trigger
        self._scheduler.add_job(run, trigger, id=job_id, replace_existing=True)
        self._watch.expect(trigger.due, job_id)

    def remove(self, job_id: str) -> None:
        self._triggers.pop(job_id, None)
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)
        if not self._triggers:
            self._watch.stop()  # no job, no timer

    def _follow_step(self) -> None:
        """Move every job to the wall time that its monotonic due time now corresponds to."""
        if not self._scheduler.running:
            return
        now = datetime.now(UTC)
        self._scheduler.pause()  # one wake-up after all the moves, not one per job
        try:
            for job_id, trigger in self._triggers.items():
                next_run = trigger.get_next_fire_time(None, now)
                self._scheduler.modify_job(job_id, next_run_time=next_run)
        finally:
            self._scheduler.resume()
