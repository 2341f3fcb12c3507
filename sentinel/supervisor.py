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
import signal
from collections.abc import Callable, Iterable

from sentinel.bus import EventBus
from sentinel.errors import NoSuchProcess
from sentinel.events import ConfigReloaded
from sentinel.inherit import Outputs
from sentinel.logs import LogCapture
from sentinel.model import Config, ProcessSpec
from sentinel.process import ProcessDriver
from sentinel.reaper import ChildReaper
from sentinel.snapshot import NO_PROBES, HealthStatus, ProcessSnapshot
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
        health: Callable[[str], HealthStatus] = lambda name: NO_PROBES,
    ) -> None:
        """`health(name)` says what a process's probes say, for its snapshot."""
        self.config = config
        self._bus = bus
        self.outputs = Outputs()  # sentinel's own stdout and stderr, for path = "inherit"
        self._factory = factory or (
            lambda spec: ProcessDriver(spec, bus, reaper, outputs=self.outputs)
        )
        self._health = health
        self.drivers: dict[str, ProcessDriver] = {}
        self._ordered: list[ProcessDriver] | None = None  # drivers by priority; reset on reload
        for spec in config.processes:
            self.drivers[spec.name] = self._factory(spec)

    # --- selection and views ----------------------------------------------------------------

    def select(self, names: Iterable[str]) -> list[str]:
        """NAME, GROUP:*, GROUP:NAME or all -> process names, in priority order; NoSuchProcess
        for a name that selects nothing."""
        return [d.name for d in self._select(names)]

    def _select(self, names: Iterable[str]) -> list[ProcessDriver]:
        chosen: dict[str, ProcessDriver] = {}
        for name in names:
            matches = self._match(name)
            if not matches:
                raise NoSuchProcess(f"no such process or group: {name}")
            chosen.update((d.name, d) for d in matches)
        return sorted(chosen.values(), key=_in_order)

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

    def snapshots(self, names: Iterable[str] = ("all",)) -> list[ProcessSnapshot]:
        """The selected processes as they are now, in priority order."""
        names = tuple(names)
        drivers = self._in_order() if names == ("all",) else self._select(names)
        now, health = asyncio.get_running_loop().time(), self._health
        return [d.snapshot(health(d.spec.name), now) for d in drivers]

    def _in_order(self) -> list[ProcessDriver]:
        """Every driver in priority order, sorted once per set of drivers (a status of 500
        processes asks for it every time)."""
        if self._ordered is None or len(self._ordered) != len(self.drivers):
            self._ordered = sorted(self.drivers.values(), key=_in_order)
        return self._ordered

    def log(self, name: str, stream: str) -> LogCapture | None:
        """A process's captured stdout or stderr; None when it is not captured."""
        return self._select([name])[0].log(stream)

    # --- commands ---------------------------------------------------------------------------

    async def start(self, names: Iterable[str], wait: bool = True) -> dict[str, bool]:
        """Start in ascending priority; with `wait`, until each is RUNNING or failed to start."""
        drivers = self._select(names)
        for driver in drivers:
            driver.start()
        if not wait:
            return {d.name: True for d in drivers}
        return await _settle(drivers, _left_starting, _is_up)

    async def stop(self, names: Iterable[str], wait: bool = True) -> dict[str, bool]:
        """Stop in descending priority, a tier at a time; without `wait`, in the background."""
        drivers = self._select(names)
        if not wait:
            task = asyncio.get_running_loop().create_task(_stop_in_tiers(drivers))
            task.add_done_callback(_log_failure)
            return {d.name: True for d in drivers}
        return await _stop_in_tiers(drivers)

    async def restart(self, names: Iterable[str], wait: bool = True) -> dict[str, bool]:
        """Restart each (a counted `manual` restart; a start for those not running)."""
        drivers = self._select(names)
        for driver in drivers:
            driver.restart(RestartReason.MANUAL, "restart requested")
        if not wait:
            return {d.name: True for d in drivers}
        return await _settle(drivers, _settled, _is_up)

    def signal(self, names: Iterable[str], sig: signal.Signals) -> dict[str, bool]:
        """Send `sig` to each selected process's group; False for those not running."""
        return {d.name: d.send_signal(sig) for d in self._select(names)}

    async def stop_all(self) -> None:
        await _stop_in_tiers(list(self.drivers.values()))

    async def start_autostart(self) -> None:
        await self.start([n for n, d in self.drivers.items() if d.spec.settings.autostart], False)

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
        kept = [n for n in new_specs if n in old_specs and new_specs[n] != old_specs[n]]
        # Scaling a program (instances, the name template) changes the specs of the processes
        # it keeps, not what they run: they take the new spec without a restart.
        changed = [n for n in kept if new_specs[n].as_run() != old_specs[n].as_run()]
        for name in kept:
            if name not in changed:
                self.drivers[name].reconfigure(new_specs[name])
        self.config = new

        gone = [self.drivers[name] for name in removed]
        await _stop_in_tiers(gone)
        self._ordered = None  # priorities may change, and processes come and go
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
        for driver in sorted(to_start, key=_in_order):
            driver.start()

        event = ConfigReloaded(
            ok=True, added=tuple(added), removed=tuple(removed), changed=tuple(changed)
        )
        self._bus.publish(event)
        return event


def _in_order(driver: ProcessDriver) -> tuple[int, str]:
    return driver.spec.priority, driver.name


async def _stop_in_tiers(drivers: list[ProcessDriver]) -> dict[str, bool]:
    results: dict[str, bool] = {}
    by_priority = sorted(drivers, key=lambda d: -d.spec.priority)
    for _, tier in itertools.groupby(by_priority, key=lambda d: d.spec.priority):
        members = list(tier)
        for driver in members:
            driver.stop()
        results.update(await _settle(members, _is_down, _is_down))
    return results


async def _settle(
    drivers: list[ProcessDriver],
    done: Callable[[ProcessState], bool],
    success: Callable[[ProcessState], bool],
) -> dict[str, bool]:
    states = await asyncio.gather(*(d.wait_for(done) for d in drivers))
    return {d.name: success(s) for d, s in zip(drivers, states, strict=True)}


def _log_failure(task: asyncio.Task[object]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("background stop failed", exc_info=task.exception())
