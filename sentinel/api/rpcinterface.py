"""Supervisor's `supervisor.*` XML-RPC namespace (its rpcinterface.py), on sentinel's Control.

Each method answers what supervisord answers, field for field and fault for fault (the
structs and supervisord's rules are in rpcinfo.py), so that supervisorctl and Supervisor's
other clients work unchanged. Where supervisord's meaning does not fit sentinel, this is what
it means here:

- Names: `name`, `group:name` and `group:*` (or `group:`) as Supervisor takes them; a bare
  name may also be a process of another group (`web_0`), as sentinel's CLI takes it.
- readLog, clearLog: sentinel has no main log file (it logs to stderr, or the journal):
  NO_FILE, as supervisord answers when its log is not a file.
- restart: what supervisord does when it restarts, without a new daemon process: read the
  config (a bad one is CANT_REREAD, and nothing stops), stop every process, apply the config
  and start the autostart processes. It answers once the config is read; the rest follows.
- reloadConfig: a dry run, as `supervisorctl reread` expects: [[added, changed, removed]]
  process groups of the config file against the running set. Nothing changes.
- addProcessGroup, removeProcessGroup: as supervisord, one group at a time (so that
  `supervisorctl update`, `add` and `remove` work): add runs a group of the config file that
  is not running (its autostart processes start), remove takes a group whose processes are
  all stopped out of the running set. Until the next `sentinel reload`, the running set may
  differ from the file, as supervisord's does until `update`.
- clearProcessLogs, clearAllProcessLogs: FAILED. sentinel never deletes what a program wrote:
  logs rotate at max_bytes, and a log shipper may be reading the file.
- sendProcessStdin: children's stdin is /dev/null (NO_FILE). sendRemoteCommEvent: sentinel
  has no event listener processes (FAILED).
- A start that fails while STARTING is SPAWN_ERROR, whether exec failed or the program
  exited (supervisord's "Exited too quickly").
- Log reads return at most MAX_LOG_READ bytes (as the JSON API), read off the loop.
- Once sentinel is shutting down, every method is SHUTDOWN_STATE, as in supervisord.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import logging
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from sentinel import __version__
from sentinel.api.control import MAX_LOG_READ, Control
from sentinel.api.rpccommands import ProcessCommands
from sentinel.api.rpcinfo import (
    MAXINT,
    STOPPED_STATES,
    Lookup,
    Result,
    capped,
    config_info,
    groups,
    in_order,
    process_info,
    result,
    tail,
)
from sentinel.api.xmlrpc import Faults, Method, Param, RPCFault
from sentinel.auth import Role
from sentinel.errors import ConfigError
from sentinel.model import Config
from sentinel.states import ProcessState

log = logging.getLogger(__name__)
S = ProcessState

API_VERSION = "3.0"  # Supervisor's RPC API version: supervisorctl checks it (getVersion)
IDENTIFICATION = "sentinel"
NO_MAIN_LOG = "sentinel has no main log file (it logs to stderr)"

NAME = Param("string", "name")
WAIT = Param("boolean", "wait")
SIGNAL = Param("string", "signal", also=(int,))  # "HUP", "SIGHUP" or 1
OFFSET, LENGTH = Param("int", "offset"), Param("int", "length")


def _method(
    handler: Callable[..., Awaitable[object]],
    role: Role,
    returns: str,
    *params: Param,
    required: int | None = None,
    audit: str | None = None,
) -> Method:
    """A table entry; the handler's docstring is what system.methodHelp says."""
    return Method(handler, role, returns, params, inspect.getdoc(handler) or "", required, audit)


