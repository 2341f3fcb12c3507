"""Periodic probe runs with APScheduler 3's AsyncIOScheduler (the only apscheduler importer).

Each job runs a coroutine on the daemon's event loop every `period` seconds, never overlapping
itself (max_instances=1: a run still going when the next is due makes that one skip), and late
runs are coalesced instead of replayed in a burst.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

log = logging.getLogger(__name__)

# Wake-ups are rounded up to this: a probe runs at most this late (half a percent of a 1 s
# period), and the probes due within it share one pass over the job store.
TICK = 0.005

Job = Callable[[], Awaitable[None]]


class _InLoopScheduler(AsyncIOScheduler):  # type: ignore[misc]  # apscheduler is untyped
    """AsyncIOScheduler without the thread hop on its own timer.

    AsyncIOScheduler.wakeup may be called from any thread, so it goes through
    call_soon_threadsafe (a write to the loop's self-pipe, then a read). Its timer already
    fires on the loop, and with a thousand probes a second that hop was a tenth of the
    scheduler's CPU. The timer is also rounded up to TICK: jobs due within a few
    milliseconds of each other run from one wake-up instead of one each.
    """

    def _start_timer(self, wait_seconds: float | None) -> None:
        self._stop_timer()
        if wait_seconds is not None:
            wait = math.ceil(wait_seconds / TICK) * TICK
            self._timeout = self._eventloop.call_later(wait, self._wakeup_in_loop)

    def _wakeup_in_loop(self) -> None:
        self._stop_timer()
        self._start_timer(self._process_jobs())


class ProbeScheduler:
    def __init__(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._scheduler = _InLoopScheduler(
            event_loop=loop or asyncio.get_running_loop(),
            timezone=UTC,
            job_defaults={"max_instances": 1, "coalesce": True, "misfire_grace_time": None},
        )

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        self._scheduler.shutdown(wait=False)

    def add(self, job_id: str, job: Job, period: float, first_in: float) -> None:
        """Run `job` every `period` seconds, the first time `first_in` seconds from now."""
        start = datetime.now(UTC) + timedelta(seconds=first_in)
        trigger = IntervalTrigger(seconds=period, start_date=start, timezone=UTC)

        async def run() -> None:
            try:
                await job()
            except Exception:
                log.exception("probe job %s failed", job_id)

        self._scheduler.add_job(run, trigger, id=job_id, replace_existing=True)

    def remove(self, job_id: str) -> None:
        if self._scheduler.get_job(job_id) is not None:
            self._scheduler.remove_job(job_id)
