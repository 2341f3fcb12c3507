"""The supervisor owns one driver per configured process: start and stop order, groups,
name selection, dependencies, rolling restarts, and the reload diff.

Order: processes start in ascending priority (spawned in that order, without waiting for each
to be RUNNING, as supervisord does) and stop in descending priority, one priority tier at a
time: a tier is fully stopped before the next one is asked to stop.

Dependencies (`depends_on`): the supervisor knows the graph and who is ready, and tells each
dependent's driver whether everything it depends on is RUNNING and ready; the machine holds
its spawns until then (STOPPED, waiting: see machine.py). It hears of readiness through the
bus (state changes, the probe runner's readiness verdicts, what programs say over sd_notify),
wired by the daemon. Stops go the other way: a process stops only once its dependents (among
what is being stopped) have, then priority decides.

A dependency's restart does not restart its dependents, and its stop does not stop them: a
dependency is a start condition, not a lifetime binding. Restarting every dependent whenever
a database blips would turn one process's crash into an outage of everything above it;
dependents are expected to reconnect (their own liveness probe restarts one that cannot).
What does change: a dependent that exits while a dependency is not ready waits for it (with
that reason in its status) instead of crash looping against it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import Callable, Iterable

from sentinel import dependencies
from sentinel.bus import EventBus
from sentinel.errors import NoSuchProcess
from sentinel.events import ConfigReloaded, Event, ProbeResultEvent, ProcessEvent
from sentinel.inherit import Outputs
from sentinel.logs import LogCapture
from sentinel.model import Config, ProcessSpec
from sentinel.process import ProcessDriver
from sentinel.reaper import ChildReaper
from sentinel.rolling import RollResult, roll
from sentinel.snapshot import NO_PROBES, HealthStatus, ProcessSnapshot
from sentinel.states import STOPPED_STATES, ProcessState, RestartReason

log = logging.getLogger(__name__)

DriverFactory = Callable[[ProcessSpec], ProcessDriver]


def _is_up(state: ProcessState) -> bool:
    return state is ProcessState.RUNNING


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
        self._requires: dict[str, tuple[str, ...]] = {}  # process -> what it depends on
        self._dependents: dict[str, tuple[str, ...]] = {}  # process -> what depends on it
        self._changes: dict[str, list[asyncio.Future[None]]] = {}  # see changed()
        self._rolls: set[asyncio.Task[RollResult]] = set()
        for spec in config.processes:
            self.drivers[spec.name] = self._factory(spec)
        self._link()

    # --- dependencies -----------------------------------------------------------------------

    def _link(self) -> None:
        """Read the dependency graph of the drivers' specs; tell each dependent where its
        dependencies stand."""
        self._requires = dependencies.resolve(d.spec for d in self.drivers.values())
        self._dependents = dependencies.dependents(self._requires)
        for driver in self.drivers.values():
            driver.depends_on = self._requires.get(driver.name, ())
            self._gate(driver)

    def is_ready(self, driver: ProcessDriver) -> bool:
        return driver.is_ready(self._health(driver.name))

    def _not_ready(self, name: str) -> str:
        """Why a dependency is not ready, in a word or two ("" when it is)."""
        driver = self.drivers.get(name)
        if driver is None:
            return "not configured"
        if driver.waiting:
            return "waiting"
        if driver.state is not ProcessState.RUNNING:
            return driver.state.name
        return "" if self.is_ready(driver) else "not ready"

    def _gate(self, driver: ProcessDriver) -> None:
        needs = self._requires.get(driver.name)
        if not needs:
            driver.dependencies(True)
            return
        missing = [(name, why) for name in needs if (why := self._not_ready(name))]
        if not missing:
            driver.dependencies(True)
        else:
            detail = "waiting for " + "; ".join(f"{name}: {why}" for name, why in missing)
            driver.dependencies(False, tuple(name for name, _ in missing), detail)

    def on_event(self, event: Event) -> None:
        """Subscribed by the daemon: what happens to a process may make its dependents'
        start go ahead (or wait), and moves rolling restarts on."""
        if isinstance(event, ProbeResultEvent) or not isinstance(event, ProcessEvent):
            return  # a probe's verdict, not each result, changes readiness
        for name in self._dependents.get(event.process, ()):
            driver = self.drivers.get(name)
            if driver is not None:
                self._gate(driver)
        for future in self._changes.pop(event.process, ()):
            if not future.done():
                future.set_result(None)

    def changed(self, name: str) -> asyncio.Future[None]:
        """Done at the next event about process `name` (guard with asyncio.timeout)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._changes.setdefault(name, []).append(future)
        return future

    def _may_come(self, driver: ProcessDriver, seen: frozenset[str] = frozenset()) -> bool:
        """Whether a waiting process's dependencies are on their way (starting, backing off,
        running, or waiting in turn for ones that are), rather than stopped for good."""
        for name in driver.waiting_for:
            dep = self.drivers.get(name)
            if dep is None or name in seen:
                return False
            if dep.waiting:
                if not self._may_come(dep, seen | {driver.name}):
                    return False
            elif dep.state in STOPPED_STATES:
                return False
        return True

    def _start_settled(self, driver: ProcessDriver, state: ProcessState) -> bool:
        """A start (or restart) is over: up, failed, or waiting for what will not come."""
        if driver.waiting:
            return not self._may_come(driver)
        return _settled(state)

    # --- selection and views ----------------------------------------------------------------

    def select(self, names: Iterable[str]) -> list[str]:
        """NAME, GROUP:*, GROUP:NAME or all -> process names, in priority order; NoSuchProcess
        for a name that selects nothing."""
        return [d.name for d in self._select(names)]

    def _select(self, names: Iterable[str], programs: bool = False) -> list[ProcessDriver]:
        """With `programs`, a name that is no process may name a program: its processes."""
        chosen: dict[str, ProcessDriver] = {}
        for name in names:
            matches = self._match(name)
            if not matches and programs:
                matches = [d for d in self.drivers.values() if d.spec.program == name]
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
        """Start in ascending priority, dependencies first; with `wait`, until each is RUNNING,
        failed to start, or waits for a dependency that is not coming."""
        drivers = self._select(names)
        for driver in self._start_order(drivers):
            driver.start()
        if not wait:
            return {d.name: True for d in drivers}
        return await self._settle_starts(drivers)

    async def stop(self, names: Iterable[str], wait: bool = True) -> dict[str, bool]:
        """Stop dependents first, then in descending priority, a tier at a time; without
        `wait`, in the background."""
        drivers = self._select(names)
        if not wait:
            task = asyncio.get_running_loop().create_task(self._stop_in_tiers(drivers))
            task.add_done_callback(_log_failure)
            return {d.name: True for d in drivers}
        return await self._stop_in_tiers(drivers)

    async def restart(self, names: Iterable[str], wait: bool = True) -> dict[str, bool]:
        """Restart each (a counted `manual` restart; a start for those not running)."""
        drivers = self._select(names)
        for driver in drivers:
            driver.restart(RestartReason.MANUAL, "restart requested")
        if not wait:
            return {d.name: True for d in drivers}
        return await self._settle_starts(drivers)

    async def rolling_restart(
        self, names: Iterable[str], wait: bool = True, reason: RestartReason = RestartReason.MANUAL
    ) -> tuple[dict[str, bool], list[RollResult]]:
        """Restart the selected processes program by program, each program's instances one at
        a time (rolling.py). Results: restarted and ready again -> True; the instance that
        stopped a roll, and those it left alone -> False. A name may be a program's."""
        drivers = self._select(names, programs=True)
        if not wait:
            task = asyncio.get_running_loop().create_task(self._roll_all(drivers, reason))
            task.add_done_callback(_log_failure)
            return {d.name: True for d in drivers}, []
        rolls = await self._roll_all(drivers, reason)
        results = {d.name: False for d in drivers}
        for result in rolls:
            results.update(dict.fromkeys(result.restarted, True))
        return results, rolls

    async def _roll_all(
        self, drivers: list[ProcessDriver], reason: RestartReason
    ) -> list[RollResult]:
        by_program: dict[str, list[ProcessDriver]] = {}
        for driver in self._start_order(drivers):
            by_program.setdefault(driver.spec.program, []).append(driver)
        results: list[RollResult] = []
        programs = list(by_program.items())
        for index, (program, members) in enumerate(programs):
            result = await roll(
                program,
                members,
                reason=reason,
                timeout=members[0].spec.settings.rolling_timeout,
                is_ready=self.is_ready,
                changed=self.changed,
                publish=self._bus.publish,
                why=self._why_not_ready,
            )
            results.append(result)
            if not result.ok:  # the programs after it are left alone too
                results += [
                    RollResult(p, (), left=tuple(d.name for d in m))
                    for p, m in programs[index + 1 :]
                ]
                break
        return results

    def _why_not_ready(self, driver: ProcessDriver) -> str:
        why = self._not_ready(driver.name) or "ready"
        snapshot = driver.snapshot(self._health(driver.name))
        extra = snapshot.failing_probes or (driver.waiting and snapshot.detail) or ""
        notify = driver.spec.settings.notify
        if driver.state is ProcessState.RUNNING and notify and not snapshot.ready and not extra:
            extra = "no READY=1 yet"
        return f"{why}: {extra}" if extra else why

    def _start_order(self, drivers: list[ProcessDriver]) -> list[ProcessDriver]:
        names = dependencies.start_order(
            [d.name for d in drivers], self._requires, {d.name: d.spec.priority for d in drivers}
        )
        return [self.drivers[name] for name in names]

    async def _settle_starts(self, drivers: list[ProcessDriver]) -> dict[str, bool]:
        states = await asyncio.gather(
            *(d.wait_for(functools.partial(self._start_settled, d)) for d in drivers)
        )
        return {d.name: _is_up(s) for d, s in zip(drivers, states, strict=True)}

    async def _stop_in_tiers(self, drivers: list[ProcessDriver]) -> dict[str, bool]:
        results: dict[str, bool] = {}
        by_name = {d.name: d for d in drivers}
        waves = dependencies.stop_waves(
            by_name, self._requires, {d.name: d.spec.priority for d in drivers}
        )
        for wave in waves:
            members = [by_name[name] for name in wave]
            for driver in members:
                driver.stop()
            results.update(await _settle(members, _is_down, _is_down))
        return results

    def signal(self, names: Iterable[str], sig: signal.Signals) -> dict[str, bool]:
        """Send `sig` to each selected process's group; False for those not running."""
        return {d.name: d.send_signal(sig) for d in self._select(names)}

    async def stop_all(self) -> None:
        await self._stop_in_tiers(list(self.drivers.values()))

    async def start_autostart(self) -> None:
        await self.start([n for n, d in self.drivers.items() if d.spec.settings.autostart], False)

    # --- reload -----------------------------------------------------------------------------

    async def reload(self, new: Config) -> ConfigReloaded:
        """Apply a new config: add, remove, and restart only what changed.

        A changed process that is running restarts with reason `reload` (one at a time, each
        ready before the next, when its program has `reload = "rolling"`: the reload answers
        once those rolls are over); one that a user stopped stays stopped with the new
        settings; one that had exited or gone FATAL starts again if it autostarts (its config
        was probably fixed for that).
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
        await self._stop_in_tiers(gone)
        self._ordered = None  # priorities may change, and processes come and go
        for driver in gone:
            del self.drivers[driver.name]
            await driver.aclose()

        to_start: list[ProcessDriver] = []
        to_roll: list[ProcessDriver] = []
        for name in changed:
            driver = self.drivers[name]
            state = driver.state
            driver.reconfigure(new_specs[name])
            if (
                state in (ProcessState.EXITED, ProcessState.FATAL)
                and new_specs[name].settings.autostart
            ):
                to_start.append(driver)
            elif state not in STOPPED_STATES and new_specs[name].settings.reload == "rolling":
                to_roll.append(driver)
            elif state not in STOPPED_STATES:
                driver.restart(RestartReason.RELOAD, "config changed")
        for name in added:
            self.drivers[name] = driver = self._factory(new_specs[name])
            if driver.spec.settings.autostart:
                to_start.append(driver)
        self._link()
        for driver in self._start_order(to_start):
            driver.start()
        stopped = ""
        if to_roll:
            rolls = await self._roll_all(to_roll, RestartReason.RELOAD)
            stopped = "; ".join(
                f"rolling restart of {r.program} stopped: {r.detail}" for r in rolls if r.detail
            )

        event = ConfigReloaded(
            ok=True,
            added=tuple(added),
            removed=tuple(removed),
            changed=tuple(changed),
            error=stopped,
        )
        self._bus.publish(event)
        return event


def _in_order(driver: ProcessDriver) -> tuple[int, str]:
    return driver.spec.priority, driver.name


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
