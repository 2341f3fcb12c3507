"""[program:x] and [group:x] -> [programs.x], key by key, read with supervisord's defaults.

A key the section does not set is not written: sentinel's defaults are supervisord's
(priority 999, autostart, autorestart on an unexpected exit, exit code 0, 1s to start, 3
retries, TERM then KILL after 10s, logs in the log directory). Keys are read in the order
supervisord reads them, so that each sees the %(...)s names supervisord gives it: the
process number and the program's own `environment` only in `environment`, `directory`, the
log files and `command`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sentinel.importer.sections import Context, Section
from sentinel.importer.tomlout import Table
from sentinel.importer.values import (
    Expansion,
    Instance,
    InstanceNumber,
    ProgramName,
    Template,
    autorestart,
    boolean,
    byte_size,
    exit_codes,
    integer,
    list_of_strings,
    octal,
    signal_name,
    size_text,
)
from sentinel.model import expand_instance

STREAMS = ("stdout", "stderr")
DEFAULT_PRIORITY = 999  # supervisord's, and sentinel's
_LOG_KEYS = (
    "logfile",
    "logfile_maxbytes",
    "logfile_backups",
    "capture_maxbytes",
    "events_enabled",
    "syslog",
)
PROGRAM_KEYS = frozenset(
    {
        "command", "process_name", "numprocs", "numprocs_start", "priority", "autostart",
        "autorestart", "startsecs", "startretries", "exitcodes", "stopsignal", "stopwaitsecs",
        "stopasgroup", "killasgroup", "user", "redirect_stderr", "environment", "directory",
        "umask", "serverurl",
        *(f"{stream}_{key}" for stream in STREAMS for key in _LOG_KEYS),
    }
)  # fmt: skip
# Paths that mean "the daemon's own stream" in a container's supervisord.conf
INHERITED = {
    "/dev/stdout": "stdout", "/dev/fd/1": "stdout", "/proc/self/fd/1": "stdout",
    "/dev/stderr": "stderr", "/dev/fd/2": "stderr", "/proc/self/fd/2": "stderr",
}  # fmt: skip
# the order of the keys in a [programs.x] table, as in sentinel's own examples
ORDER = (
    "command", "directory", "environment", "user", "umask", "instances", "instances_start",
    "name", "priority", "group", "autostart", "autorestart", "exit_codes", "start_seconds",
    "start_retries", "stop_signal", "stop_timeout", "redirect_stderr", "stdout", "stderr",
)  # fmt: skip
_NOT_IN_NAMES = re.compile(r"[^A-Za-z0-9_.\-]")


@dataclass(frozen=True)
class Group:
    """A [group:x]: its name, its priority, and where it is."""

    name: str
    priority: int
    section: str


@dataclass(frozen=True)
class DaemonDefaults:
    """What a daemonized supervisord gives every program: it changes to `directory` and sets
    `umask` for itself, and its children inherit them."""

    directory: Template | None = None
    umask: int | None = None


@dataclass
class Program:
    name: str  # under [programs]
    section: str  # "program:web"
    group: str  # supervisord's group
    table: Table
    processes: list[str]  # process names


def supervisord_name(section: Section, name: str, what: str) -> str:
    """A program or group name as supervisord takes it: no space, colon or slash."""
    name = name.strip()
    bad = next((c for c in " :/" if c in name), None)
    if bad is not None or not name:
        raise section.error(None, f"{what} name {name!r}: supervisord refuses {bad!r} in it")
    return name


def sentinel_name(section: Section, name: str, what: str) -> str:
    """`name` made fit for sentinel (letters, digits, _ . -), with a warning if it changed."""
    fitted = _NOT_IN_NAMES.sub("_", name)
    if not fitted[0].isalnum():
        fitted = "p" + fitted
    if fitted != name:
        section.warn(
            None,
            f"{what} {name!r} is named {fitted!r}: sentinel names are letters, "
            "digits, _ . - (starting with a letter or digit)",
        )
    return fitted


def read_groups(ctx: Context) -> dict[str, Group]:
    """Which [group:x] each program is in."""
    conf = ctx.conf
    member_of: dict[str, Group] = {}
    for name in conf.sections("group:"):
        section = Section(ctx, name, {"host_node_name": ctx.node})
        group_name = sentinel_name(
            section, supervisord_name(section, name.split(":", 1)[1], "group"), "group"
        )
        priority = section.typed("priority", integer)
        group = Group(group_name, DEFAULT_PRIORITY if priority is None else priority, name)
        for program in list_of_strings(section.text("programs") or ""):
            regular, fcgi = f"program:{program}", f"fcgi-program:{program}"
            if regular not in conf.parser and fcgi not in conf.parser:
                raise section.error("programs", f"no [program:{program}] to put in the group")
            if regular in conf.parser and fcgi in conf.parser:
                raise section.error("programs", f"{program} is both a program and an fcgi-program")
            if program in member_of:
                section.warn(
                    "programs",
                    f"{program} is already in [{member_of[program].section}]: "
                    "a sentinel program has one group",
                )
                continue
            member_of[program] = group
    return member_of


def translate(ctx: Context, name: str, group: Group | None, daemon: DaemonDefaults) -> Program:
    """One [program:x] section as a [programs.x] table."""
    program = supervisord_name(Section(ctx, name, {}), name.split(":", 1)[1], "program")
    group_name = group.name if group is not None else program
    names = {"program_name": program, "group_name": group_name, "host_node_name": ctx.node}
    section = Section(ctx, name, names)
    key = sentinel_name(section, program, "program")
    origin = f"[{name}] from {ctx.conf.place(name)}"
    table = Table([origin + (f", in [{group.section}]" if group else "")])
    for unknown in sorted(set(ctx.conf.keys(name)) - PROGRAM_KEYS):
        section.warn(unknown, "not a supervisord key: ignored, as supervisord ignores it")
    # read before the processes are made: no %(process_num) in these
    _order(section, table, group)
    count, start = _instances(section, table)
    _account(section, table, daemon)
    template = _process_name(section, count)
    if template != Template((ProgramName(),)):
        table.set("name", template.toml())
    # read for each process: %(process_num), %(numprocs) and the program's own %(ENV_X)s
    section.names.update({"process_num": InstanceNumber(), "numprocs": count})
    _environment(section, table)
    directory = section.template("directory")
    if directory is None and daemon.directory is not None:
        directory = daemon.directory
        table.comments.append("directory: [supervisord] directory, where supervisord ran them")
    if directory is not None:
        _relative_warning(section, "directory", directory)
        table.set("directory", directory.toml())
    _logs(section, table, count)
    command = section.template("command")
    if command is None:
        raise section.error(None, "no command: supervisord refuses a program without one")
    table.set("command", command.toml())
    _dropped(section)
    table.order(ORDER)
    return Program(key, name, group_name, table, _process_names(template, key, count, start))


def _instances(section: Section, table: Table) -> tuple[int, int]:
    numprocs = section.typed("numprocs", integer)
    start = section.typed("numprocs_start", integer) or 0
    if numprocs is not None and numprocs != 1:
        table.set("instances", numprocs)
    if start:
        table.set("instances_start", start)
    return (1 if numprocs is None else numprocs), start


def _account(section: Section, table: Table, daemon: DaemonDefaults) -> None:
    user = section.template("user")
    if user is not None:
        table.set("user", user.toml())
    umask = section.typed("umask", octal)
    if umask is None and daemon.umask is not None:
        umask = daemon.umask
        table.comments.append("umask: [supervisord] umask, which supervisord's programs inherit")
    if umask is not None:
        table.set("umask", f"{umask:03o}")


def _environment(section: Section, table: Table) -> None:
    """[supervisord]'s environment, then the program's own, which %(ENV_X)s reads from now."""
    own = section.pairs("environment")
    section.names.update({f"ENV_{k}": v for k, v in own.items()})
    merged = {**section.ctx.environment, **own}
    if merged:
        inherited = ["with [supervisord]'s environment"] if section.ctx.environment else []
        variables = Table(inherited)
        for variable, value in merged.items():
            variables.set(variable, value.toml())
        table.set("environment", variables)


def _order(section: Section, table: Table, group: Group | None) -> None:
    """Priority, start and stop: the settings supervisord reads first."""
    priority = section.typed("priority", integer)
    if group is not None:
        note = None
        if priority is not None and priority != group.priority:
            note = (
                f"supervisord ordered [{group.section}] by its priority; this program's own "
                f"({priority}) only ordered it within the group"
            )
        if priority is not None or group.priority != DEFAULT_PRIORITY:
            table.set("priority", group.priority, note)
        table.set("group", group.name)
    elif priority is not None:
        table.set("priority", priority)
    for key, setting, parse in (
        ("autostart", "autostart", boolean),
        ("autorestart", "autorestart", autorestart),
        ("exitcodes", "exit_codes", exit_codes),
        ("startretries", "start_retries", integer),
    ):
        value = section.typed(key, parse)
        if value is not None:
            table.set(setting, value)
    for key, setting in (("startsecs", "start_seconds"), ("stopwaitsecs", "stop_timeout")):
        seconds = section.typed(key, integer)
        if seconds is not None:
            table.set(setting, f"{seconds}s")
    stop_signal = section.typed("stopsignal", signal_name)
    if stop_signal is not None:
        table.set("stop_signal", stop_signal)
    stopasgroup = section.typed("stopasgroup", boolean)
    killasgroup = section.typed("killasgroup", boolean)
    if stopasgroup and killasgroup is False:
        raise section.error("killasgroup", "supervisord refuses stopasgroup without killasgroup")
    if stopasgroup is not None or killasgroup is not None:
        table.comments.append(
            "stopasgroup, killasgroup: sentinel always signals the whole process group"
        )
    redirect = section.typed("redirect_stderr", boolean)
    if redirect is not None:
        table.set("redirect_stderr", redirect)


def _process_name(section: Section, count: int) -> Template:
    raw = section.ctx.conf.raw(section.name, "process_name") or "%(program_name)s"
    if count > 1 and "%(process_num)" not in raw:
        raise section.error("process_name", "with numprocs > 1 it must hold %(process_num)")
    names: dict[str, Expansion] = {
        **section.names,
        "program_name": ProgramName(),
        "process_num": InstanceNumber(),
        "numprocs": count,
    }
    saved, section.names = section.names, names
    try:
        template = section.template("process_name") or Template((ProgramName(),))
    finally:
        section.names = saved
    for part in template.parts:
        if isinstance(part, str) and any(c in part for c in " :/"):
            raise section.error("process_name", "supervisord refuses a space, : or / in names")
    parts = tuple(_NOT_IN_NAMES.sub("_", p) if isinstance(p, str) else p for p in template.parts)
    if parts != template.parts:
        section.warn("process_name", "characters other than letters, digits, _ . - became _")
    return Template(parts)


def _process_names(template: Template, program: str, count: int, start: int) -> list[str]:
    """The processes' names, as sentinel makes them from the template (config.process_name)."""
    text = template.toml().replace("{program}", program)
    return [expand_instance(text, n) for n in range(start, start + count)]


