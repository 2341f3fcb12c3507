"""What Supervisor's clients read, built from sentinel's snapshots and config: the structs of
getProcessInfo and getAllConfigInfo, the per-process results of group calls, the rules of
supervisord's that decide them (its state sets, spawnerr, the execv checks before a spawn,
tailFile), and processes found by Supervisor's names. rpcinterface.py answers with these.
"""

from __future__ import annotations

import datetime
import os
import pwd
import shlex
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from sentinel.api.control import Control, LogReader
from sentinel.api.xmlrpc import Faults, RPCFault
from sentinel.errors import NoSuchProcess
from sentinel.model import Config, ProcessSpec, parse_signal
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState

S = ProcessState

TOO_QUICK = "Exited too quickly (process log may have details)"  # supervisord's words
MAXINT = 2**31 - 1  # XML-RPC integers are 32-bit: times are capped as supervisord caps them

# Supervisor's state sets (supervisor/states.py), which decide its faults: sentinel's own
# sets differ (BACKOFF), but its clients expect these.
RUNNING_STATES = frozenset({S.RUNNING, S.BACKOFF, S.STARTING})
STOPPED_STATES = frozenset({S.STOPPED, S.EXITED, S.FATAL, S.UNKNOWN})
SIGNALLABLE_STATES = frozenset({S.RUNNING, S.STARTING, S.STOPPING})

Result = dict[str, Any]  # one process's entry in a group's answer: name, group, status, description


class Lookup:
    """Processes by Supervisor's names (name, group:name, group:*), in the running config and
    as they are now; BAD_NAME for a name that is neither."""

    def __init__(self, control: Control) -> None:
        self.control = control

    def target(self, name: str) -> tuple[str, ProcessSpec | None]:
        """(group, None) for `group:*` or `group:`; (its group, the process) otherwise."""
        group, colon, process = name.partition(":")
        if colon and process in ("", "*"):
            self.group(group)
            return group, None
        spec = self.process(name)
        return spec.group, spec

    def process(self, name: str) -> ProcessSpec:
        group, colon, process = name.partition(":")
        spec = self.control.config.process(process if colon else name)
        if spec is None or (colon and spec.group != group):
            raise RPCFault(Faults.BAD_NAME, name)
        return spec

    def group(self, name: str) -> list[ProcessSpec]:
        members = groups(self.control.config).get(name)
        if members is None:
            raise RPCFault(Faults.BAD_NAME, name)
        return list(members)

    def snapshots(self, names: Iterable[str] | None = None) -> list[ProcessSnapshot]:
        """The named processes (None: all of them, which may be none)."""
        if names is None:
            try:
                return self.control.processes.snapshots()
            except NoSuchProcess:  # "all" selects nothing: there are no processes
                return []
        names = list(names)
        if not names:
            return []
        try:
            return self.control.processes.snapshots(names)
        except NoSuchProcess as exc:  # removed by a reload since the name was looked up
            raise RPCFault(Faults.BAD_NAME, str(exc)) from None

    def log(self, name: str, stream: str) -> LogReader | None:
        spec = self.process(name)
        try:
            return self.control.processes.log(spec.name, stream)
        except NoSuchProcess:
            raise RPCFault(Faults.BAD_NAME, name) from None

    async def command(
        self,
        command: Callable[..., Awaitable[dict[str, bool]]],
        specs: list[ProcessSpec],
        wait: bool,
    ) -> dict[str, bool]:
        if not specs:
            return {}
        try:
            return await command([p.name for p in specs], wait)
        except NoSuchProcess as exc:  # removed by a reload meanwhile
            raise RPCFault(Faults.BAD_NAME, str(exc)) from None


def process_info(
    snapshot: ProcessSnapshot, spec: ProcessSpec | None, now: int
) -> dict[str, object]:
    """getProcessInfo's struct, as supervisord builds it."""
    state = snapshot.state
    start = capped(snapshot.start_time or 0)
    stop = capped(snapshot.stop_time or 0)
    pid = snapshot.pid or 0
    error = spawnerr(snapshot, spec)
    stdout = str(spec.stdout_log) if spec is not None and spec.stdout_log else ""
    stderr = str(spec.stderr_log) if spec is not None and spec.stderr_log else ""
    if state is S.RUNNING:
        description = f"pid {pid}, uptime {datetime.timedelta(seconds=max(now - start, 0))}"
    elif snapshot.waiting_for:  # STOPPED, its start held: say what for, as `status` does
        description = snapshot.detail
    elif state in (S.FATAL, S.BACKOFF):
        description = error or f'unknown error (try "tail {snapshot.name}")'
    elif state in (S.STOPPED, S.EXITED):
        description = (
            time.strftime("%b %d %I:%M %p", time.localtime(stop)) if start else "Not started"
        )
    else:
        description = ""
    code = snapshot.exit_code
    return {
        "name": snapshot.name,
        "group": snapshot.group,
        "start": start,
        "stop": stop,
        "now": now,
        "state": int(state),
        "statename": state.name,
        "spawnerr": error,
        "exitstatus": 0 if code is None else -1 if code < 0 else code,  # -1: a signal
        "logfile": stdout,
        "stdout_logfile": stdout,
        "stderr_logfile": stderr,
        "pid": pid,
        "description": description,
    }


