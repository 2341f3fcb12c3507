"""The JSON API's OpenAPI document, as data: served at `GET /api/v1/openapi.json`.

OpenAPI 3.2, for its way of describing an event stream (`itemSchema`: one schema per event).
What the code owns, the document takes from it: query parameters from params.py (what the
endpoints read them with), events from their dataclasses, states and signals from their
enums, limits from the guard. The rest is written here, and tests keep it true: one walks
the app's routes against `paths` and asks each route for the role the document names, one
validates a real daemon's answers against the process schema, and schemathesis checks every
operation of a running daemon against the whole document.
"""

from __future__ import annotations

import dataclasses
import signal
import typing
from typing import Any

from sentinel import __version__
from sentinel.api.params import (
    FOLLOW,
    HISTORY,
    LENGTH,
    MAX_LOG_READ,
    OFFSET,
    ROLLING,
    STREAM,
    WAIT,
    BoolParam,
    ChoiceParam,
    IntParam,
)
from sentinel.api.security import BODY_TIMEOUT, MAX_BODY
from sentinel.auth import Role
from sentinel.events import Event
from sentinel.metrics import CONTENT_TYPE
from sentinel.model import NAME_PATTERN
from sentinel.states import Health, ProcessState, RestartReason

Schema = dict[str, Any]
JSON = "application/json"
PROBE_KINDS = ("liveness", "readiness", "startup")
# What model.parse_signal takes: a name with or without SIG, or a number (any case, blanks
# around a name ignored).
SIGNALS = sorted(
    {*signal.Signals.__members__, *(n.removeprefix("SIG") for n in signal.Signals.__members__)}
) + [str(s.value) for s in sorted(signal.Signals)]


def _ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def _closed(description: str, **properties: Schema) -> Schema:
    """An object with exactly these keys, every one always there."""
    return {
        "type": "object",
        "description": description,
        "properties": properties,
        "required": list(properties),
        "additionalProperties": False,
    }


def _of(kind: str | list[str], description: str, **constraints: Any) -> Schema:
    return {"type": kind, "description": description, **constraints}


# --- the process object: ProcessSnapshot.to_dict -------------------------------------------

PROCESS = _closed(
    "A process as it is now: what `sentinel status --json` prints.",
    name=_of("string", "the process: `web`, or `web_0` .. `web_{n-1}` with instances"),
    program=_of("string", "the `[programs.NAME]` it comes from"),
    group=_of("string", "its group, for `GROUP:*` and the group routes"),
    priority=_of("integer", "lower starts first and stops last"),
    state={"description": "Supervisor's state name", "enum": [s.name for s in ProcessState]},
    state_code={
        "description": "Supervisor's number for the state",
        "enum": [int(s) for s in ProcessState],
    },
    pid=_of(["integer", "null"], "the main process; null once it is reaped", minimum=1),
    exit_code=_of(["integer", "null"], "the last exit status; negative: killed by that signal"),
    restarts=_of("integer", "restarts so far", minimum=0),
    uptime_seconds=_of("number", "since the current spawn, while it runs; else 0", minimum=0),
    start_time=_of(["number", "null"], "unix time of the current spawn"),
    stop_time=_of(["number", "null"], "unix time the main process last exited"),
    health={"description": "what the liveness probe says", "enum": [h.value for h in Health]},
    ready=_of("boolean", "RUNNING, and its readiness probe (if any) passed"),
    probes={
        "type": "object",
        "description": "the last result of each probe that has run, by kind",
        "propertyNames": {"enum": list(PROBE_KINDS)},
        "additionalProperties": _ref("ProbeStatus"),
    },
    configured_probes={
        "type": "array",
        "description": "the probe kinds its program has, run or not",
        "items": {"enum": list(PROBE_KINDS)},
    },
    backoff_attempt=_of("integer", "consecutive automatic restarts", minimum=0),
    backoff_delay_seconds=_of("number", "the delay pending in BACKOFF, else 0", minimum=0),
    backoff_remaining_seconds=_of("number", "what is left of it", minimum=0),
    flapping=_of("boolean", "restarting too often (see `flapping`)"),
    detail=_of("string", "why it is in this state, in words"),
    depends_on={
        "type": "array",
        "description": "the processes that must be RUNNING and ready before it starts",
        "items": {"type": "string"},
    },
    waiting_for={
        "type": "array",
        "description": "of those, the ones its held start waits for now (it is STOPPED)",
        "items": {"type": "string"},
    },
    notify_status=_of("string", "the program's last sd_notify `STATUS=` in this run"),
    notify_phase={
        "description": "`reloading` or `stopping`, as the program said over sd_notify",
        "enum": ["", "reloading", "stopping"],
    },
)

