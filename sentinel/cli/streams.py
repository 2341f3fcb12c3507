"""`tail` and `events`: what a process printed and what happened, from every server.

A program's output goes to a terminal escaped (tabs and newlines kept) unless `--raw`; into
a pipe or a file it passes unchanged. From several servers, `tail` prints each host's part
under a `==> HOST <==` header, as tail(1) does for several files, and `tail -f` puts the host
in front of each line; `events` merges every host's events by time.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

from sentinel.cli.client import Daemon
from sentinel.cli.commands import EVENT_HISTORY, Command, emit_objects
from sentinel.cli.describe import event_line
from sentinel.cli.fleet import Answer

LogPart = tuple[bytes, int]  # the bytes, and the offset after them


def tail(cmd: Command) -> int:
    args = cmd.args
    stream = "stderr" if args.stderr else "stdout"
    path = f"/api/v1/programs/{quote(args.name, safe='')}/log"
    if args.follow:
        return _follow(cmd, f"{path}/follow", stream)

    def work(daemon: Daemon, _: Answer[LogPart]) -> LogPart:
        response = daemon.call("GET", path, params={"stream": stream})
        return response.content, int(response.headers.get("X-Log-Offset", "-1"))

    answers = cmd.fleet.ask(work)
    answered = [(a, a.value) for a in answers if a.value is not None]
    if args.json:
        emit_objects(
            cmd,
            [
                (a, _log_object(args.name, stream, data.decode(errors="replace"), offset))
                for a, (data, offset) in answered
            ],
        )
        return cmd.fleet.finish(answers)
    for answer, (data, _) in answered:
        host = cmd.fleet.host(answer.server)
        if host is not None:
            cmd.emit(f"==> {host} <==")
        _write(cmd, data)
        if host is not None and data and not data.endswith(b"\n"):
            _write(cmd, b"\n")
    return cmd.fleet.finish(answers)


def _follow(cmd: Command, path: str, stream: str) -> int:
    def work(daemon: Daemon, answer: Answer[None]) -> None:
        host = cmd.fleet.host(answer.server)
        pending = ""  # a line not yet ended, held back to put the host in front of it
        for chunk in daemon.stream(path, {"stream": stream}):
            text = str(chunk.get("data", ""))
            if cmd.args.json:
                log = _log_object(cmd.args.name, stream, text)
                cmd.emit(json.dumps(cmd.tagged(answer, log)))
            elif host is None:
                _write(cmd, text.encode())
            else:
                *lines, pending = (pending + text).split("\n")
                _write(cmd, "".join(f"{host}: {line}\n" for line in lines).encode())
        if pending:
            _write(cmd, f"{host}: {pending}\n".encode())

    return cmd.fleet.finish(cmd.fleet.ask(work))


def _log_object(name: str, stream: str, text: str, offset: int | None = None) -> dict[str, Any]:
    found: dict[str, Any] = {"name": name, "stream": stream}
    if offset is not None:
        found["offset"] = offset  # where the next read goes on from (the API's X-Log-Offset)
    return {**found, "data": text}


def _write(cmd: Command, data: bytes) -> None:
    """A program's output: as it is (--raw, or not a terminal), else escaped."""
    with cmd.fleet.lock:
        out = cmd.stdout
        binary = getattr(out, "buffer", None)
        if (cmd.args.raw or not cmd.style.terminal) and binary is not None:
            out.flush()
            binary.write(data)
            binary.flush()
        else:
            text = data.decode(errors="backslashreplace")
            out.write(text if cmd.args.raw else cmd.style.text(text))
            out.flush()


def events(cmd: Command) -> int:
    follow = cmd.args.follow
    params = {"history": EVENT_HISTORY, "follow": "true" if follow else "false"}

    def show(answer: Answer[Any], event: dict[str, Any]) -> None:
        if cmd.args.json:
            cmd.emit(json.dumps(cmd.tagged(answer, event)))
        else:
            cmd.emit(event_line(event, cmd.fleet.host(answer.server), cmd.style))

    def work(daemon: Daemon, answer: Answer[list[dict[str, Any]]]) -> list[dict[str, Any]]:
        if not follow:
            return list(daemon.stream("/api/v1/events", params))
        for event in daemon.stream("/api/v1/events", params):
            show(answer, event)
        return []

    answers = cmd.fleet.ask(work)
    merged = sorted(
        (
            (float(e.get("timestamp", 0)), i, a, e)
            for i, a in enumerate(answers)
            for e in a.value or []
        ),
        key=lambda item: item[:2],
    )
    for _, _, answer, event in merged:
        show(answer, event)
    return cmd.fleet.finish(answers)