class SupervisorNamespace:
    def __init__(self, control: Control, clock: Callable[[], float] = time.time) -> None:
        self.control = control
        self._clock = clock  # unix time, for getProcessInfo's `now`
        self._names = Lookup(control)
        self._commands = ProcessCommands(control, self._names)
        self._tasks: set[asyncio.Task[None]] = set()  # restarts under way

    def methods(self) -> dict[str, Method]:
        """The table: every method name a caller may use, and nothing else."""
        viewer, operator, admin = Role.VIEWER, Role.OPERATOR, Role.ADMIN
        commands = self._commands
        version = _method(self.get_api_version, viewer, "string")
        read_log = _method(self.read_log, admin, "string", OFFSET, LENGTH)
        read_stdout = _method(self.read_process_stdout_log, admin, "string", NAME, OFFSET, LENGTH)
        tail_stdout = _method(self.tail_process_stdout_log, admin, "array", NAME, OFFSET, LENGTH)
        clear = _method(self.clear_process_logs, admin, "boolean", NAME, audit="{0}")
        table = {
            "supervisor.getAPIVersion": version,
            "supervisor.getVersion": version,  # what supervisorctl calls
            "supervisor.getSupervisorVersion": _method(
                self.get_supervisor_version, viewer, "string"
            ),
            "supervisor.getIdentification": _method(self.get_identification, viewer, "string"),
            "supervisor.getState": _method(self.get_state, viewer, "struct"),
            "supervisor.getPID": _method(self.get_pid, viewer, "int"),
            "supervisor.readLog": read_log,
            "supervisor.readMainLog": read_log,
            "supervisor.clearLog": _method(self.clear_log, admin, "boolean", audit="main log"),
            "supervisor.shutdown": _method(self.shutdown, admin, "boolean", audit="sentinel"),
            "supervisor.restart": _method(self.restart, admin, "boolean", audit="sentinel"),
            "supervisor.reloadConfig": _method(self.reload_config, admin, "array"),
            "supervisor.addProcessGroup": _method(
                self.add_process_group, admin, "boolean", NAME, audit="{0}"
            ),
            "supervisor.removeProcessGroup": _method(
                self.remove_process_group, admin, "boolean", NAME, audit="{0}"
            ),
            "supervisor.startProcess": _method(
                commands.start_process, operator, "boolean", NAME, WAIT, required=1, audit="{0}"
            ),
            "supervisor.startProcessGroup": _method(
                commands.start_process_group,
                operator,
                "array",
                NAME,
                WAIT,
                required=1,
                audit="{0}:*",
            ),
            "supervisor.startAllProcesses": _method(
                commands.start_all_processes, operator, "array", WAIT, required=0, audit="all"
            ),
            "supervisor.stopProcess": _method(
                commands.stop_process, operator, "boolean", NAME, WAIT, required=1, audit="{0}"
            ),
            "supervisor.stopProcessGroup": _method(
                commands.stop_process_group,
                operator,
                "array",
                NAME,
                WAIT,
                required=1,
                audit="{0}:*",
            ),
            "supervisor.stopAllProcesses": _method(
                commands.stop_all_processes, operator, "array", WAIT, required=0, audit="all"
            ),
            "supervisor.signalProcess": _method(
                commands.signal_process, operator, "boolean", NAME, SIGNAL, audit="{0} {1}"
            ),
            "supervisor.signalProcessGroup": _method(
                commands.signal_process_group, operator, "array", NAME, SIGNAL, audit="{0}:* {1}"
            ),
            "supervisor.signalAllProcesses": _method(
                commands.signal_all_processes, operator, "array", SIGNAL, audit="all {0}"
            ),
            "supervisor.getAllConfigInfo": _method(self.get_all_config_info, viewer, "array"),
            "supervisor.getProcessInfo": _method(self.get_process_info, viewer, "struct", NAME),
            "supervisor.getAllProcessInfo": _method(self.get_all_process_info, viewer, "array"),
            "supervisor.readProcessStdoutLog": read_stdout,
            "supervisor.readProcessLog": read_stdout,
            "supervisor.readProcessStderrLog": _method(
                self.read_process_stderr_log, admin, "string", NAME, OFFSET, LENGTH
            ),
            "supervisor.tailProcessStdoutLog": tail_stdout,
            "supervisor.tailProcessLog": tail_stdout,
            "supervisor.tailProcessStderrLog": _method(
                self.tail_process_stderr_log, admin, "array", NAME, OFFSET, LENGTH
            ),
            "supervisor.clearProcessLogs": clear,
            "supervisor.clearProcessLog": clear,
            "supervisor.clearAllProcessLogs": _method(
                self.clear_all_process_logs, admin, "array", audit="all"
            ),
            "supervisor.sendProcessStdin": _method(
                self.send_process_stdin,
                operator,
                "boolean",
                NAME,
                Param("string", "chars"),
                audit="{0}",
            ),
            "supervisor.sendRemoteCommEvent": _method(
                self.send_remote_comm_event,
                operator,
                "boolean",
                Param("string", "type"),
                Param("string", "data"),
                audit="{0}",
            ),
        }
        return {
            name: replace(m, handler=self._unless_shutting_down(m)) for name, m in table.items()
        }

    def _unless_shutting_down(self, method: Method) -> Callable[..., Awaitable[object]]:
        handler = method.handler

        @functools.wraps(handler)
        async def checked(*args: Any) -> object:
            if self.control.shutting_down:
                raise RPCFault(Faults.SHUTDOWN_STATE)
            return await handler(*args)

        return checked

    # --- sentinel itself --------------------------------------------------------------------

    async def get_api_version(self) -> str:
        """The version of Supervisor's RPC API that sentinel speaks: "3.0"."""
        return API_VERSION

    async def get_supervisor_version(self) -> str:
        """sentinel's version."""
        return __version__

    async def get_identification(self) -> str:
        """ "sentinel"."""
        return IDENTIFICATION

    async def get_state(self) -> dict[str, object]:
        """{statecode, statename}: sentinel's state, RUNNING (shutting down: SHUTDOWN_STATE)."""
        return {"statecode": 1, "statename": "RUNNING"}

    async def get_pid(self) -> int:
        """sentinel's pid."""
        return os.getpid()

    async def read_log(self, offset: int, length: int) -> str:
        """The main log: NO_FILE, as sentinel has none (it logs to stderr)."""
        raise RPCFault(Faults.NO_FILE, NO_MAIN_LOG)

    async def clear_log(self) -> bool:
        """The main log: NO_FILE, as sentinel has none (it logs to stderr)."""
        raise RPCFault(Faults.NO_FILE, NO_MAIN_LOG)

    async def shutdown(self) -> bool:
        """Stop every process (in reverse priority), then sentinel."""
        self.control.request_shutdown()
        return True

    async def restart(self) -> bool:
        """Read the config (CANT_REREAD if it is bad: nothing changes), then stop every
        process, apply the config and start the autostart processes."""
        await self._read_config()
        task = asyncio.get_running_loop().create_task(self._restart_everything())
        self._tasks.add(task)
        task.add_done_callback(self._restarted)
        return True

    async def _restart_everything(self) -> None:
        names = [p.name for p in self.control.config.processes]
        if names:
            await self.control.processes.stop(names)
        with contextlib.suppress(ConfigError):  # broken since it was read: the daemon logs it
            await self.control.reload()
        autostart = [p.name for p in self.control.config.processes if p.settings.autostart]
        if autostart and not self.control.shutting_down:
            await self.control.processes.start(autostart, wait=False)

    def _restarted(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("restart failed", exc_info=task.exception())

    # --- config -----------------------------------------------------------------------------

    async def _read_config(self) -> Config:
        try:
            return await asyncio.to_thread(self.control.read_config)
        except ConfigError as exc:
            raise RPCFault(Faults.CANT_REREAD, str(exc)) from None

    async def reload_config(self) -> list[list[list[str]]]:
        """[[added, changed, removed]]: the process groups of the config file against those
        running. A dry run: nothing changes (addProcessGroup and removeProcessGroup do)."""
        new = await self._read_config()
        running, wanted = groups(self.control.config), groups(new)
        added = sorted(set(wanted) - set(running))
        removed = sorted(set(running) - set(wanted))
        changed = sorted(g for g in set(running) & set(wanted) if running[g] != wanted[g])
        return [[added, changed, removed]]

    async def add_process_group(self, name: str) -> bool:
        """Run a process group of the config file that is not running; its autostart
        processes start."""
        new = await self._read_config()
        running = self.control.config
        if name in groups(running):
            raise RPCFault(Faults.ALREADY_ADDED, name)
        joining = groups(new).get(name)
        if joining is None:
            raise RPCFault(Faults.BAD_NAME, name)
        taken = sorted({p.name for p in joining} & {p.name for p in running.processes})
        if taken:  # sentinel's process names are unique across groups
            raise RPCFault(Faults.FAILED, f"{name}: {', '.join(taken)} run in another group")
        await self.control.apply(replace(running, processes=(*running.processes, *joining)))
        return True

    async def remove_process_group(self, name: str) -> bool:
        """Take a process group whose processes are all stopped out of the running set."""
        running = self.control.config
        members = groups(running).get(name)
        if members is None:
            raise RPCFault(Faults.BAD_NAME, name)
        snapshots = self._names.snapshots(p.name for p in members)
        if any(s.state not in STOPPED_STATES for s in snapshots):
            raise RPCFault(Faults.STILL_RUNNING, name)
        staying = tuple(p for p in running.processes if p.group != name)
        await self.control.apply(replace(running, processes=staying))
        return True

    async def get_all_config_info(self) -> list[dict[str, object]]:
        """The config of every process: those running ("inuse"), and those of groups in the
        config file that are not ("avail")."""
        running = self.control.config
        try:
            in_file = await asyncio.to_thread(self.control.read_config)
        except ConfigError:
            in_file = running  # what runs is all there is to show
        active = groups(running)
        specs = [*running.processes, *(p for p in in_file.processes if p.group not in active)]
        priorities: dict[str, int] = {}
        for spec in specs:
            priorities[spec.group] = min(priorities.get(spec.group, spec.priority), spec.priority)
        infos = [config_info(s, priorities[s.group], s.group in active) for s in specs]
        return sorted(infos, key=lambda info: str(info["name"]))

    # --- state ------------------------------------------------------------------------------

    async def get_process_info(self, name: str) -> dict[str, object]:
        """A process's state: name, group, start, stop, now, state, statename, spawnerr,
        exitstatus, logfile, stdout_logfile, stderr_logfile, pid, description."""
        spec = self._names.process(name)
        (snapshot,) = self._names.snapshots([spec.name])
        return process_info(snapshot, spec, capped(self._clock()))

    async def get_all_process_info(self) -> list[dict[str, object]]:
        """Every process's state (as getProcessInfo), by group and name."""
        specs = {p.name: p for p in self.control.config.processes}
        now = capped(self._clock())
        snapshots = sorted(self._names.snapshots(), key=lambda s: (s.group, s.name))
        return [process_info(s, specs.get(s.name), now) for s in snapshots]

    # --- logs -------------------------------------------------------------------------------

    async def read_process_stdout_log(self, name: str, offset: int, length: int) -> str:
        """`length` bytes of the process's stdout log from `offset` (negative: that many from
        the end, with length 0); length 0 reads to the end. At most 1 MiB."""
        return await self._read(name, "stdout", offset, length)

    async def read_process_stderr_log(self, name: str, offset: int, length: int) -> str:
        """`length` bytes of the process's stderr log from `offset` (negative: that many from
        the end, with length 0); length 0 reads to the end. At most 1 MiB."""
        return await self._read(name, "stderr", offset, length)

    async def _read(self, name: str, stream: str, offset: int, length: int) -> str:
        capture = self._names.log(name, stream)
        if capture is None:
            raise RPCFault(Faults.NO_FILE, f"{name}: its {stream} is not captured")
        # supervisord's readFile: a negative offset takes no length; a length is never negative
        if (offset < 0 and length != 0) or length < 0:
            raise RPCFault(Faults.BAD_ARGUMENTS)
        if offset < 0:
            offset = max(offset, -MAX_LOG_READ)
        else:
            length = MAX_LOG_READ if length == 0 else min(length, MAX_LOG_READ)
        try:
            data, _ = await asyncio.to_thread(capture.read, offset, length)
        except OSError as exc:
            raise RPCFault(Faults.FAILED, f"{name}: {exc.strerror}") from None
        return data.decode(errors="replace")

    async def tail_process_stdout_log(self, name: str, offset: int, length: int) -> list[object]:
        """[text, offset, overflow]: up to `length` bytes of the stdout log from `offset`, or
        its last `length` bytes (overflow) when it grew past offset + length; the offset to
        ask from next. At most 1 MiB."""
        return await self._tail(name, "stdout", offset, length)

    async def tail_process_stderr_log(self, name: str, offset: int, length: int) -> list[object]:
        """[text, offset, overflow]: up to `length` bytes of the stderr log from `offset`, or
        its last `length` bytes (overflow) when it grew past offset + length; the offset to
        ask from next. At most 1 MiB."""
        return await self._tail(name, "stderr", offset, length)

    async def _tail(self, name: str, stream: str, offset: int, length: int) -> list[object]:
        capture = self._names.log(name, stream)
        if capture is None:
            return ["", 0, False]
        data, end, overflow = await asyncio.to_thread(
            tail, capture, offset, min(length, MAX_LOG_READ)
        )
        if end > MAXINT:
            raise RPCFault(Faults.FAILED, f"{name}: its {stream} log is over XML-RPC's 2 GiB")
        return [data.decode(errors="replace"), end, overflow]

    async def clear_process_logs(self, name: str) -> bool:
        """FAILED: sentinel does not delete what a program wrote (logs rotate at max_bytes)."""
        self._names.process(name)
        raise RPCFault(Faults.FAILED, f"{name}: sentinel does not delete logs")

    async def clear_all_process_logs(self) -> list[Result]:
        """FAILED for each process: sentinel does not delete what a program wrote."""
        return [
            result(p, Faults.FAILED, "sentinel does not delete logs")
            for p in sorted(self.control.config.processes, key=in_order)
        ]

    # --- what sentinel does not have ---------------------------------------------------------

    async def send_process_stdin(self, name: str, chars: str) -> bool:
        """NO_FILE: sentinel gives its children /dev/null as stdin (NOT_RUNNING if stopped)."""
        (snapshot,) = self._names.snapshots([self._names.process(name).name])
        if snapshot.pid is None or snapshot.state is S.STOPPING:
            raise RPCFault(Faults.NOT_RUNNING, name)
        raise RPCFault(Faults.NO_FILE, f"{name}: its stdin is /dev/null")

    async def send_remote_comm_event(self, kind: str, data: str) -> bool:
        """FAILED: sentinel has no event listener processes."""
        raise RPCFault(Faults.FAILED, "sentinel has no event listener processes")