PROBE_STATUS = _closed(
    "The last result of one probe.",
    ok=_of("boolean", "passed"),
    detail=_of("string", "what a person needs to know: `HTTP 503`, plugin output"),
    latency=_of("number", "seconds from the start of the check to its verdict", minimum=0),
    warning=_of("boolean", "passed with a (Nagios) warning"),
)


# --- events: their dataclasses, as Event.to_dict writes them ---------------------------------

_FIELD_TYPES: dict[object, Schema] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    int | None: {"type": ["integer", "null"]},
    str | None: {"type": ["string", "null"]},
    ProcessState: {"enum": [s.name for s in ProcessState]},
    RestartReason: {"enum": [r.value for r in RestartReason]},
    tuple[str, ...]: {"type": "array", "items": {"type": "string"}},
}


def event_kinds(base: type[Event] = Event) -> list[type[Event]]:
    """The events that can be published: every subclass with a kind of its own."""
    found = []
    for cls in base.__subclasses__():
        if cls.kind != base.kind:
            found.append(cls)
        found += event_kinds(cls)
    return found


def _event_schema(cls: type[Event]) -> Schema:
    hints = typing.get_type_hints(cls)
    properties: dict[str, Schema] = {"event": {"const": cls.kind}}
    for field in dataclasses.fields(cls):
        properties[field.name] = _FIELD_TYPES[hints[field.name]]  # KeyError: a new field type
    properties["timestamp"] = _of("number", "unix time")
    doc = (cls.__doc__ or "").strip()
    if doc.startswith(f"{cls.__name__}("):  # none: dataclass wrote its signature there
        doc = ""
    return _closed(doc or f"A `{cls.kind}` event.", **properties)


KINDS = event_kinds()
EVENTS = {cls.__name__: _event_schema(cls) for cls in KINDS}


def _event_stream(*events: tuple[str | None, Schema]) -> Schema:
    """Server-sent events: each with `data`, a JSON text, and the event's name (`event`;
    a stream that names none sends `message`, as the SSE standard has it)."""
    items = [
        {
            "type": "object",
            "required": ["data"] if name is None else ["event", "data"],
            "properties": {
                "event": {"const": name or "message"},
                "data": {"type": "string", "contentMediaType": JSON, "contentSchema": payload},
            },
        }
        for name, payload in events
    ]
    return {"text/event-stream": {"itemSchema": items[0] if len(items) == 1 else {"oneOf": items}}}


# --- parameters, responses, operations -----------------------------------------------------


def _query(param: IntParam | BoolParam | ChoiceParam, description: str) -> Schema:
    return {"name": param.name, "in": "query", "description": description, "schema": param.schema()}


def _path(name: str, description: str) -> Schema:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": NAME_PATTERN, "examples": ["web"]},
    }


NAME = _path("name", "a process name (`web`, `web_0`): one process, not a selection")
GROUP = _path("group", "a group name")
SIGNAL = {"type": "string", "enum": SIGNALS, "description": "`HUP`, `SIGHUP` or `1`; any case"}


def _error(description: str, **headers: Schema) -> Schema:
    response: Schema = {"description": description, "content": {JSON: {"schema": _ref("Error")}}}
    if headers:
        response["headers"] = headers
    return response


