"""[eventlistener:x] -> liveness probes, for superlance's httpok and memmon; a warning with
what to use instead for any other listener.

httpok GETs a URL on each TICK event and restarts the named processes when the answer is not
the expected status (or lacks a string); memmon restarts a process whose RSS is over a limit.
Both act on the first failure, so the probes have failure_threshold = 1. Their options are
read with getopt and the option strings of superlance 2.0 (plus httpok's older -w).
"""

from __future__ import annotations

import getopt
import os
import shlex

from sentinel.importer.programs import Program
from sentinel.importer.sections import Context, Section
from sentinel.importer.tomlout import Table
from sentinel.importer.values import byte_size, list_of_strings, size_text

TICKS = {"TICK_5": 5, "TICK_60": 60, "TICK_3600": 3600}
HTTPOK_OPTIONS = ("hp:at:c:b:s:m:g:d:eEn:w:", [
    "help", "program=", "any", "timeout=", "code=", "body=", "sendmail_program=", "email=",
    "gcore=", "coredir=", "eager", "not-eager", "name=", "delay=",
])  # fmt: skip
MEMMON_OPTIONS = ("hcp:g:a:s:m:n:u:", [
    "help", "cumulative", "program=", "group=", "any=", "sendmail_program=", "email=",
    "uptime=", "name=",
])  # fmt: skip
ALERTERS = frozenset(
    {
        "crashmail", "crashmailbatch", "fatalmailbatch", "crashsms", "crashslack",
        "crashpushover", "crashmqtt", "crashdingtalk", "crashwxwork",
    }
)  # fmt: skip
NOTIFY_ADVICE = (
    "sentinel's [notify] sends alerts through apprise (mailto://, slack://, any apprise URL) "
    'for the events you list: events = ["fatal", "restart", "flapping", ...]'
)
LISTENER_ADVICE = (
    "sentinel runs no event listeners: [notify] sends alerts, liveness probes restart what "
    "stops answering, and GET /api/v1/events streams every state change"
)


def translate(ctx: Context, name: str, programs: list[Program]) -> None:
    pool = name.split(":", 1)[1]
    names = {"program_name": pool, "group_name": pool, "host_node_name": ctx.node}
    section = Section(ctx, name, {**names, "process_num": 0, "numprocs": 1})
    command = section.template("command")
    try:
        argv = shlex.split(command.toml()) if command is not None else []
    except ValueError as exc:  # supervisord would fail to start it, the same way
        section.warn("command", f"cannot be split into arguments ({exc}): not translated")
        return
    tool, args = _tool(argv)
    if tool not in ("httpok", "memmon"):
        advice = NOTIFY_ADVICE if tool in ALERTERS else LISTENER_ADVICE
        section.warn(None, f"not translated ({tool or 'an event listener'}): {advice}")
        return
    events = [e.upper() for e in list_of_strings(section.text("events") or "")]
    periods = [TICKS[e] for e in events if e in TICKS]
    if not periods:
        section.warn("events", f"{tool} acts on TICK events only, and has none: not translated")
        return
    short, long = HTTPOK_OPTIONS if tool == "httpok" else MEMMON_OPTIONS
    try:
        options, positional = getopt.getopt(args, short, long)
    except getopt.GetoptError as exc:
        section.warn("command", f"{tool} would refuse its options ({exc}): not translated")
        return
    if tool == "httpok":
        _httpok(section, options, positional, min(periods), programs)
    else:
        _memmon(section, options, min(periods), programs)


def _tool(argv: list[str]) -> tuple[str | None, list[str]]:
    """The superlance tool a listener's command runs, and its arguments."""
    for i, arg in enumerate(argv):
        if arg == "-m" and i + 1 < len(argv) and argv[i + 1].startswith("superlance."):
            return argv[i + 1].split(".", 1)[1], argv[i + 2 :]
        base = os.path.basename(arg).removesuffix(".py")
        if base in ("httpok", "memmon") or base in ALERTERS:
            return base, argv[i + 1 :]
    return None, []


