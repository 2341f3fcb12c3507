"""The client commands: each asks every server (fleet.py) and prints the merged answer.

Tables and lines for people, `--json` for programs: the API's own objects, with a `host` key
first when answers are labelled with their host (see servers.py); a command whose answer is
one object (reload, shutdown) prints an array of them then.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable
from typing import Any, TextIO, TypeVar
from urllib.parse import quote

from sentinel.cli.client import Daemon, DaemonError
from sentinel.cli.describe import outcome, reload_lines, status_table
from sentinel.cli.exitcodes import EXIT_NOT_IN_STATE
from sentinel.cli.fleet import Answer, Fleet
from sentinel.cli.output import Style
from sentinel.errors import ControlError
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState

EVENT_HISTORY = "100"


class Command:
    """What every client command has at hand: the fleet, the parsed arguments, stdout."""

    def __init__(self, fleet: Fleet, args: argparse.Namespace, stdout: TextIO = sys.stdout):
        self.fleet, self.args, self.stdout = fleet, args, stdout
        self.style = Style.of(stdout)

    def emit(self, *lines: str) -> None:
        with self.fleet.lock:
            for line in lines:
                print(line, file=self.stdout)
            self.stdout.flush()

    def emit_json(self, value: object) -> None:
        self.emit(json.dumps(value, indent=2))

    def tagged(self, answer: Answer[Any], value: dict[str, Any]) -> dict[str, Any]:
        host = self.fleet.host(answer.server)
        return value if host is None else {"host": host, **value}

    def prefixed(self, answer: Answer[Any], text: str) -> str:
        host = self.fleet.host(answer.server)
        return text if host is None else f"{host.ljust(self._host_width())}  {text}"

    def _host_width(self) -> int:
        return max(len(s.label) for s in self.fleet.servers)


# --- status -----------------------------------------------------------------------------------


def status(cmd: Command) -> int:
    names: list[str] = cmd.args.names

    def work(daemon: Daemon, answer: Answer[list[ProcessSnapshot]]) -> list[ProcessSnapshot]:
        if not names:
            return snapshots(daemon.json("GET", "/api/v1/programs"))
        return each_name(cmd, answer, names, lambda name: selected(daemon, name))

    answers = cmd.fleet.ask(work)
    rows = [(a, p) for a in answers for p in a.value or []]
    answered = any(a.failure is None for a in answers)  # else the errors say it all
    if answered and cmd.args.json:
        cmd.emit_json([cmd.tagged(a, p.to_dict()) for a, p in rows])
    elif answered:
        cmd.emit(*status_table([(cmd.fleet.host(a.server), p) for a, p in rows], cmd.style))
    codes = [
        EXIT_NOT_IN_STATE
        for a in answers
        if names and any(p.state is not ProcessState.RUNNING for p in a.value or [])
    ]
    return cmd.fleet.finish(answers, codes)


T = TypeVar("T")


def each_name(
    cmd: Command, answer: Answer[Any], names: Iterable[str], act: Callable[[str], list[T]]
) -> list[T]:
    """`act` on each name in turn; a name this host refuses (no such process, a bad signal)
    is reported and the others go on. A host that cannot be reached stops here."""
    done: list[T] = []
    for name in names:
        try:
            done += act(name)
        except DaemonError as exc:
            if exc.unreachable:
                raise
            cmd.fleet.problem(answer, exc)
        except ControlError as exc:  # a group the CLI found empty
            cmd.fleet.problem(answer, exc)
    return done


def selected(daemon: Daemon, name: str) -> list[ProcessSnapshot]:
    """The processes NAME, GROUP:NAME, GROUP:* or all select, as the API describes them."""
    group, sep, process = name.partition(":")
    if name != "all" and not (sep and process == "*"):
        path = f"/api/v1/programs/{quote(process if sep else name, safe='')}"
        return snapshots([daemon.json("GET", path)])
    everything = snapshots(daemon.json("GET", "/api/v1/programs"))
    if name == "all":
        return everything
    chosen = [p for p in everything if p.group == group]
    if not chosen:
        raise ControlError(f"no such group: {group}")
    return chosen


def snapshots(raw: Any) -> list[ProcessSnapshot]:
    try:
        return [ProcessSnapshot.from_dict(item) for item in raw]
    except (KeyError, TypeError, ValueError) as exc:
        raise ControlError(f"the daemon answered something unexpected ({exc!r})") from exc


def command_path(name: str, verb: str) -> str:
    group, sep, process = name.partition(":")
    if name == "all":
        return f"/api/v1/all/{verb}"
    if sep and process == "*":
        return f"/api/v1/groups/{quote(group, safe='')}/{verb}"
    return f"/api/v1/programs/{quote(process if sep else name, safe='')}/{verb}"


# --- start, stop, restart, signal -------------------------------------------------------------

Results = list[tuple[ProcessSnapshot, bool]]


def _act(
    cmd: Command,
    verb: str,
    params: dict[str, str],
    waits: bool,
    rolls: dict[str, dict[str, Any]] | None = None,
) -> list[Answer[Results]]:
    """`verb` on each name; with `rolls`, what each rolling restart said is kept there, by
    process name."""

    def act(daemon: Daemon, name: str) -> Results:
        path = command_path(name, verb)
        body = daemon.json("POST", path, params=params or None, waits=waits)
        try:
            for result in body.get("rolling") or () if rolls is not None else ():
                for process in (*result["restarted"], *result["left"], result["stopped_at"]):
                    if process is not None and rolls is not None:
                        rolls[process] = result
            done = body["results"]
            return [(p, bool(done[p.name])) for p in snapshots(body["processes"])]
        except (KeyError, TypeError) as exc:
            raise ControlError(f"the daemon answered something unexpected ({exc!r})") from exc

    return cmd.fleet.ask(
        lambda daemon, answer: each_name(cmd, answer, cmd.args.names, lambda n: act(daemon, n))
    )


def control(cmd: Command) -> int:
    verb, waited = cmd.args.command, not cmd.args.no_wait
    params = {"wait": "false"} if not waited else {}
    rolls: dict[str, dict[str, Any]] = {}
    if getattr(cmd.args, "rolling", False):
        params["rolling"] = "true"
    answers = _act(cmd, verb, params, waits=waited, rolls=rolls)
    return _results(cmd, answers, lambda ok, p: outcome(verb, ok, waited, p, rolls.get(p.name)))


def signal(cmd: Command) -> int:
    answers = _act(cmd, "signal", {"signal": cmd.args.signal}, waits=False)
    return _results(cmd, answers, lambda ok, _: "signalled" if ok else "ERROR (not running)")


def _results(
    cmd: Command, answers: list[Answer[Results]], words: Callable[[bool, ProcessSnapshot], str]
) -> int:
    done = [(a, p, ok) for a in answers for p, ok in a.value or []]
    if cmd.args.json:
        cmd.emit_json(
            [cmd.tagged(a, {"name": p.name, "ok": ok, "process": p.to_dict()}) for a, p, ok in done]
        )
    else:
        cmd.emit(
            *(cmd.prefixed(a, f"{p.name}: {cmd.style.line(words(ok, p))}") for a, p, ok in done)
        )
    codes = [EXIT_NOT_IN_STATE for _, _, ok in done if not ok]
    return cmd.fleet.finish(answers, codes)


# --- reload, shutdown -------------------------------------------------------------------------


Accepted = list[tuple[Answer[Any], dict[str, Any]]]


def _post_refusable(
    cmd: Command, path: str, refused_head: str, *, waits: bool = False
) -> tuple[list[Answer[Any]], Accepted, int]:
    """POST `path` to every daemon; a 400 is a refusal, told on stderr under `refused_head`.
    Returns the answers, the accepted results, and how many refused."""
    answers = cmd.fleet.ask(
        lambda daemon, _: dict(daemon.json("POST", path, waits=waits, accept=(400,)))
    )
    answered = [(a, a.value) for a in answers if a.value is not None]
    if cmd.args.json:
        emit_objects(cmd, answered)
    accepted = [(a, result) for a, result in answered if result.get("ok")]
    for a, result in answered:
        if not result.get("ok"):
            cmd.fleet.warn(f"{cmd.prefixed(a, refused_head)}\n{result.get('error', '')}")
    return answers, accepted, len(answered) - len(accepted)


def reload(cmd: Command) -> int:
    # 400: the new config was rejected; the body says why
    answers, accepted, failed = _post_refusable(
        cmd, "/api/v1/reload", "reload rejected, the running config is unchanged:", waits=True
    )
    for a, result in accepted:
        if not cmd.args.json:
            cmd.emit(*(cmd.prefixed(a, line) for line in reload_lines(result)))
        if result.get("error"):  # applied, but a rolling restart stopped
            failed += 1
            cmd.fleet.warn(cmd.prefixed(a, str(result["error"])))
    return cmd.fleet.finish(answers, [EXIT_NOT_IN_STATE] * failed)


def reexec(cmd: Command) -> int:
    # 400: the config on disk would be refused; nothing happened
    answers, accepted, refused = _post_refusable(
        cmd, "/api/v1/reexec", "re-exec refused, nothing changed:"
    )
    if not cmd.args.json:
        for a, _ in accepted:
            cmd.emit(cmd.prefixed(a, "re-executing; every program keeps running"))
    return cmd.fleet.finish(answers, [EXIT_NOT_IN_STATE] * refused)


def shutdown(cmd: Command) -> int:
    answers = cmd.fleet.ask(lambda daemon, _: dict(daemon.json("POST", "/api/v1/shutdown")))
    answered = [(a, a.value) for a in answers if a.value is not None]
    if cmd.args.json:
        emit_objects(cmd, answered)
    else:
        cmd.emit(*(cmd.prefixed(a, "shutting down") for a, _ in answered))
    return cmd.fleet.finish(answers)


def emit_objects(cmd: Command, answered: Iterable[tuple[Answer[Any], dict[str, Any]]]) -> None:
    """One object alone; an array of them, each with its host, when answers are labelled."""
    objects = [cmd.tagged(a, value) for a, value in answered]
    if cmd.fleet.labelled:
        cmd.emit_json(objects)
    elif objects:
        cmd.emit_json(objects[0])
