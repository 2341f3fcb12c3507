"""Rolling restarts: a program's instances restarted one at a time, each ready before the next.

`sentinel restart --rolling NAME`, the API's `?rolling=true` and a reload of a changed program
with `reload = "rolling"` come here. The instances that are not ready to begin with go first
(restarting them costs no capacity), then the ready ones; each is restarted and the roll
waits until it is RUNNING and ready again (its readiness probe passed, READY=1 with notify,
or RUNNING when it has neither). So with every instance ready at the start, never fewer than
n-1 are ready during the roll. An instance that is not ready within the program's
`rolling_timeout` stops the roll: it is left as it is (its restart goes on, the roll no longer
waits for it), and the instances after it are not touched, on the old version.

Every step is a `rolling` event (started, restarting, ready, completed, stopped), which the
metrics and the notifier read.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from sentinel.events import Event, RollingRestart
from sentinel.process import ProcessDriver
from sentinel.states import RestartReason


@dataclass(frozen=True)
class RollResult:
    """How a rolling restart of one program went."""

    program: str
    restarted: tuple[str, ...]  # restarted and ready again, in order
    stopped_at: str | None = None  # the instance not ready in time, which ended the roll
    left: tuple[str, ...] = ()  # not restarted: the roll stopped before them
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.stopped_at is None


async def roll(
    program: str,
    drivers: Sequence[ProcessDriver],
    *,
    reason: RestartReason,
    timeout: float,
    is_ready: Callable[[ProcessDriver], bool],
    changed: Callable[[str], Awaitable[None]],
    publish: Callable[[Event], object],
    why: Callable[[ProcessDriver], str],
) -> RollResult:
    """Restart `drivers` (the instances of `program`) one at a time; `changed(name)` returns
    when something happened to that process; `why(driver)` says why it is not ready."""
    order = sorted(drivers, key=lambda d: (is_ready(d), d.name))
    total, done = len(order), 0
    group = order[0].spec.group if order else program

    def event(phase: str, process: str, detail: str) -> None:
        publish(
            RollingRestart(
                process=process,
                group=group,
                program=program,
                phase=phase,
                done=done,
                total=total,
                detail=detail,
            )
        )

    if not order:
        return RollResult(program, ())
    event("started", order[0].name, f"{total} instances, one at a time")
    restarted: list[str] = []
    for index, driver in enumerate(order):
        event("restarting", driver.name, f"{index + 1} of {total}")
        driver.restart(reason, "rolling restart")
        try:
            async with asyncio.timeout(timeout):
                while not is_ready(driver):
                    await changed(driver.name)
        except TimeoutError:
            left = tuple(d.name for d in order[index + 1 :])
            detail = f"{driver.name} not ready within {timeout:g}s ({why(driver)}); " + (
                f"{', '.join(left)} not restarted" if left else "no instance left to restart"
            )
            event("stopped", driver.name, detail)
            return RollResult(program, tuple(restarted), driver.name, left, detail)
        done += 1
        restarted.append(driver.name)
        event("ready", driver.name, f"{done} of {total} restarted and ready")
    event("completed", order[-1].name, f"{total} instances restarted, each ready in turn")
    return RollResult(program, tuple(restarted))
