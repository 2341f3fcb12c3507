"""Fuzzing the config loader: whatever a file holds, a Config or a ConfigError of one-line
problems, never another exception (bounded and deterministic: a few seconds)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sentinel.config import load
from sentinel.errors import ConfigError

KEYS = [
    "include", "sentinel", "control", "notify", "programs", "log_dir", "state_dir", "socket",
    "http", "users", "urls", "events", "cooldown", "command", "environment", "user",
    "instances", "name", "priority", "autorestart", "exit_codes", "start_seconds",
    "stop_signal", "stop_timeout", "stdout", "path", "max_bytes", "backoff", "initial",
    "multiplier", "jitter", "liveness", "http", "url", "exec", "check", "tcp", "port",
    "period", "umask", "web", "a", "", "\n", "é",
]  # fmt: skip
SCALARS = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["10s", "0s", "1e309", "nan", "${HOME}", "${NOPE}", "$$", "{instance}",
                     "50MB", "TERM", "022", "http://127.0.0.1:1/", "auto", "none"]),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
)  # fmt: skip
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS), inner, max_size=5),
    ),
    max_leaves=30,
)
DOCUMENTS = st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=6)


def toml(document: dict[str, Any]) -> str:
    """Inline TOML for any document (JSON's string escapes are TOML's; a float or a list that
    TOML cannot hold simply makes an invalid file, which is as good a test)."""
    return "".join(f"{json.dumps(k)} = {_value(v)}\n" for k, v in document.items())


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)  # inf and nan are TOML's words too
    return json.dumps(value)


def loads_or_explains(text: bytes, include: bytes | None = None) -> None:
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "sentinel.toml"
        path.write_bytes(text)
        if include is not None:
            (Path(directory) / "inc.toml").write_bytes(include)
        try:
            load(path, environ={"HOME": "/root"})
        except ConfigError as exc:
            assert exc.problems
            for problem in exc.problems:
                assert "\n" not in str(problem) and "\r" not in str(problem)
                assert str(problem).startswith(directory)


FUZZ = settings(
    max_examples=150,
    derandomize=True,  # the same examples every run: a CI failure reproduces at a desk
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


@FUZZ
@given(DOCUMENTS)
def test_any_document_loads_or_is_explained(document: dict[str, Any]) -> None:
    loads_or_explains(toml(document).encode())


@FUZZ
@given(DOCUMENTS, DOCUMENTS)
def test_any_include_loads_or_is_explained(main: dict[str, Any], included: dict[str, Any]) -> None:
    main["include"] = ["inc.toml"]
    loads_or_explains(toml(main).encode(), toml(included).encode())


VALID = (
    b'[sentinel]\nlog_dir = "logs"\n[notify]\nurls = ["json://h/"]\n'
    b'[programs.web]\ncommand = "sleep 1"\ninstances = 2\n'
    b'[programs.web.liveness]\nhttp = { url = "http://127.0.0.1:8{instance}/" }\n'
)


@FUZZ
@given(st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.binary(max_size=3)), max_size=4))
def test_a_valid_file_with_bytes_changed_loads_or_is_explained(
    edits: list[tuple[int, bytes]],
) -> None:
    data = bytearray(VALID)
    for at, new in edits:
        data[at : at + len(new)] = new
    loads_or_explains(bytes(data))