def spawnerr(snapshot: ProcessSnapshot, spec: ProcessSpec | None) -> str:
    """supervisord's spawnerr: why the last start failed (BACKOFF, FATAL), or why it exited
    badly (EXITED); empty otherwise."""
    state = snapshot.state
    if state in (S.BACKOFF, S.FATAL):
        if snapshot.detail.startswith("spawn error"):  # exec failed: sentinel's words say why
            return snapshot.detail
        start, stop = snapshot.start_time, snapshot.stop_time
        start_seconds = spec.settings.start_delay if spec is not None else 0.0
        if start is not None and stop is not None and stop - start < start_seconds:
            return TOO_QUICK
        return snapshot.detail
    if state is S.EXITED and spec is not None:
        code = snapshot.exit_code
        if code is not None and (code < 0 or code not in spec.settings.exit_codes):
            return f"Bad exit code {-1 if code < 0 else code}"
    return ""


def config_info(spec: ProcessSpec, group_priority: int, in_use: bool) -> dict[str, object]:
    """getAllConfigInfo's struct for one process, with supervisord's keys."""
    s = spec.settings
    info: dict[str, object] = {
        "autostart": s.autostart,
        "directory": s.directory or "none",
        "uid": uid_of(s.user),
        "command": shlex.join(s.command),
        "exitcodes": list(s.exit_codes),
        "group": spec.group,
        "group_prio": group_priority,
        "inuse": in_use,
        "killasgroup": True,  # sentinel signals the whole process group
        "name": spec.name,
        "process_prio": s.priority,
        "redirect_stderr": s.redirect_stderr,
        "startretries": s.start_retries,
        "startsecs": number(s.start_delay),
        "stopsignal": int(s.stop_signal),
        "stopwaitsecs": number(s.stop_timeout),
        "serverurl": "none",  # children get no SUPERVISOR_SERVER_URL
    }
    for stream, path, log_spec in (
        ("stdout", spec.stdout_log, s.stdout),
        ("stderr", spec.stderr_log, s.stderr),
    ):
        info |= {
            f"{stream}_capture_maxbytes": 0,
            f"{stream}_events_enabled": False,
            f"{stream}_logfile": str(path) if path else "none",
            f"{stream}_logfile_backups": log_spec.backups,
            f"{stream}_logfile_maxbytes": capped(log_spec.max_bytes),
            f"{stream}_syslog": False,
        }
    return info


def command_fault(spec: ProcessSpec) -> RPCFault | None:
    """What supervisord's get_execv_args finds before it spawns: NO_FILE when the command is
    not there (on the child's PATH), NOT_EXECUTABLE when it is no program; None when it may
    run (whether it does is the spawn's answer)."""
    program = spec.settings.command[0]
    if "/" in program:
        candidates = [os.path.join(spec.settings.directory or "", program)]
    else:
        path = spec.settings.environment.get("PATH", os.environ.get("PATH", os.defpath))
        candidates = [os.path.join(d, program) for d in path.split(os.pathsep)]
    for filename in candidates:
        try:
            mode = os.stat(filename).st_mode
        except OSError:
            continue
        if stat.S_ISDIR(mode):
            return RPCFault(Faults.NOT_EXECUTABLE, f"command at {filename!r} is a directory")
        if not mode & 0o111:
            return RPCFault(Faults.NOT_EXECUTABLE, f"command at {filename!r} is not executable")
        return None
    return RPCFault(Faults.NO_FILE, f"can't find command {program!r}")


def tail(capture: LogReader, offset: int, length: int) -> tuple[bytes, int, bool]:
    """supervisord's tailFile: up to `length` bytes from `offset`, or the last `length` bytes
    (overflow) when the log has grown past offset + length; and the log's size."""
    try:
        size = os.stat(capture.path).st_size
    except FileNotFoundError:
        return b"", offset, False
    overflow = False
    if size > offset + length:
        overflow = True
        offset = size - 1
    if offset + length > size:
        if offset > size - 1:
            length = 0
        offset = size - length
    offset, length = max(offset, 0), max(length, 0)
    data = capture.read(offset, length)[0] if length else b""
    return data, size, overflow


def result(spec: ProcessSpec, code: Faults, detail: str = "") -> Result:
    """One process's entry in a group's answer."""
    text = "OK" if code is Faults.SUCCESS else RPCFault(code, detail or namespec(spec)).text
    return {"name": spec.name, "group": spec.group, "status": int(code), "description": text}


def fault_of(entry: Result) -> RPCFault:
    """A one-process answer's failure, as the fault it records."""
    return RPCFault(Faults(entry["status"]), str(entry["description"]).partition(": ")[2])


def groups(config: Config) -> dict[str, tuple[ProcessSpec, ...]]:
    groups: dict[str, list[ProcessSpec]] = {}
    for spec in config.processes:
        groups.setdefault(spec.group, []).append(spec)
    return {name: tuple(sorted(members, key=in_order)) for name, members in groups.items()}


def namespec(spec: ProcessSpec) -> str:
    """How Supervisor names a process: "web" alone in its group, else "group:web_0"."""
    return spec.name if spec.name == spec.group else f"{spec.group}:{spec.name}"


def in_order(spec: ProcessSpec) -> tuple[int, str]:
    return spec.priority, spec.name


def signal_of(value: str | int) -> signal.Signals:
    """A signal as supervisord's signal_number takes it: a number, or a name with or without
    SIG; BAD_SIGNAL otherwise."""
    try:
        if isinstance(value, str) and value.strip().isdigit():
            return parse_signal(int(value))
        return parse_signal(value)
    except ValueError:
        raise RPCFault(Faults.BAD_SIGNAL, str(value)[:100]) from None


def capped(value: float) -> int:
    return min(max(int(value), -MAXINT - 1), MAXINT)


def number(value: float) -> int | float:
    return int(value) if value.is_integer() else value


def uid_of(user: str | None) -> int | str:
    if user is None:
        return "none"
    if user.isdigit():
        return capped(int(user))
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return "none"