def _logs(section: Section, table: Table, count: int) -> None:
    redirect = table.get("redirect_stderr") is True
    for stream in STREAMS:
        path = section.template(f"{stream}_logfile")
        max_bytes = section.typed(f"{stream}_logfile_maxbytes", byte_size)
        backups = section.typed(f"{stream}_logfile_backups", integer)
        if stream == "stderr" and redirect:
            if path is not None and (path.literal or "").lower() not in ("auto", "none", "off"):
                section.warn(
                    f"{stream}_logfile",
                    "ignored with redirect_stderr, as supervisord "
                    "ignores it: stderr goes into the stdout log",
                )
            continue
        spec: dict[str, object] = {}
        if path is not None:
            spec["path"] = _log_path(section, stream, path, count)
        if spec.get("path") != "inherit":
            if max_bytes is not None:
                spec["max_bytes"] = size_text(max_bytes)
            if backups is not None:
                spec["backups"] = backups
        if spec:
            table.set(stream, spec)


def _log_path(section: Section, stream: str, path: Template, count: int) -> str:
    key = f"{stream}_logfile"
    word = (path.literal or "").lower()
    if word in ("none", "off"):
        return "none"
    if word == "auto":
        return "auto"
    if word == "syslog":
        section.warn(key, "syslog: sentinel has no syslog output; the log is dropped")
        return "none"
    if path.literal in INHERITED:
        if INHERITED[path.literal] != stream:
            section.warn(
                key,
                f'{path.literal}: with path = "inherit" the {stream} lines go to '
                f"sentinel's own {stream}",
            )
        return "inherit"
    _relative_warning(section, key, path)
    if count > 1 and not any(isinstance(p, Instance) for p in path.parts):
        section.warn(key, "every process writes this one file: add %(process_num)d to it")
    return path.toml()


