"""Wiring: builds the supervisor, the event bus, the reaper and the control plane, then runs
the event loop until SIGTERM/SIGINT (stop everything, exit 0). SIGHUP reloads the config.

Start-up order: validate the config, open the control socket (and [control].http), then
start programs in priority order.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import os
import signal
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from sentinel import __version__, limits, logpaths, notify, reexec, statefile
from sentinel.api.app import create_app, create_metrics_app
from sentinel.api.listeners import open_listeners, open_metrics_listener
from sentinel.api.serve import ControlServer
from sentinel.audit import AuditLog
from sentinel.auth import Credentials, Role, is_legacy
from sentinel.bus import EventBus
from sentinel.config import find_config, load
from sentinel.environ import ChildEnvironment
from sentinel.errors import ConfigError
from sentinel.events import (
    BackoffStarted,
    ConfigReloaded,
    DaemonWarning,
    Event,
    Fatal,
    Healthy,
    Notified,
    ProbeResultEvent,
    Restart,
    RollingRestart,
    StateChanged,
    Unhealthy,
    Waiting,
)
from sentinel.exhaustion import Exhaustion
from sentinel.logsetup import configure_logging
from sentinel.metrics import SentinelCollector
from sentinel.model import Config, ProcessSpec
from sentinel.notify import Notifier, ProcessContext
from sentinel.notifysocket import NotifyReceiver
from sentinel.pids import Pidfd
from sentinel.probes.exec import ExecProber
from sentinel.probes.http import HttpProber
from sentinel.probes.runner import ProbeRunner
from sentinel.process import ProcessDriver, escapees
from sentinel.reaper import ChildReaper, children_of_daemon
from sentinel.snapshot import ProcessTree
from sentinel.states import ProcessState, RestartReason
from sentinel.supervisor import Supervisor
from sentinel.systemd import ServiceManager

if TYPE_CHECKING:
    from sentinel.scheduling import ProbeScheduler

log = logging.getLogger("sentinel")
RECENT_EVENTS = 1000
STATUS_EVERY = 1.0  # s: the service manager's STATUS= is updated at most this often


class Daemon:
    """The running daemon; also the `Control` the API talks to."""

    def __init__(
        self,
        config: Config,
        run_id: str | None = None,
        lock: statefile.StateLock | None = None,
        adopted: dict[str, Any] | None = None,
    ) -> None:
        """`adopted`: the hand-over of the daemon this one was exec'd from (reexec.py)."""
        self.config = config
        self.run_id = run_id or statefile.new_run_id()
        self.lock = lock  # the state directory's, held until the process ends
        self._handover: dict[str, Any] = dict((adopted or {}).get("processes", {}))
        self._adopted = frozenset(self._handover)
        self._notify_handover: dict[str, int] = dict((adopted or {}).get("notify", {}))
        self._reexec_requested = False
        self.bus = EventBus()
        self.recent: deque[Event] = deque(maxlen=RECENT_EVENTS)  # for `sentinel events`
        # First: what the drivers publish while they are made (a log file that cannot be
        # opened) is logged and remembered too.
        self.bus.subscribe(log_event)
        self.bus.subscribe(ProbeLog())
        self.bus.subscribe(self._remember)
        self.closing = asyncio.Event()  # set once everything is stopped: ends the API's streams
        self._shutdown_requested = asyncio.Event()
        self.http_address: str | None = None  # [control].http as bound (port 0 -> the real port)
        self.metrics_address: str | None = None  # [metrics].listen as bound
        self._reaper = ChildReaper()
        self._http_prober = HttpProber()
        self._scheduler = _Scheduler()
        # What children (programs and exec probes) inherit: never sentinel's own secrets.
        self._environment = ChildEnvironment(
            config.daemon_variables, {statefile.RUN_ID_ENV: self.run_id}
        )
        self._exhaustion = Exhaustion(self.bus.publish)
        execs = ExecProber(self._reaper, environment=self._environment, exhaustion=self._exhaustion)
        self.probes = ProbeRunner(
            self.bus, self._scheduler, self._http_prober, execs, self._spec_of
        )
        # sd_notify sockets of programs with notify = true; what they say reaches the driver
        # (and through it the supervisor) as `notify` events on the bus.
        self.notify_sockets = NotifyReceiver(config.state_dir / "notify", self.bus, self._tree_of)
        self.supervisor = Supervisor(
            config, self.bus, self._reaper, health=self.probes.health, factory=self._driver
        )
        self.processes = self.supervisor  # what the API commands and reads
        self._release_unclaimed()
        self._reload_lock = asyncio.Lock()
        self.notifier = Notifier(config.notify, self._notify_context, self.bus.publish)
        self.metrics = SentinelCollector(self.supervisor.snapshots, self._escapees_finder)
        if adopted is not None:
            self.metrics.restore(adopted["metrics"])
        self.bus.subscribe(self.metrics.on_event)
        self.bus.subscribe(self.probes.on_event)
        self.bus.subscribe(self._restart_unhealthy)
        self.bus.subscribe(self._route_notify)
        # After the probe runner and the sd_notify route: readiness is read once they took
        # the event in.
        self.bus.subscribe(self.supervisor.on_event)
        self.bus.subscribe(self.notifier.on_event)
        self._manager: ServiceManager | None = None  # systemd, when it runs sentinel
        self._status_pending = False
        self.exit_code = 0  # what `sentinel run` exits with: non-zero when an essential died
        self.bus.subscribe(self._essential_ended)

    def _driver(self, spec: ProcessSpec) -> ProcessDriver:
        adopt = self._handover.pop(spec.name, None)
        return ProcessDriver(
            spec,
            self.bus,
            self._reaper,
            environment=self._environment,
            adopt=adopt,
            exhaustion=self._exhaustion,
            launch=self.notify_sockets.launch,
        )

    def _release_unclaimed(self) -> None:
        """Processes handed over that the config no longer has: killed, and reaped as
        orphans. Their pipes are closed."""
        for name, data in self._handover.items():
            run = data.get("run")
            if run is not None and run.get("main") is not None:
                pidfd = Pidfd.open(run["main"], run["start"])
                if pidfd is not None:
                    log.warning("%s: no longer configured: killing pid %d", name, pidfd.pid)
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(run["pgid"], signal.SIGKILL)  # unreaped: the number is ours
                    pidfd.close()
            for stream in ("stdout", "stderr"):
                for fd in data.get(stream) or ():
                    with contextlib.suppress(OSError):
                        os.close(fd)
        self._handover.clear()

    def _record_entries(self) -> dict[str, statefile.Entry]:
        """What runs, for the state directory's record."""
        entries = {}
        for name, driver in self.supervisor.drivers.items():
            running = driver.running()
            if running is not None:
                settings = driver.spec.settings
                entries[name] = statefile.Entry(
                    *running, int(settings.stop_signal), settings.stop_timeout
                )
        return entries

    def _spec_of(self, name: str) -> ProcessSpec | None:
        driver = self.supervisor.drivers.get(name)
        return driver.spec if driver is not None else None

    def _escapees_finder(self) -> Callable[[], dict[str, list[int]]]:
        """For a scrape: a function that finds escaped descendants off the loop, from a copy
        of what is watched now."""
        return functools.partial(escapees, frozenset(self._reaper.watched))

    def _essential_ended(self, event: Event) -> None:
        """An essential program that gave up (FATAL) or ended for good (EXITED) ends sentinel,
        with its status: the way a container ends when its main program dies."""
        if not isinstance(event, StateChanged) or event.new not in (
            ProcessState.FATAL,
            ProcessState.EXITED,
        ):
            return
        driver = self.supervisor.drivers.get(event.process)
        if (
            driver is None
            or not driver.spec.settings.essential
            or self._shutdown_requested.is_set()
        ):
            return
        self.exit_code = exit_status(event.exit_code, failed=event.new is ProcessState.FATAL)
        log.error(
            "%s is essential and %s (%s): stopping everything, exiting %d",
            event.process,
            event.new.name,
            event.reason,
            self.exit_code,
        )
        self.request_shutdown()

    def essential_down(self) -> list[str]:
        """The essential processes that are not RUNNING (for /healthz)."""
        return [
            name
            for name, driver in self.supervisor.drivers.items()
            if driver.spec.settings.essential and driver.state is not ProcessState.RUNNING
        ]

    def _tree_of(self, name: str) -> ProcessTree | None:
        driver = self.supervisor.drivers.get(name)
        return driver.tree() if driver is not None else None

    def _remember(self, event: Event) -> None:
        if isinstance(event, ProbeResultEvent) or _ping(event):  # would drown the rest
            return
        self.recent.append(event)

    def _route_notify(self, event: Event) -> None:
        """What a program said over sd_notify goes to its driver; a removed process's socket
        is closed."""
        if isinstance(event, Notified):
            driver = self.supervisor.drivers.get(event.process)
            if driver is not None:
                driver.notified(event)
        elif isinstance(event, ConfigReloaded):
            for name in event.removed:
                self.notify_sockets.close(name)

    def _restart_unhealthy(self, event: Event) -> None:
        """The one feedback path: a failed liveness (or startup) probe restarts the process."""
        if isinstance(event, Unhealthy):
            driver = self.supervisor.drivers.get(event.process)
            if driver is not None:
                driver.restart(RestartReason.LIVENESS, event.detail)

    def _notify_context(self, name: str) -> ProcessContext | None:
        """What an alert about a process says beyond its event: taken when the alert is made
        (the log's tail is read later, off the bus, by the notifier's worker)."""
        driver = self.supervisor.drivers.get(name)
        if driver is None:
            return None
        settings = driver.spec.settings
        return ProcessContext(
            tags=tuple(settings.notify_tags),
            enabled=settings.alerts,
            snapshot=driver.snapshot(self.probes.health(name)),
            read_tail=_tail_reader(driver),
        )

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._reaper.install()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_shutdown)
        loop.add_signal_handler(signal.SIGHUP, self._reload_on_signal)
        loop.add_signal_handler(signal.SIGUSR2, self._reexec_on_signal)
        manager = self._manager = ServiceManager()
        recorder = statefile.Recorder(
            self.config.state_dir, self.run_id, self._record_entries, loop
        )
        recorder.write()  # the run id, before anything is spawned: a crash finds its children
        record_changes = self.bus.subscribe(
            lambda e: recorder.changed() if isinstance(e, StateChanged) else None
        )
        if self._adopted:
            # Before anything awaits: the watchdogs' deadlines run again from the hand-over,
            # and the pings sent during the exec wait in these sockets, read before any timer.
            self._reopen_notify_sockets()
        server, audit_log = self._open_control_plane()
        await server.start()
        self._scheduler.start()
        self.notifier.start()
        status = self.bus.subscribe(self._status_changed)
        try:
            if self._adopted:
                self._resume_adopted()
            else:
                await self.supervisor.start_autostart()
            manager.ready(self._status_line())
            # What start-up built (modules, config models, drivers) lives as long as the
            # daemon: out of the collector's sight, a full collection no longer walks it.
            gc.freeze()
            await self._shutdown_requested.wait()
            if self._reexec_requested:
                log.info("re-executing sentinel: every program keeps running")
                manager.reloading()
            else:
                log.info("shutting down: stopping all processes")
                manager.stopping()
                await self.supervisor.stop_all()
        finally:
            status()
            await self.notifier.aclose()
            self._scheduler.shutdown()
            await self._http_prober.aclose()
            self.closing.set()
            await server.stop()
            if self._reexec_requested:
                recorder.write()  # what runs now: a crash across the exec still finds it
                self._exec(audit_log)
            self.notify_sockets.close_all()
            record_changes()
            await self._release(recorder, audit_log)
            manager.close()
        log.info("sentinel stopped" + (f", exit {self.exit_code}" if self.exit_code else ""))
        return self.exit_code

    async def _release(self, recorder: statefile.Recorder, audit_log: AuditLog) -> None:
        """The last of a stop: pipes, leftovers, children, the state record, the socket."""
        for driver in self.supervisor.drivers.values():
            await driver.aclose()
        self.supervisor.outputs.close()  # what programs wrote to sentinel's stdout, written
        _kill_leftovers()
        self._reaper.reap()
        self._reaper.close()
        recorder.close()
        with contextlib.suppress(FileNotFoundError):
            self.config.socket_path.unlink()
        audit_log.close()

    def _reopen_notify_sockets(self) -> None:
        """After a re-exec: the sd_notify sockets handed over listen again (closed for what
        no longer has notify on, or is no longer configured)."""
        for name, driver in self.supervisor.drivers.items():
            inherited = self._notify_handover.pop(name, None)
            if inherited is not None and driver.spec.settings.notify:
                self.notify_sockets.open(driver.spec, inherited)
            elif inherited is not None:  # notify is off now: a new spawn gets no socket
                self.notify_sockets.release(name, inherited)
        for gone, fd in self._notify_handover.items():  # of processes no longer configured
            self.notify_sockets.release(gone, fd)
        self._notify_handover.clear()

    def _resume_adopted(self) -> None:
        """After a re-exec: probes start again for what runs; autostart programs that were not
        handed over (added to the config since) start."""
        for name, driver in self.supervisor.drivers.items():
            if driver.state is ProcessState.RUNNING and driver.pid is not None:
                self.probes.resume(name, driver.pid)
        new = [n for n, d in self.supervisor.drivers.items() if n not in self._adopted]
        for name in new:
            if self.supervisor.drivers[name].spec.settings.autostart:
                self.supervisor.drivers[name].start()
        log.info(
            "re-executed: adopted %d processes%s",
            len(self._adopted),
            f", started {len(new)} new ones" if new else "",
        )

    async def reexec(self) -> None:
        """Re-execute sentinel in place (an upgrade), keeping every program running. The
        config is read first: a config that a reload would refuse is refused here too
        (ConfigError), and nothing happens."""
        async with self._reload_lock:
            if self.shutting_down:
                raise ConfigError.single(str(self.config.path), "", "sentinel is shutting down")
            self.read_config()
            self._reexec_requested = True
            self._shutdown_requested.set()

    def _reexec_on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reexec())

        def done(t: asyncio.Task[None]) -> None:
            if not t.cancelled() and t.exception() is not None:
                log.error("re-exec refused: %s", t.exception())

        task.add_done_callback(done)

    def _exec(self, audit_log: AuditLog) -> None:
        """Hand everything over and exec the installed sentinel under this pid."""
        data: dict[str, Any] = {
            "run_id": self.run_id,
            "lock_fd": self.lock.fd if self.lock is not None else None,
            "processes": {n: d.hand_over() for n, d in self.supervisor.drivers.items()},
            "metrics": self.metrics.export(),
            "notify": self.notify_sockets.hand_over(),
        }
        if self.lock is not None:
            os.set_inheritable(self.lock.fd, True)
        self._reaper.close()
        with contextlib.suppress(FileNotFoundError):
            self.config.socket_path.unlink()
        audit_log.close()
        if self._manager is not None:
            self._manager.close()
        reexec.exec_daemon(self.config.path, reexec.write_handover(data))

    def _open_control_plane(self) -> tuple[ControlServer, AuditLog]:
        """The listeners, bound, each behind its guard; and the audit log they write."""
        control = self.config.control
        self.config.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        audit_log = AuditLog(self.config.state_dir / "audit.jsonl")
        credentials = Credentials(
            (u.name, u.password_hash, Role.named(u.role)) for u in control.users
        )
        for user in control.users:
            if is_legacy(user.password_hash):
                log.warning(
                    "user %s has an unsalted {SHA} password hash (Supervisor's): replace it "
                    "with one from `sentinel hash-password`",
                    user.name,
                )
        listeners, self.http_address = open_listeners(
            control,
            self.config.socket_path,
            str(self.config.path),
            lambda policy: create_app(self, policy, credentials, audit_log),
        )
        metrics = self.config.metrics
        if metrics.listen is not None:
            scrapers = Credentials((u.name, u.password_hash, Role.VIEWER) for u in metrics.users)
            listener, self.metrics_address = open_metrics_listener(
                metrics, lambda policy: create_metrics_app(self, policy, scrapers)
            )
            listeners.append(listener)
            log.info(
                "metrics on %s://%s/metrics%s",
                "https" if metrics.tls_cert else "http",
                self.metrics_address,
                "" if metrics.users else " (no password needed)",
            )
        scheme = "https" if control.tls_cert else "http"
        log.info(
            "sentinel %s: control socket %s%s; %d processes; without a password: %s",
            __version__,
            self.config.socket_path,
            f", {scheme}://{self.http_address}" if self.http_address else "",
            len(self.config.processes),
            f"{control.anonymous} (root and uid {os.geteuid()} on the socket: admin)",
        )
        return ControlServer(listeners), audit_log

    def _status_line(self) -> str:
        """Processes counted by state, for the service manager: "12 RUNNING, 1 BACKOFF"."""
        counts = Counter(d.state.name for d in self.supervisor.drivers.values())
        return ", ".join(f"{n} {state}" for state, n in sorted(counts.items())) or "no programs"

    def _status_changed(self, event: Event) -> None:
        """Tell the service manager the new counts, at most every STATUS_EVERY seconds (a crash
        loop must not be a datagram per state change)."""
        if not isinstance(event, StateChanged) or self._status_pending or not self._manager:
            return
        self._status_pending = True

        def send() -> None:
            self._status_pending = False
            if self._manager is not None:
                self._manager.status(self._status_line())

        asyncio.get_running_loop().call_later(STATUS_EVERY, send)

    def request_shutdown(self) -> None:
        self._shutdown_requested.set()

    @property
    def shutting_down(self) -> bool:
        return self._shutdown_requested.is_set()

    def read_config(self) -> Config:
        """The config file as a reload would take it, applied to nothing; ConfigError if a
        reload would reject it. It only reads files, so it may run off the loop."""
        new = load(self.config.path)
        notify.check(new)
        limits.check_fits(new)
        logpaths.check(new)
        return new

    async def reload(self) -> ConfigReloaded:
        """Re-read the config; a bad one is rejected and the running set is left untouched."""
        async with self._reload_lock:
            if self._manager is not None:
                self._manager.reloading()
            try:
                try:
                    new = self.read_config()
                except ConfigError as exc:
                    log.error("reload rejected, keeping the running config:\n%s", exc)
                    self.bus.publish(ConfigReloaded(ok=False, error=str(exc)))
                    raise
                if (new.control, new.socket_path) != (
                    self.config.control,
                    self.config.socket_path,
                ):
                    log.warning("[control] changed: it takes effect when sentinel restarts")
                configure_logging(new.sentinel.log_level, new.sentinel.log_format)
                self._environment.update(new.daemon_variables)
                self.notifier.reconfigure(new.notify)
                self.config = new
                return await self.supervisor.reload(new)
            finally:
                if self._manager is not None:
                    self._manager.reloaded(self._status_line())

    async def apply(self, config: Config) -> ConfigReloaded:
        """Run `config`, the running one with process groups added or removed (Supervisor's
        addProcessGroup and removeProcessGroup): add and remove what differs."""
        async with self._reload_lock:
            self.config = config
            return await self.supervisor.reload(config)

    def _reload_on_signal(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload())
        task.add_done_callback(lambda t: t.cancelled() or t.exception())  # logged in reload