def _httpok(
    section: Section,
    options: list[tuple[str, str]],
    positional: list[str],
    period: int,
    programs: list[Program],
) -> None:
    if len(positional) != 1:
        section.warn("command", "httpok takes one URL: not translated")
        return
    check: dict[str, object] = {"url": positional[0]}
    timeout, delay, codes, names, everything = 10, 0, [], [], False
    for option, value in options:
        if option in ("-p", "--program"):
            names.append(value)
        elif option in ("-a", "--any"):
            everything = True
        elif option in ("-t", "--timeout", "-w", "--delay", "-c", "--code"):
            if not value.isdigit():
                section.warn("command", f"httpok {option} {value}: not a number, left out")
            elif option in ("-t", "--timeout"):
                timeout = int(value)
            elif option in ("-w", "--delay"):
                delay = int(value)
            else:
                codes.append(value)
        elif option in ("-b", "--body"):
            check["body_contains"] = value
        elif option in ("-m", "--email"):
            section.warn("command", f"httpok -m {value}: {NOTIFY_ADVICE}")
        elif option in ("-d", "--coredir"):
            section.warn("command", "httpok -d: sentinel takes no core dump before a restart")
    if codes:
        check["expect_status"] = ",".join(codes)
    status = "" if codes else "; httpok wanted 200, sentinel passes 200-399 (as the kubelet)"
    comment = f"from [{section.name}] (superlance httpok): the first failure restarts{status}"
    settings: dict[str, object] = {"http": check}
    if delay:
        settings["initial_delay"] = f"{delay}s"
    settings |= {"period": f"{period}s", "timeout": f"{timeout}s", "failure_threshold": 1}
    targets = programs if everything else _named(section, "httpok -p", names, programs)
    for program in targets:
        _attach(section, program, comment, settings)


def _memmon(
    section: Section, options: list[tuple[str, str]], period: int, programs: list[Program]
) -> None:
    by_name: dict[str, int] = {}
    by_group: dict[str, int] = {}
    limit_all: int | None = None
    cumulative = False
    for option, value in options:
        try:
            if option in ("-p", "--program", "-g", "--group"):
                name, _, size = value.partition("=")
                into = by_name if option in ("-p", "--program") else by_group
                into[name] = byte_size(size)
            elif option in ("-a", "--any"):
                limit_all = byte_size(value)
        except ValueError:
            section.warn("command", f"memmon {option} {value}: memmon would refuse it; left out")
        if option in ("-c", "--cumulative"):
            cumulative = True
        elif option in ("-m", "--email"):
            section.warn("command", f"memmon -m {value}: {NOTIFY_ADVICE}")
    for program in programs:
        limits = [size for process, size in by_name.items() if _matches(process, program)]
        limits += [by_group[program.group]] if program.group in by_group else []
        limits += [limit_all] if limit_all is not None else []
        if not limits:
            continue
        limit = str(size_text(min(limits)))
        scope = "" if cumulative else "; memmon measured the main process, the check its tree"
        comment = f"from [{section.name}] (superlance memmon): over {limit} RSS restarts{scope}"
        settings = {
            "exec": {"check": "memory", "args": ["--critical", limit]},
            "period": f"{period}s",
            "failure_threshold": 1,
        }
        _attach(section, program, comment, settings)
    _named(section, "memmon -p", list(by_name), programs)


def _matches(name: str, program: Program) -> bool:
    """Whether a process name, or GROUP:NAME, as the listeners take them, is one of its."""
    group, sep, process = name.rpartition(":")
    if sep:
        return group == program.group and process in program.processes
    return name in program.processes


def _named(section: Section, what: str, names: list[str], programs: list[Program]) -> list[Program]:
    chosen = []
    for name in names:
        matching = [p for p in programs if _matches(name, p)]
        if not matching:
            section.warn("command", f"{what} {name}: no such process")
        for program in matching:
            if len(program.processes) > 1:
                section.warn(
                    "command",
                    f"{what} {name}: every process of {program.name} gets "
                    "the probe (a program's processes share their settings)",
                )
        chosen += [p for p in matching if p not in chosen]
    return chosen


def _attach(section: Section, program: Program, comment: str, settings: dict[str, object]) -> None:
    if "liveness" in program.table:
        section.warn(
            "command",
            f"[programs.{program.name}] has a liveness probe already (a program has one): "
            "this one is left out",
        )
        return
    comments = [comment] + (["every instance gets it"] if len(program.processes) > 1 else [])
    probe = Table(comments)
    for key, value in settings.items():
        probe.set(key, value)
    program.table.set("liveness", probe)
