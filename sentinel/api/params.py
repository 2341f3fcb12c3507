"""The JSON API's query parameters: how an endpoint reads each one, and what the OpenAPI
document says of it. One definition serves both, so the document's types, ranges and
choices are the ones checked.

A value that is not what a parameter takes is a BadRequest (400) saying what was expected,
never a 500.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from sentinel.api.control import BadRequest

# Words a boolean parameter takes, in any case.
BOOLEANS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


@dataclass(frozen=True)
class IntParam:
    """An integer within [low, high]."""

    name: str
    default: int
    low: int
    high: int

    def read(self, request: Request) -> int:
        raw = request.query_params.get(self.name)
        if raw is None:
            return self.default
        try:
            value = int(raw)
        except ValueError:
            raise BadRequest(f"{self.name}: expected an integer, got {raw[:40]!r}") from None
        if not self.low <= value <= self.high:
            raise BadRequest(
                f"{self.name}: expected an integer from {self.low} to {self.high}, got {value}"
            )
        return value

    def schema(self) -> dict[str, Any]:
        return {
            "type": "integer",
            "minimum": self.low,
            "maximum": self.high,
            "default": self.default,
        }


@dataclass(frozen=True)
class BoolParam:
    """true or false; also 1/0 and yes/no, in any case."""

    name: str
    default: bool

    def read(self, request: Request) -> bool:
        raw = request.query_params.get(self.name)
        if raw is None:
            return self.default
        if raw.lower() not in BOOLEANS:
            raise BadRequest(f"{self.name}: expected true or false, got {raw[:40]!r}")
        return BOOLEANS[raw.lower()]

    def schema(self) -> dict[str, Any]:
        # A string, not a JSON boolean: "yes" and "TRUE" are taken too, and "2" is not.
        return {
            "type": "string",
            "pattern": "^(?:" + "|".join(map(_any_case, BOOLEANS)) + ")$",
            "default": str(self.default).lower(),
        }


@dataclass(frozen=True)
class ChoiceParam:
    """One of `choices`; the first is the default."""

    name: str
    choices: tuple[str, ...]

    def read(self, request: Request) -> str:
        raw = request.query_params.get(self.name, self.choices[0])
        if raw not in self.choices:
            raise BadRequest(
                f"{self.name}: expected one of {', '.join(self.choices)}, got {raw[:40]!r}"
            )
        return raw

    def schema(self) -> dict[str, Any]:
        return {"type": "string", "enum": list(self.choices), "default": self.choices[0]}


def _any_case(word: str) -> str:
    """A regex (ECMA 262, as JSON Schema's patterns are) matching `word` in any case."""
    return "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else re.escape(c) for c in word)


TAIL_BYTES = 1600  # what `tail` shows by default, as supervisorctl does
MAX_LOG_READ = 1 << 20  # bytes one log read returns at most (length 0: "to the end", capped)
MAX_HISTORY = 1000  # events replayed at most on the event stream
MAX_OFFSET = 1 << 62  # beyond any file, and within a C off_t

WAIT = BoolParam("wait", True)
ROLLING = BoolParam("rolling", False)
STREAM = ChoiceParam("stream", ("stdout", "stderr"))
OFFSET = IntParam("offset", -TAIL_BYTES, -MAX_OFFSET, MAX_OFFSET)
LENGTH = IntParam("length", 0, 0, MAX_OFFSET)
HISTORY = IntParam("history", 0, 0, MAX_HISTORY)
FOLLOW = BoolParam("follow", True)