def _kill_leftovers() -> None:
    """As subreaper, anything still a child of ours now would outlive us: kill it. What it
    started comes to us as it dies, so go on until no child is left."""
    for _ in range(1000):  # a bound, against a fork bomb
        pids = children_of_daemon()
        if not pids:
            return
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                log.warning("killed leftover process %d", pid)
        for pid in pids:  # only those killed: waiting for another could block for ever
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


def exit_status(code: int | None, *, failed: bool) -> int:
    """A shell's exit status for a process's end: its code, 128 + N when killed by signal N,
    and 1 for a failure with no code of its own (a spawn error, flapping)."""
    if code is None or (code == 0 and failed):
        return 1 if failed else 0
    return 128 - code if code < 0 else min(code, 255)


def _tail_reader(driver: ProcessDriver, size: int = 2048, lines: int = 10) -> Callable[[], str]:
    """A function that reads the last lines a process wrote (stderr if it has any, else
    stdout), for alerts; it reads files only, so it can run off the loop."""
    captures = [c for c in (driver.log("stderr"), driver.log("stdout")) if c is not None]

    def read() -> str:
        for capture in captures:
            data, _ = capture.read(-size, 0)
            if data.strip():
                return "\n".join(data.decode(errors="replace").splitlines()[-lines:])
        return ""

    return read


