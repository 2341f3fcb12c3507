"""The OpenAPI document against the code: the app's routes, the query parameters as the
endpoints read them, the signals they take, and the events and processes they write."""

from __future__ import annotations

import dataclasses
import re
import signal
import typing
from types import SimpleNamespace
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from starlette.datastructures import QueryParams
from starlette.routing import Route

from sentinel.api.app import api_routes
from sentinel.api.control import BadRequest
from sentinel.api.openapi import DOCUMENT, EVENTS, SIGNALS, event_kinds
from sentinel.api.params import FOLLOW, HISTORY, LENGTH, OFFSET, STREAM, WAIT
from sentinel.events import Event
from sentinel.model import parse_signal
from sentinel.snapshot import ProbeStatus, ProcessSnapshot
from sentinel.states import Health, ProcessState, RestartReason


def validator(name: str) -> jsonschema_rs.Validator:
    schema = {"$ref": f"#/components/schemas/{name}", "components": DOCUMENT["components"]}
    return jsonschema_rs.Draft202012Validator(schema)


def errors(name: str, instance: object) -> list[str]:
    return [f"{e.instance_path}: {e.message}" for e in validator(name).iter_errors(instance)]


def test_the_document_is_valid_openapi() -> None:
    """It validates against the OpenAPI 3.2 schema (schemathesis checks it on loading)."""
    schemathesis.openapi.from_dict(DOCUMENT).validate()


def test_every_route_is_documented_and_nothing_else() -> None:
    """The app's routes and methods are exactly the document's paths and operations."""
    control: Any = SimpleNamespace(processes=None)
    routes = [r for r in api_routes(control) if isinstance(r, Route)]
    served = {
        (re.sub(r"\{(\w+):\w+\}", r"{\1}", route.path), method.lower())
        for route in routes
        for method in route.methods or ()
        if method != "HEAD"  # Starlette answers HEAD wherever GET is
    }
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert served == documented


def test_every_operation_names_its_role_and_its_refusals() -> None:
    """Each operation has an id, a role in x-sentinel-role and in words, and the guard's
    refusals among its responses."""
    ids = []
    for path, item in DOCUMENT["paths"].items():
        for operation in item.values():
            ids.append(operation["operationId"])
            role = operation["x-sentinel-role"]
            assert role in ("none", "viewer", "operator", "admin"), path
            assert ("no role" if role == "none" else f"the {role} role") in operation["description"]
            assert {"401", "413", "421", "429"} <= set(operation["responses"]), path
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("param", [WAIT, FOLLOW])
@pytest.mark.parametrize(
    "raw", ["true", "TRUE", "True", "yes", "YeS", "1", "false", "No", "0",
            "", "2", "maybe", " true", "true ", "truee", "yes\n", "\u017f", "\u0130"],
)  # fmt: skip
def test_a_boolean_parameters_pattern_takes_what_the_endpoint_takes(param: Any, raw: str) -> None:
    """The pattern in the document (ECMA 262, as JSON Schema has it) matches exactly the
    strings the endpoint accepts."""
    valid = jsonschema_rs.Draft202012Validator(param.schema()).is_valid(raw)
    assert valid == reads(param, raw), raw


@pytest.mark.parametrize(
    ("param", "raw"),
    [(HISTORY, "0"), (HISTORY, "1000"), (HISTORY, "1001"), (HISTORY, "-1"),
     (OFFSET, str(-(1 << 62))), (OFFSET, str(-(1 << 62) - 1)), (OFFSET, str(1 << 62)),
     (OFFSET, str((1 << 62) + 1)), (LENGTH, "0"), (LENGTH, "-1"), (LENGTH, "1.5")],
)  # fmt: skip
def test_an_integer_parameters_range_is_what_the_endpoint_takes(param: Any, raw: str) -> None:
    schema = param.schema()
    in_range = raw.lstrip("-").isdigit() and schema["minimum"] <= int(raw) <= schema["maximum"]
    assert in_range == reads(param, raw)


def test_a_choice_parameters_enum_is_what_the_endpoint_takes() -> None:
    assert STREAM.schema()["enum"] == ["stdout", "stderr"]
    assert reads(STREAM, "stderr") and not reads(STREAM, "stdin") and not reads(STREAM, "STDOUT")


def reads(param: Any, raw: str) -> bool:
    request: Any = SimpleNamespace(query_params=QueryParams({param.name: raw}))
    try:
        param.read(request)
    except BadRequest:
        return False
    return True


def test_every_documented_signal_is_one_sentinel_takes() -> None:
    """Each name or number of the enum parses, and every signal is there by name and number."""
    for value in SIGNALS:
        parse_signal(int(value) if value.isdigit() else value)
    assert {parse_signal(v if not v.isdigit() else int(v)) for v in SIGNALS} == set(signal.Signals)


def example(annotation: object) -> object:
    """A value of a field's type, as an event holds it."""
    values: dict[object, object] = {
        str: "web", int: 3, float: 1.5, bool: True, int | None: None, str | None: "warm",
        ProcessState: ProcessState.BACKOFF, RestartReason: RestartReason.LIVENESS,
        tuple[str, ...]: ("web", "worker"),
    }  # fmt: skip
    return values[annotation]


@pytest.mark.parametrize("kind", event_kinds(), ids=lambda cls: cls.kind)
def test_every_event_matches_its_schema(kind: type[Event]) -> None:
    """What Event.to_dict writes, for every kind of event, fits the document."""
    hints = typing.get_type_hints(kind)
    fields = {f.name: example(hints[f.name]) for f in dataclasses.fields(kind)}
    data = kind(**fields).to_dict()  # type: ignore[arg-type]
    assert errors(kind.__name__, data) == []
    assert kind.__name__ in EVENTS


def test_a_process_matches_the_process_schema() -> None:
    """Every key ProcessSnapshot.to_dict writes is in the schema, with its type; nulls too."""
    probe = ProbeStatus("liveness", ok=False, detail="HTTP 503", latency=0.25, warning=False)
    snapshot = ProcessSnapshot(
        name="web_0", program="web", group="web", priority=10, state=ProcessState.RUNNING,
        pid=4242, exit_code=-9, restarts=2, uptime_seconds=12.5, start_time=1.7e9,
        health=Health.UNHEALTHY, ready=False, probes=(probe,),
        configured_probes=("liveness", "readiness"), backoff_attempt=1,
        backoff_delay_seconds=0.0, backoff_remaining_seconds=0.0, flapping=False, detail="",
    )  # fmt: skip
    data = snapshot.to_dict()
    assert errors("Process", data) == []
    assert set(DOCUMENT["components"]["schemas"]["Process"]["properties"]) == set(data)
    stopped = snapshot._replace(state=ProcessState.STOPPED, pid=None, start_time=None)
    assert errors("Process", stopped.to_dict()) == []
    assert errors("Process", {**data, "state": "SLEEPING"}) != []
    assert errors("Process", {**data, "extra": 1}) != []