ERRORS = {
    "BadRequest": _error("A query parameter or the body is not what the operation takes."),
    "Unauthorized": _error(
        "Credentials are wrong, or needed: the operation needs a role that callers without a "
        "password do not have.",
        **{"WWW-Authenticate": {"required": True, "schema": {"type": "string"}}},
    ),
    "Forbidden": _error(
        "The caller's role is below what the operation needs; or a request that changes "
        "something came from another site (a foreign `Origin`, `Sec-Fetch-Site`, or a body "
        "that is neither JSON nor XML)."
    ),
    "NotFound": _error("No such process or group; or its output is not captured."),
    "RequestTimeout": _error(f"The body took over {BODY_TIMEOUT:g} s to arrive."),
    "ContentTooLarge": _error(f"The body is over {MAX_BODY // 1024} KiB."),
    "MisdirectedRequest": _error(
        "The Host header does not name this listener (TCP only; see `[control] allowed_hosts`)."
    ),
    "TooManyRequests": _error("Too many password checks are waiting."),
}
# What the guard may answer to any request, before the route sees it.
GUARDED = {"401": "Unauthorized", "413": "ContentTooLarge", "421": "MisdirectedRequest",
           "429": "TooManyRequests"}  # fmt: skip
# What an operation may add to those.
ERROR_CODES = {"400": "BadRequest", "404": "NotFound", "408": "RequestTimeout"}
ROLE_WORDS = {
    Role.NONE: "Needs no role: anyone who reaches the listener.",
    Role.VIEWER: "Needs the viewer role (or above).",
    Role.OPERATOR: "Needs the operator role (or admin).",
    Role.ADMIN: "Needs the admin role.",
}


def _operation(
    operation_id: str,
    summary: str,
    role: Role,
    ok: tuple[str, Schema],
    *,
    description: str = "",
    tag: str,
    parameters: tuple[Schema, ...] = (),
    errors: tuple[str, ...] = (),
    body: Schema | None = None,
    also: dict[str, Schema] | None = None,
) -> Schema:
    """`also`: answers besides `ok` and the refusals (a 503 that is not an error)."""
    status, answer = ok
    refusals = {**GUARDED, **({"403": "Forbidden"} if role > Role.NONE else {})}
    refusals |= {code: ERROR_CODES[code] for code in errors}
    operation: Schema = {
        "operationId": operation_id,
        "summary": summary,
        "description": f"{description}\n\n{ROLE_WORDS[role]}".strip(),
        "tags": [tag],
        "x-sentinel-role": role.label,
        "parameters": list(parameters),
        "responses": {
            status: answer,
            **(also or {}),
            **{
                code: {"$ref": f"#/components/responses/{refusals[code]}"}
                for code in sorted(refusals)
            },
        },
    }
    if body is not None:
        operation["requestBody"] = body
    return operation


def _json(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {JSON: {"schema": schema}}}


COMMANDS = {
    "start": "Start, and (unless `wait=false`) answer when each process is RUNNING or failed "
    "to start.",
    "stop": "Stop (the stop signal, then SIGKILL after `stop_timeout`), and (unless "
    "`wait=false`) answer when each process has stopped.",
    "restart": "Stop, then start; waits as `stop` and `start` do. With `rolling=true`, each "
    "program's processes one at a time, each RUNNING and ready before the next (on "
    "`/api/v1/programs/{name}`, `name` may then be a program's); an instance not ready within "
    "its `rolling_timeout` stops the roll, and `rolling` says where.",
    "signal": "Send a signal to each running process. Name it in the query (`?signal=HUP`) "
    'or in a JSON body (`{"signal": "HUP"}`); the query wins, but a body is checked all the '
    "same. A process that is not running gets nothing, and its result is false.",
}
SIGNAL_BODY = {
    "required": False,
    "description": "The signal, when the query does not name it.",
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["signal"],
                "properties": {"signal": SIGNAL},
            }
        }
    },
}