class _Scheduler:
    """The probe scheduler, made for the first probe: without probes, the daemon never loads
    apscheduler (a third of a MiB of resident memory)."""

    def __init__(self) -> None:
        self._made: ProbeScheduler | None = None
        self._running = False

    def add(
        self, job_id: str, job: Callable[[], Awaitable[None]], period: float, first_in: float
    ) -> None:
        if self._made is None:
            from sentinel.scheduling import ProbeScheduler  # noqa: PLC0415

            self._made = ProbeScheduler()
            if self._running:
                self._made.start()
        self._made.add(job_id, job, period, first_in)

    def remove(self, job_id: str) -> None:
        if self._made is not None:
            self._made.remove(job_id)

    def start(self) -> None:
        self._running = True
        if self._made is not None:
            self._made.start()

    def shutdown(self) -> None:
        self._running = False
        if self._made is not None:
            self._made.shutdown()


class ProbeLog:
    """Probe results in sentinel's log when they change: the first failure (or a new reason),
    and the first pass after failures. A readiness probe failing every 100 ms would otherwise
    write ten lines a second."""

    def __init__(self) -> None:
        self._failing: dict[tuple[str, str], str] = {}  # (process, probe) -> last detail

    def __call__(self, event: Event) -> None:
        if not isinstance(event, ProbeResultEvent):
            return
        key = (event.process, event.probe)
        if event.ok:
            if self._failing.pop(key, None) is not None:
                log.info("%s: %s probe passing again: %s", *key, event.detail)
        elif self._failing.get(key) != event.detail:
            self._failing[key] = event.detail
            fields = {"fields": event.to_dict()}
            log.info("%s: %s probe failed: %s", *key, event.detail, extra=fields)


