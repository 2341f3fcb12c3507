"""The supervisor owns one driver per configured process: start and stop order, groups,
name selection, and the reload diff.

Order: processes start in ascending priority (spawned in that order, without waiting for each
to be RUNNING, as supervisord does) and stop in descending priority, one priority tier at a
time: a tier is fully stopped before the next one is asked to stop.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable, Iterable

from sentinel.errors import NoSuchProcess
from sentinel.events import ConfigReloaded, EventBus
from sentinel.model import Config, ProcessSpec
from sentinel.process import ProcessDriver
from sentinel.reaper import ChildReaper
from sentinel.states import STOPPED_STATES, ProcessState, RestartReason

log = logging.getLogger(__name__)

DriverFactory = Callable[[ProcessSpec], ProcessDriver]


def _is_up(state: ProcessState) -> bool:
    return state is ProcessState.RUNNING


def _left_starting(state: ProcessState) -> bool:
    return state is not ProcessState.STARTING


def _settled(state: ProcessState) -> bool:
    return state not in (ProcessState.STARTING, ProcessState.STOPPING)


def _is_down(state: ProcessState) -> bool:
    return state in STOPPED_STATES


class Supervisor:
    def __init__(
        self,
        config: Config,
        bus: EventBus,
        reaper: ChildReaper,
        factory: DriverFactory | None = None,
    ) -> None:
        self.config = config
        self._bus = bus
        self._factory = factory or (lambda spec: ProcessDriver(spec, bus, reaper))
        self.drivers: dict[str, ProcessDriver] = {}
        for spec in config.processes:
            self.drivers[spec.name] = self._factory(spec)

    # --- selection --------------------------------------------------------------------------

    def select(self, names: Iterable[str]) -> list[ProcessDriver]:
        """NAME, GROUP:*, GROUP:NAME or all -> drivers, in priority order; NoSuchProcess else."""
        chosen: dict[str, ProcessDriver] = {}
        for name in names:
            matches = self._match(name)
            if not matches:
                raise NoSuchProcess(f"no such process or group: {name}")
            chosen.update((d.name, d) for d in matches)
        return sorted(chosen.values(), key=lambda d: (d.spec.priority, d.name))

    def _match(self, name: str) -> list[ProcessDriver]:
        if name == "all":
            return list(self.drivers.values())
        group, sep, process = name.partition(":")
        if sep:
            return [
                d
                for d in self.drivers.values()
                if d.spec.group == group and process in ("*", d.name)
            ]
        driver = self.drivers.get(name)
        return [driver] if driver else []

    def group_members(self, group: str) -> list[ProcessDriver]:
        return self.select([f"{group}:*"])

    # --- commands ---------------------------------------------------------------------------

    async def start(self, drivers: list[ProcessDriver], wait: bool = True) -> dict[str, bool]:
        """Start in ascending priority; with `wait`, until each is RUNNING or failed to start."""
        for driver in sorted(drivers, key=lambda d: (d.spec.priority, d.name)):
            driver.start()
        if not wait:
            return {d.name: True for d in drivers}
        return await self._settle(drivers, _left_starting, _is_up)

    async def stop(self, drivers: list[ProcessDriver], wait: bool = True) -> dict[str, bool]:
        """Stop in descending priority, a tier at a time; without `wait`, in the background."""
        if not wait:
            task = asyncio.get_running_loop().create_task(self._stop_in_tiers(drivers))
            task.add_done_callback(_log_failure)
            return {d.name: True for d in drivers}
        return await self._stop_in_tiers(drivers)

    async def restart(self, drivers: list[ProcessDriver], wait: bool = True) -> dict[str, bool]:
        """Restart each (a counted `manual` restart; a start for those not running)."""
        for driver in sorted(drivers, key=lambda d: (d.spec.priority, d.name)):
            driver.restart(RestartReason.MANUAL, "restart requested")
        if not wait:
            return {d.name: True for d in drivers}
        return await self._settle(drivers, _settled, _is_up)

    async def stop_all(self) -> None:
        await self._stop_in_tiers(list(self.drivers.values()))

    async def start_autostart(self) -> None:
        await self.start(
            [d for d in self.drivers.values() if d.spec.settings.autostart], wait=False
        )

    async def _stop_in_tiers(self, drivers: list[ProcessDriver]) -> dict[str, bool]:
        results: dict[str, bool] = {}
        by_priority = sorted(drivers, key=lambda d: -d.spec.priority)
        for _, tier in itertools.groupby(by_priority, key=lambda d: d.spec.priority):
            members = list(tier)
            for driver in members:
                driver.stop()
            results.update(await self._settle(members, _is_down, _is_down))
        return results

    @staticmethod
    async def _settle(
        drivers: list[ProcessDriver],
        done: Callable[[ProcessState], bool],
        success: Callable[[ProcessState], bool],
    ) -> dict[str, bool]:
        states = await asyncio.gather(*(d.wait_for(done) for d in drivers))
        return {d.name: success(s) for d, s in zip(drivers, states, strict=True)}

    # --- reload -----------------------------------------------------------------------------

    async def reload(self, new: Config) -> ConfigReloaded:
        """Apply a new config: add, remove, and restart only what changed.

        A changed process that is running restarts with reason `reload`; one that a user
        stopped stays stopped with the new settings; one that had exited or gone FATAL starts
        again if it autostarts (its config was probably fixed for that).
        """
        old_specs = {d.name: d.spec for d in self.drivers.values()}
        new_specs = {spec.name: spec for spec in new.processes}
        removed = [name for name in old_specs if name not in new_specs]
        added = [name for name in new_specs if name not in old_specs]
        changed = [n for n in new_specs if n in old_specs and new_specs[n] != old_specs[n]]
        self.config = new

        gone = [self.drivers[name] for name in removed]
        await self._stop_in_tiers(gone)
        for driver in gone:
            del self.drivers[driver.name]
            await driver.aclose()

        to_start: list[ProcessDriver] = []
        for name in changed:
            driver = self.drivers[name]
            state = driver.state
            driver.reconfigure(new_specs[name])
            if (
                state in (ProcessState.EXITED, ProcessState.FATAL)
                and new_specs[name].settings.autostart
            ):
                to_start.append(driver)
            elif state not in STOPPED_STATES:
                driver.restart(RestartReason.RELOAD, "config changed")
        for name in added:
            self.drivers[name] = driver = self._factory(new_specs[name])
            if driver.spec.settings.autostart:
                to_start.append(driver)
        await self.start(to_start, wait=False)

        event = ConfigReloaded(
            ok=True, added=tuple(added), removed=tuple(removed), changed=tuple(changed)
        )
        self._bus.publish(event)
        return event


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background stop failed", exc_info=task.exception())