def _relative_warning(section: Section, key: str, path: Template) -> None:
    first = path.parts[0] if path.parts else ""
    if isinstance(first, str) and not first.startswith("/"):
        section.warn(
            key,
            "a relative path: supervisord read it from its working directory, "
            "sentinel reads it from the config file's directory",
        )


def _dropped(section: Section) -> None:
    for stream in STREAMS:
        if section.typed(f"{stream}_syslog", boolean):
            section.warn(
                f"{stream}_syslog",
                "sentinel has no syslog output: ship the log "
                'files, or use path = "inherit" under systemd for the journal',
            )
        if section.typed(f"{stream}_capture_maxbytes", byte_size):
            section.warn(
                f"{stream}_capture_maxbytes",
                "capture mode (PROCESS_COMMUNICATION events) has no equivalent",
            )
        if section.typed(f"{stream}_events_enabled", boolean):
            section.warn(
                f"{stream}_events_enabled",
                "PROCESS_LOG events have no equivalent: `sentinel tail -f` follows a log",
            )
    serverurl = section.text("serverurl")
    if serverurl is not None and serverurl.strip().upper() != "AUTO":
        section.warn(
            "serverurl",
            "supervisor.childutils in the program reads it from "
            "SUPERVISOR_SERVER_URL: set that in its environment if it talks to sentinel",
        )