def _ping(event: Event) -> bool:
    """A WATCHDOG=1 with nothing else: a program's heartbeat, not news."""
    return (
        isinstance(event, Notified)
        and event.watchdog
        and not (event.ready or event.reloading or event.stopping or event.watchdog_trigger)
        and event.status is None
        and event.mainpid is None
    )


def log_event(event: Event) -> None:
    """Every state change and restart goes to sentinel's log, with its reason."""
    if isinstance(event, ProbeResultEvent) or _ping(event):
        return  # ProbeLog's; a heartbeat
    fields: dict[str, Any] = {"fields": event.to_dict()}
    if isinstance(event, StateChanged):
        log.info(
            "%s: %s -> %s (%s)",
            event.process,
            event.old.name,
            event.new.name,
            event.reason,
            extra=fields,
        )
    elif isinstance(event, Restart):
        log.info(
            "%s: restart #%d, reason %s%s",
            event.process,
            event.restarts,
            event.reason.value,
            f": {event.detail}" if event.detail else "",
            extra=fields,
        )
    elif isinstance(event, BackoffStarted):
        log.info(
            "%s: backoff attempt %d, %.3gs", event.process, event.attempt, event.delay, extra=fields
        )
    elif isinstance(event, Unhealthy):
        log.warning("%s: unhealthy, %s", event.process, event.detail, extra=fields)
    elif isinstance(event, Healthy):
        log.info("%s: healthy (%s)", event.process, event.detail, extra=fields)
    elif isinstance(event, DaemonWarning):
        log.warning("%s: %s", event.process or "sentinel", event.detail, extra=fields)
    elif isinstance(event, Fatal):
        log.error("%s: FATAL: %s", event.process, event.detail, extra=fields)
    elif isinstance(event, Waiting):
        log.info("%s: %s", event.process, event.detail or "no longer waiting", extra=fields)
    elif isinstance(event, RollingRestart):
        level = logging.WARNING if event.phase == "stopped" else logging.INFO
        log.log(level, "%s: rolling restart %s: %s", event.program, event.phase, event.detail)
    elif isinstance(event, Notified) and (event.status is not None or event.ready):
        what = "READY=1" if event.ready else ""
        status = f"STATUS={event.status}" if event.status is not None else ""
        log.info("%s: sd_notify %s", event.process, " ".join(filter(None, (what, status))))
    elif isinstance(event, ConfigReloaded) and event.ok:
        log.info(
            "config reloaded: added %s, removed %s, changed %s",
            list(event.added),
            list(event.removed),
            list(event.changed),
            extra=fields,
        )


def run(config_path: str | None, adopt_fd: int | None = None) -> int:
    """`sentinel run`; with `adopt_fd`, the daemon after a re-exec (reexec.py)."""
    handover = reexec.read_handover(adopt_fd) if adopt_fd is not None else None
    config = load(find_config(config_path))
    notify.check(config)
    limits.check_fits(config, limits.raise_soft_limit())
    logpaths.check(config)
    configure_logging(config.sentinel.log_level, config.sentinel.log_format)
    statefile.prepare(config.state_dir, str(config.path))
    if handover is not None:
        # The same daemon, re-executed: it holds the lock already, and what runs is its own.
        run_id = str(handover["run_id"])
        lock_fd = handover["lock_fd"]
        lock = statefile.StateLock(lock_fd) if lock_fd is not None else None
        if lock is not None:
            os.set_inheritable(lock.fd, False)
    else:
        lock = statefile.StateLock.acquire(config.state_dir)  # AlreadyRunning: a second daemon
        run_id = statefile.new_run_id()
        # What a daemon that died left running is stopped before anything starts.
        statefile.recover(config.state_dir, run_id)

    async def main() -> int:
        return await Daemon(config, run_id, lock, handover).run()

    return asyncio.run(main())