def _commands() -> dict[str, Schema]:
    paths: dict[str, Schema] = {}
    targets = (
        ("/api/v1/programs/{name}", "Process", "one process", (NAME,)),
        ("/api/v1/groups/{group}", "Group", "the processes of a group", (GROUP,)),
        ("/api/v1/all", "All", "every process", ()),
    )
    for prefix, suffix, whom, path_params in targets:
        for verb, what in COMMANDS.items():
            parameters = [*path_params, _query(WAIT, "wait for the wanted state")]
            if verb == "restart":
                parameters.append(_query(ROLLING, "one instance of a program at a time"))
            if verb == "signal":
                parameters.append(
                    {"name": "signal", "in": "query", "description": "the signal", "schema": SIGNAL}
                )
            operation = _operation(
                f"{verb}{suffix}",
                f"{verb.capitalize()} {whom}",
                Role.OPERATOR,
                ("200", _json("What each process did, and how it is now.", _ref("CommandResult"))),
                description=what,
                tag="commands",
                parameters=tuple(parameters),
                errors=("400", "404", "408") if verb == "signal" else ("400", "404"),
                body=SIGNAL_BODY if verb == "signal" else None,
            )
            paths[f"{prefix}/{verb}"] = {"post": operation}
    return paths


PATHS: dict[str, Schema] = {
    "/healthz": {"get": _operation(
        "healthz", "Is sentinel up", Role.NONE,
        ("200", _json("sentinel is up.", _ref("Health"))),
        also={"503": _json("An essential program is down.", _ref("Health"))},
        description="For monitors of sentinel itself, and a container's health check: 503 "
        "while an `essential` program is not RUNNING.", tag="daemon",
    )},
    "/api/v1/openapi.json": {"get": _operation(
        "openapi", "This document", Role.VIEWER,
        ("200", _json("The OpenAPI document of this API.", {"type": "object"})), tag="daemon",
    )},
    "/metrics": {"get": _operation(
        "metrics", "Prometheus metrics", Role.VIEWER,
        ("200", {"description": "The text exposition format.",
                 "content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}),
        tag="monitoring",
    )},
    "/api/v1/programs": {"get": _operation(
        "listProcesses", "Every process", Role.VIEWER,
        ("200", _json("In priority order.", {"type": "array", "items": _ref("Process")})),
        tag="processes",
    )},
    "/api/v1/programs/{name}": {"get": _operation(
        "getProcess", "One process", Role.VIEWER,
        ("200", _json("The process.", _ref("Process"))),
        tag="processes", parameters=(NAME,), errors=("404",),
    )},
    "/api/v1/programs/{name}/log": {"get": _operation(
        "readLog", "Read a process's captured output", Role.ADMIN,
        ("200", {
            "description": "The bytes read.",
            "headers": {"X-Log-Offset": {
                "required": True,
                "description": "the file offset just after them: the next read's `offset`",
                "schema": {"type": "integer", "minimum": 0},
            }},
            "content": {"application/octet-stream": {"schema": {}}},
        }),
        description="As Supervisor's readProcessLog: from the current file (not the rotated "
        f"ones), at most {MAX_LOG_READ // 1024} KiB a read. A log can hold anything a "
        "program printed, hence the role.",
        tag="logs", errors=("400", "404"), parameters=(
            NAME,
            _query(STREAM, "which output"),
            _query(OFFSET, "where to start; negative: that many bytes before the end"),
            _query(LENGTH, f"bytes to read; 0: to the end (at most {MAX_LOG_READ} either way)"),
        ),
    )},
    "/api/v1/programs/{name}/log/follow": {"get": _operation(
        "followLog", "Follow a process's captured output", Role.ADMIN,
        ("200", {"description": "The last lines, then what the process writes, as it comes; "
                 "the stream ends when the process is removed or sentinel stops.",
                 "content": _event_stream((None, _ref("LogChunk")))}),
        tag="logs", parameters=(NAME, _query(STREAM, "which output")), errors=("400", "404"),
    )},
    "/api/v1/events": {"get": _operation(
        "events", "The event stream", Role.VIEWER,
        ("200", {"description": "A `: connected` comment, the last `history` events, then "
                 "(unless `follow=false`) each new one; `event` is the event's kind.",
                 "content": _event_stream(*((c.kind, _ref(c.__name__)) for c in KINDS))}),
        tag="events", errors=("400",), parameters=(
            _query(HISTORY, "how many past events to replay first"),
            _query(FOLLOW, "false: end after the replay"),
        ),
    )},
    "/api/v1/reload": {"post": _operation(
        "reload", "Re-read the config file", Role.ADMIN,
        ("200", _json("What changed.", _ref("ConfigReloaded"))),
        description="Added programs start (if `autostart`), removed ones stop, changed ones "
        "restart. A config with errors is rejected (400, with its errors) and nothing changes.",
        tag="daemon", errors=("400",),
    )},
    "/api/v1/reexec": {"post": _operation(
        "reexec", "Re-execute sentinel in place, every program running", Role.ADMIN,
        ("202", _json("Re-executing.", _closed("Accepted.", ok={"const": True}))),
        description="What `systemctl daemon-reexec` is to systemd: the installed sentinel is "
        "executed under the same pid and adopts every process, its pipes and its counters. A "
        "config that a reload would refuse is refused (400) and nothing happens.",
        tag="daemon", errors=("400",),
    )},
    "/api/v1/shutdown": {"post": _operation(
        "shutdown", "Stop every process, then sentinel", Role.ADMIN,
        ("202", _json("Shutting down.", _closed("Accepted.", ok={"const": True}))),
        tag="daemon",
    )},
    **_commands(),
}  # fmt: skip

DOCUMENT: Schema = {
    "openapi": "3.2.0",
    "info": {
        "title": "sentinel",
        "version": __version__,
        "summary": "A health-checking process supervisor's control API.",
        "description": "Served on the unix socket (`[control] socket`) and on `[control] http`."
        " Every call that changes something is written to the audit log.",
    },
    "tags": [
        {"name": name, "description": description}
        for name, description in (
            ("processes", "What runs, as it is now"),
            ("commands", "Start, stop, restart and signal processes"),
            ("logs", "Captured output"),
            ("events", "State changes, probe results, alerts, reloads"),
            ("daemon", "sentinel itself"),
            ("monitoring", "For Prometheus"),
        )
    ],
    "security": [{"basic": []}, {}],
    "paths": PATHS,
    "components": {
        "securitySchemes": {
            "basic": {
                "type": "http",
                "scheme": "basic",
                "description": "A user of `[control] users`, with the role given there. "
                "Without a password: on the unix socket, a caller running as root or as "
                "sentinel's own user is admin (the socket's peer credentials, SO_PEERCRED); "
                "anyone else has `[control] anonymous_role` (viewer on loopback without "
                "users, none with users).",
            }
        },
        "schemas": {
            "Process": PROCESS,
            "ProbeStatus": PROBE_STATUS,
            "CommandResult": {
                **_closed(
                    "What a command did.",
                    ok=_of("boolean", "every process did what was asked"),
                    results={
                        "type": "object",
                        "description": "by process name: whether it did",
                        "additionalProperties": {"type": "boolean"},
                    },
                    processes={"type": "array", "items": _ref("Process")},
                    rolling={
                        "type": "array",
                        "description": "a rolling restart: how each program's roll went",
                        "items": _ref("RollResult"),
                    },
                ),
                "required": ["ok", "results", "processes"],
            },
            "RollResult": _closed(
                "How the rolling restart of one program went.",
                program=_of("string", "the program"),
                restarted={
                    "type": "array",
                    "description": "restarted and ready again, in order",
                    "items": {"type": "string"},
                },
                stopped_at=_of(["string", "null"], "the instance not ready in time"),
                left={
                    "type": "array",
                    "description": "not restarted: the roll stopped before them",
                    "items": {"type": "string"},
                },
                detail=_of("string", "why the roll stopped, in words"),
            ),
            "Error": _closed(
                "A refused request.",
                ok={"const": False},
                error=_of("string", "what went wrong, or what was expected"),
            ),
            "Health": _closed(
                "sentinel's own health.",
                status={"enum": ["ok", "down"]},
                version=_of("string", "sentinel's version"),
                http=_of(["string", "null"], "where `[control] http` listens, as bound"),
                essential_down={
                    "type": "array",
                    "description": "essential processes that are not RUNNING",
                    "items": {"type": "string"},
                },
            ),
            "LogChunk": _closed("Output.", data=_of("string", "as UTF-8, bad bytes replaced")),
            **EVENTS,
        },
        "responses": ERRORS,
    },
}
