"""XML-RPC without a daemon: the marshaller against xmlrpc.client's, parsing hostile bodies,
and the supervisord rules rpcinfo.py copies, against Supervisor's own code."""

from __future__ import annotations

import random
import time
import xmlrpc.client
from pathlib import Path

import pytest
from supervisor import options as supervisor_options
from supervisor import states as supervisor_states
from supervisor import xmlrpc as supervisor_xmlrpc

from sentinel.api import rpcinfo
from sentinel.api.xmlrpc import Faults, RPCFault, marshal, parse_call
from sentinel.config import load
from sentinel.model import ProcessSpec
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import Health, ProcessState

HOSTILE = "a & b < c > d ]]> \"q\" 'q' \t\n\r ✓ \x00\x1b[31m \ud800 \ufffe end"


def dumps(value: object) -> str:
    """What the standard library writes, with what XML 1.0 cannot carry replaced."""
    text = xmlrpc.client.dumps((value,), methodresponse=True)
    for bad in ("\x00", "\x1b", "\ud800", "\ufffe"):
        text = text.replace(bad, "\ufffd")
    return text


def random_value(rng: random.Random, depth: int = 0) -> object:
    kinds = ["str", "int", "bool", "float"] + (["list", "dict"] if depth < 3 else [])
    kind = rng.choice(kinds)
    if kind == "str":
        return "".join(rng.choice(HOSTILE + "abc") for _ in range(rng.randrange(12)))
    if kind == "int":
        return rng.choice([0, -1, 2**31 - 1, -(2**31), rng.randrange(-(10**6), 10**6)])
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "float":
        return rng.choice([0.5, -1e300, 1.0, rng.random()])
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randrange(4))]
    return {
        "".join(rng.choice(HOSTILE) for _ in range(3)): random_value(rng, depth + 1)
        for _ in range(rng.randrange(4))
    }


def test_marshal_writes_what_xmlrpc_client_writes() -> None:
    """Over a corpus of nested values with hostile strings, the text is dumps' text."""
    rng = random.Random(1)
    for _ in range(2000):
        value = random_value(rng)
        assert marshal(value) == dumps(value), value


def test_marshal_refuses_what_dumps_refuses() -> None:
    """Out-of-range ints, None and non-string keys raise as dumps raises."""
    with pytest.raises(OverflowError):
        marshal({"n": 2**31})
    with pytest.raises(OverflowError):
        marshal([-(2**31) - 1])
    with pytest.raises(TypeError):
        marshal([None])  # no allow_none, as supervisord
    with pytest.raises(TypeError):
        marshal({1: "x"})


def test_marshal_leaves_other_types_to_dumps() -> None:
    """Bytes, tuples and dates are what dumps writes."""
    value = {"b": xmlrpc.client.Binary(b"\x00\x01"), "t": (1, 2)}
    assert marshal(value) == dumps(value)


def test_marshal_output_parses_back() -> None:
    """An answer with a log full of escape sequences still parses."""
    log = "".join(chr(c) for c in range(0, 0x250)) + "\udc80"
    params, _ = xmlrpc.client.loads(marshal([log]))
    (back,) = params[0]
    assert len(back) == len(log)
    assert back[0x41] == "A" and back[0] == "\ufffd" and back[0x1B] == "\ufffd"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not xml",
        b"<methodCall><methodName>x</methodName>",  # truncated
        b"<methodCall><methodName>x</methodName><params><param><value><int>abc</int>"
        b"</value></param></params></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value><struct><member>"
        b"<value><int>1</int></value></member></struct></value></param></params></methodCall>",
        b"<methodCall><params></params></methodCall>",  # no methodName
        b"<methodResponse><params><param><value><int>1</int></value></param></params>"
        b"</methodResponse>",
        b"<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>1"
        b"</int></value></member></struct></value></fault></methodResponse>",
        b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><methodCall><methodName>&a;'
        b"</methodName></methodCall>",
        b'<?xml version="1.0"?><!DOCTYPE x SYSTEM "file:///etc/passwd"><methodCall>'
        b"<methodName>x</methodName></methodCall>",
        b"<methodCall><methodName>x</methodName><params><param><value><int>"
        + b"9" * 5000
        + b"</int></value></param></params></methodCall>",
        "<methodCall><methodName>ü</methodName></methodCall>".encode("latin-1"),
    ],
)
def test_a_malformed_call_is_incorrect_parameters(body: bytes) -> None:
    """Whatever is wrong with the XML, the answer is a fault, never an exception."""
    with pytest.raises(RPCFault) as caught:
        parse_call(body)
    assert caught.value.code is Faults.INCORRECT_PARAMETERS


