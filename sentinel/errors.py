"""The exception tree.

SentinelError
 +-- ConfigError         a config file is unreadable or invalid (file, key path, expectation)
 +-- IllegalTransition   the state machine was given an input its state does not accept (a bug)
 +-- NoSuchProcess       a command named a process or group that is not configured
 +-- ControlError        the CLI could not talk to the daemon, or the daemon refused
"""

from __future__ import annotations

from dataclasses import dataclass


class SentinelError(Exception):
    """The root of every error sentinel raises on purpose."""


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong in a config file."""

    file: str
    key: str  # dotted key path, e.g. "programs.web.liveness.period"; "" for the whole file
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.key}" if self.key else self.file
        # One line, whatever a key, a path or a value holds (a TOML key may hold a newline).
        return f"{where}: {self.message}".translate(_ONE_LINE)


# C0 controls and DEL as \x escapes, the line and paragraph separators too.
_ONE_LINE = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F)} | {
    0x2028: "\\u2028",
    0x2029: "\\u2029",
    0x85: "\\x85",
}


class ConfigError(SentinelError):
    """A config file is unreadable or invalid; carries every problem found, not just the first."""

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))

    @classmethod
    def single(cls, file: str, key: str, message: str) -> ConfigError:
        return cls([ConfigProblem(file, key, message)])


class IllegalTransition(SentinelError):
    """The state machine was given an input that its current state does not accept."""


class NoSuchProcess(SentinelError):
    """A command named a process or group that is not configured."""


class ControlError(SentinelError):
    """The CLI could not reach the daemon, or the daemon refused the request."""


class CaptureClosed(SentinelError):
    """`wait_written` was waiting on (or called on) a log capture that has been closed."""