def test_a_billion_laughs_is_refused_at_once() -> None:
    """The first entity declaration stops the parse: nothing is expanded."""
    levels = [f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    doctype = f'<!DOCTYPE b [<!ENTITY l0 "lol">{"".join(levels)}]>'
    body = f"<?xml version='1.0'?>{doctype}<methodCall><methodName>&l9;</methodName></methodCall>"
    began = time.perf_counter()
    with pytest.raises(RPCFault) as caught:
        parse_call(body.encode())
    assert time.perf_counter() - began < 0.1
    assert caught.value.code is Faults.INCORRECT_PARAMETERS


def test_a_call_parses() -> None:
    body = xmlrpc.client.dumps(("web", True, 3, [1], {"a": "b"}), "supervisor.startProcess")
    assert parse_call(body.encode()) == (
        "supervisor.startProcess",
        ("web", True, 3, [1], {"a": "b"}),
    )


def test_fault_codes_are_supervisors() -> None:
    codes = {
        name: value
        for name, value in vars(supervisor_xmlrpc.Faults).items()
        if not name.startswith("_")
    }
    assert {f.name: int(f) for f in Faults} == codes


def test_state_sets_are_supervisors() -> None:
    assert {int(s) for s in rpcinfo.RUNNING_STATES} == set(supervisor_states.RUNNING_STATES)
    assert {int(s) for s in rpcinfo.STOPPED_STATES} == set(supervisor_states.STOPPED_STATES)
    assert {int(s) for s in rpcinfo.SIGNALLABLE_STATES} == set(supervisor_states.SIGNALLABLE_STATES)


class Capture:
    """A LogReader over a plain file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0

    def read(self, offset: int, length: int) -> tuple[bytes, int]:
        with self.path.open("rb") as f:
            size = f.seek(0, 2)
            start = max(size + offset, 0) if offset < 0 else min(offset, size)
            f.seek(start)
            data = f.read() if length == 0 else f.read(length)
        return data, start + len(data)

    async def wait_written(self, after: int) -> int:
        raise NotImplementedError


@pytest.mark.parametrize("size", [0, 1, 10, 100])
def test_tail_is_supervisors_tailfile(tmp_path: Path, size: int) -> None:
    """Every offset and length around the file's size answers as tailFile."""
    log = tmp_path / "web.log"
    log.write_bytes(bytes(range(48, 48 + 10)) * (size // 10) + b"x" * (size % 10))
    for offset in (-5, 0, 1, size - 3, size - 1, size, size + 1, size + 50):
        for length in (-1, 0, 1, 3, size, size + 10):
            data, end, overflow = rpcinfo.tail(Capture(log), offset, length)
            expected = supervisor_options.tailFile(str(log), offset, length)
            assert [data.decode(), end, overflow] == expected, (offset, length)


CONFIG = """
[programs.web]
command = ["sleep", "1"]
[programs.quick]
command = ["sleep", "1"]
start_seconds = "2s"
exit_codes = [0, 2]
"""


@pytest.fixture
def specs(tmp_path: Path) -> dict[str, ProcessSpec]:
    (tmp_path / "sentinel.toml").write_text(CONFIG)
    return {p.name: p for p in load(tmp_path / "sentinel.toml").processes}


def snapshot(name: str, state: ProcessState, **fields: object) -> ProcessSnapshot:
    base = ProcessSnapshot(
        name=name,
        program=name,
        group=name,
        priority=999,
        state=state,
        pid=None,
        exit_code=None,
        restarts=0,
        uptime_seconds=0.0,
        start_time=None,
        health=Health.UNKNOWN,
        ready=False,
        probes=(),
        configured_probes=(),
        backoff_attempt=0,
        backoff_delay_seconds=0.0,
        backoff_remaining_seconds=0.0,
        flapping=False,
        detail="",
    )
    return base._replace(**fields)  # type: ignore[arg-type]


NOW = 1_800_000_000


STOPPED_AT = time.strftime("%b %d %I:%M %p", time.localtime(NOW - 5))
SPAWN_ERROR = "spawn error: No such file or directory: 'x'"
TOO_QUICK = "Exited too quickly (process log may have details)"


@pytest.mark.parametrize(
    ("name", "state", "fields", "expected"),
    [
        ("web", ProcessState.STOPPED, {}, ("Not started", "")),
        (
            "web",
            ProcessState.RUNNING,
            {"pid": 42, "start_time": NOW - 3723.9},
            ("pid 42, uptime 1:02:04", ""),
        ),
        (
            "web",
            ProcessState.RUNNING,
            {"pid": 42, "start_time": NOW - 90000},
            ("pid 42, uptime 1 day, 1:00:00", ""),
        ),
        (
            "quick",
            ProcessState.FATAL,
            {"start_time": NOW - 10, "stop_time": NOW - 9.5, "exit_code": 1, "detail": "x"},
            (TOO_QUICK, TOO_QUICK),
        ),
        ("web", ProcessState.BACKOFF, {"detail": SPAWN_ERROR}, (SPAWN_ERROR, SPAWN_ERROR)),
        (
            "web",
            ProcessState.BACKOFF,
            {"start_time": NOW - 100, "stop_time": NOW - 5, "exit_code": 1, "detail": "exited"},
            ("exited", "exited"),
        ),
        ("web", ProcessState.FATAL, {}, ('unknown error (try "tail web")', "")),
        ("web", ProcessState.STARTING, {"pid": 7, "start_time": NOW}, ("", "")),
        ("web", ProcessState.STOPPING, {"pid": 7, "start_time": NOW}, ("", "")),
        (
            "quick",
            ProcessState.EXITED,
            {"start_time": NOW - 100, "stop_time": NOW - 5, "exit_code": 1},
            (STOPPED_AT, "Bad exit code 1"),
        ),
        (
            "quick",
            ProcessState.EXITED,
            {"start_time": NOW - 100, "stop_time": NOW - 5, "exit_code": 2},
            (STOPPED_AT, ""),
        ),
        (
            "quick",
            ProcessState.STOPPED,
            {"start_time": NOW - 100, "stop_time": NOW - 5, "exit_code": -15},
            (STOPPED_AT, ""),
        ),
    ],
)
def test_process_info_says_what_supervisord_says(
    specs: dict[str, ProcessSpec],
    name: str,
    state: ProcessState,
    fields: dict[str, object],
    expected: tuple[str, str],
) -> None:
    """description and spawnerr, in each state."""
    description, spawnerr = expected
    info = rpcinfo.process_info(snapshot(name, state, **fields), specs[name], NOW)
    assert info["description"] == description
    assert info["spawnerr"] == spawnerr
    assert info["now"] == NOW
    assert info["statename"] == state.name and info["state"] == int(state)
    assert info["stdout_logfile"] == info["logfile"] == str(specs[name].stdout_log)


def test_process_info_has_supervisords_fields_and_types(specs: dict[str, ProcessSpec]) -> None:
    """Every field, with the type supervisord gives it; a signal's exit status is -1."""
    info = rpcinfo.process_info(
        snapshot("web", ProcessState.EXITED, start_time=NOW - 9, stop_time=NOW, exit_code=-9),
        specs["web"],
        NOW,
    )
    types = {
        "name": str, "group": str, "start": int, "stop": int, "now": int, "state": int,
        "statename": str, "spawnerr": str, "exitstatus": int, "logfile": str,
        "stdout_logfile": str, "stderr_logfile": str, "pid": int, "description": str,
    }  # fmt: skip
    assert {k: type(v) for k, v in info.items()} == types
    assert (info["exitstatus"], info["pid"], info["start"], info["stop"]) == (-1, 0, NOW - 9, NOW)
    assert marshal(info) == dumps(info)


def test_times_past_2038_are_capped(specs: dict[str, ProcessSpec]) -> None:
    """As supervisord's capped_int: an XML-RPC int cannot hold them."""
    info = rpcinfo.process_info(
        snapshot("web", ProcessState.RUNNING, pid=1, start_time=2.0**31 + 5), specs["web"], NOW
    )
    assert info["start"] == 2**31 - 1
    marshal(info)
