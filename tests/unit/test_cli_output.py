"""The CLI's output: escaping what programs control, colours, tables, status rows, event lines."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest

from sentinel.cli.describe import detail, event_line, status_table
from sentinel.cli.output import Cell, Style, duration, escape, table
from sentinel.snapshot import ProbeStatus, ProcessSnapshot
from sentinel.states import Health, ProcessState

TERMINAL = Style(terminal=True, colour=True)
PLAIN_TERMINAL = Style(terminal=True, colour=False)
PIPE = Style(terminal=False, colour=False)
ANSI = re.compile(r"\x1b\[[0-9;]*m")


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("\x1b]0;pwned\x07", r"\x1b]0;pwned\x07"),  # retitles the window
        ("\x1b[2J", r"\x1b[2J"),  # clears the screen
        ("ok\rFAIL", r"ok\x0dFAIL"),  # overwrites the line
        ("ab\x08\x08", r"ab\x08\x08"),  # backspaces over it
        ("\x9b31m", r"\x9b31m"),  # the 8-bit CSI
        ("\x85\x7f\x00", r"\x85\x7f\x00"),  # NEL, DEL, NUL
        ("invoice\u202efdp.exe", r"invoice\u202efdp.exe"),  # right-to-left override
        ("\u2066x\u2069\u200f", r"\u2066x\u2069\u200f"),  # isolates and marks
        ("a\u2028b", r"a\u2028b"),  # a line separator
        ("a\tb\nc", r"a\x09b\x0ac"),  # in a cell, tabs and newlines too
        ("café 日本 ✓ \\x1b", "café 日本 ✓ \\x1b"),  # printable text is left alone
    ],
)
def test_escape_makes_controls_visible(text: str, shown: str) -> None:
    """Every control and bidi character is written out as \\xNN or \\uNNNN."""
    assert escape(text) == shown


def test_escape_keeping_lines_keeps_tabs_and_newlines_only() -> None:
    """Log text keeps its tabs and newlines; CR and the rest are still escaped."""
    assert escape("a\tb\r\n\x1b[1mc\n", keep_lines=True) == "a\tb\\x0d\n\\x1b[1mc\n"


class FakeStream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize(
    ("tty", "environ", "expected"),
    [
        (True, {"TERM": "xterm"}, Style(terminal=True, colour=True)),
        (True, {"TERM": "xterm", "NO_COLOR": "1"}, Style(terminal=True, colour=False)),
        (True, {"TERM": "xterm", "NO_COLOR": ""}, Style(terminal=True, colour=True)),
        (True, {"TERM": "dumb"}, Style(terminal=True, colour=False)),
        (False, {"TERM": "xterm"}, Style(terminal=False, colour=False)),
    ],
)
def test_colour_only_on_a_terminal_without_no_color(
    tty: bool, environ: dict[str, str], expected: Style
) -> None:
    """Colour needs a terminal; NO_COLOR (non-empty) and TERM=dumb turn it off."""
    assert Style.of(FakeStream(tty), environ) == expected


def test_a_pipe_gets_bytes_as_they_are_but_line_breaks_in_a_cell() -> None:
    """Into a pipe only a cell's line breaks are escaped (a row stays a line); text passes."""
    assert PIPE.line("\x1b[31mred\r\nx\u202e") == "\x1b[31mred\\x0d\\x0ax\u202e"
    assert PIPE.text("\x1b[31mred\r\n") == "\x1b[31mred\r\n"
    assert PLAIN_TERMINAL.text("\x1b[31mred\r\n") == "\\x1b[31mred\\x0d\n"
    assert PIPE.paint("RUNNING", "32") == "RUNNING"
    assert TERMINAL.paint("RUNNING", "32") == "\x1b[32mRUNNING\x1b[0m"


def test_table_aligns_columns_whatever_the_colours_and_wide_characters() -> None:
    """Columns line up on the text people see: colour codes and wide characters included."""
    rows = [
        ["web", Cell("RUNNING", "32"), "up"],
        ["日本", Cell("FATAL", "31"), "exited with 1"],
        ["x", Cell("STOPPED"), ""],
    ]
    coloured = table(["NAME", "STATE", "DETAIL"], rows, TERMINAL)
    plain = table(["NAME", "STATE", "DETAIL"], rows, PIPE)
    assert plain == [
        "NAME  STATE    DETAIL",
        "web   RUNNING  up",
        "日本  FATAL    exited with 1",
        "x     STOPPED",
    ]
    assert [ANSI.sub("", line) for line in coloured] == plain
    assert coloured[1] == "web   \x1b[32mRUNNING\x1b[0m  up"


def test_table_escapes_hostile_cells_on_a_terminal() -> None:
    """A cell cannot move the cursor or break the row, on a terminal or into a pipe."""
    rows = [["evil\x1b[2J", "line\nbreak"]]
    assert table(["NAME", "DETAIL"], rows, PLAIN_TERMINAL)[1] == "evil\\x1b[2J  line\\x0abreak"
    assert table(["NAME", "DETAIL"], rows, PIPE)[1] == "evil\x1b[2J  line\\x0abreak"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(0, "0s"), (59.9, "59s"), (60, "1m00s"), (312, "5m12s"), (11100, "3h05m"), (183600, "2d03h")],
)
def test_durations_read_at_a_glance(seconds: float, shown: str) -> None:
    """Uptime: seconds, then minutes, hours, days, two units at most."""
    assert duration(seconds) == shown


def snapshot(**changes: Any) -> ProcessSnapshot:
    running = ProcessSnapshot(
        name="web", program="web", group="web", priority=999, state=ProcessState.RUNNING,
        pid=42, exit_code=None, restarts=0, uptime_seconds=75.0, start_time=1.0,
        health=Health.UNKNOWN, ready=True, probes=(), configured_probes=(), backoff_attempt=0,
        backoff_delay_seconds=0.0, backoff_remaining_seconds=0.0, flapping=False, detail="",
    )  # fmt: skip
    return running._replace(**changes)


def test_status_table_columns() -> None:
    """NAME STATE PID UPTIME RESTARTS DETAIL; HOST first for a fleet; HEALTH and READY only
    when some process has probes; states coloured."""
    web = snapshot()
    fatal = snapshot(
        name="job", state=ProcessState.FATAL, pid=None, restarts=3, detail="exited with 1"
    )
    assert status_table([(None, web), (None, fatal)], PIPE) == [
        "NAME  STATE    PID  UPTIME  RESTARTS  DETAIL",
        "web   RUNNING  42   1m15s   0",
        "job   FATAL    -    -       3         exited with 1",
    ]
    probed = snapshot(
        name="api",
        configured_probes=("liveness",),
        health=Health.UNHEALTHY,
        ready=False,
        probes=(ProbeStatus("liveness", ok=False, detail="HTTP 503", latency=0.01),),
    )
    lines = status_table([("h1", web), ("h2:9001", probed)], TERMINAL)
    assert [ANSI.sub("", line) for line in lines] == [
        "HOST     NAME  STATE    PID  UPTIME  RESTARTS  HEALTH     READY  DETAIL",
        "h1       web   RUNNING  42   1m15s   0         -          -",
        "h2:9001  api   RUNNING  42   1m15s   0         unhealthy  no     liveness: HTTP 503",
    ]
    assert "\x1b[32mRUNNING\x1b[0m" in lines[1]
    assert "\x1b[31munhealthy\x1b[0m" in lines[2] and "\x1b[33mno\x1b[0m" in lines[2]


@pytest.mark.parametrize(
    ("state", "colour"),
    [
        (ProcessState.RUNNING, "32"),
        (ProcessState.STARTING, "33"),
        (ProcessState.STOPPING, "33"),
        (ProcessState.BACKOFF, "33"),
        (ProcessState.EXITED, "31"),
        (ProcessState.FATAL, "31"),
        (ProcessState.UNKNOWN, "31"),
    ],
)
def test_state_colours(state: ProcessState, colour: str) -> None:
    """Green for running, yellow for on the way, red for given up or ended."""
    line = status_table([(None, snapshot(state=state))], TERMINAL)[1]
    assert f"\x1b[{colour}m{state.name}\x1b[0m" in line


def test_stopped_is_not_coloured() -> None:
    """STOPPED is where an operator put it: nothing to draw the eye to."""
    line = status_table([(None, snapshot(state=ProcessState.STOPPED, pid=None))], TERMINAL)[1]
    assert "\x1b" not in line


@pytest.mark.parametrize(
    ("changes", "shown"),
    [
        ({}, ""),
        ({"detail": "exited with 1", "restarts": 2}, ""),  # running: how the last run ended is history
        ({"state": ProcessState.EXITED, "pid": None, "detail": "exited with 0"}, "exited with 0"),
        (
            {"state": ProcessState.BACKOFF, "pid": None, "detail": "liveness failed 3x: HTTP 503",
             "backoff_remaining_seconds": 4.25},
            "liveness failed 3x: HTTP 503; next start in 4.25s",
        ),
        ({"flapping": True}, "flapping"),
        (
            {"probes": (ProbeStatus("readiness", ok=True, detail="DISK WARNING", latency=0, warning=True),)},
            "readiness: warning: DISK WARNING",
        ),
    ],
)  # fmt: skip
def test_detail_says_why(changes: dict[str, Any], shown: str) -> None:
    """The DETAIL column: why it is not running, the backoff left, flapping, probe findings."""
    assert detail(snapshot(**changes)) == shown


def at(_: float) -> str:
    return "12:00:00.000"


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (
            {"event": "state_changed", "process": "web", "old": "STARTING", "new": "RUNNING",
             "pid": 42, "reason": "up for 1s"},
            "web              state_changed  STARTING -> RUNNING (pid 42): up for 1s",
        ),
        (
            {"event": "restart", "process": "web", "reason": "liveness", "restarts": 3,
             "detail": "liveness failed 3x: HTTP 503", "exit_code": None},
            "web              restart        liveness, restart #3: liveness failed 3x: HTTP 503",
        ),
        (
            {"event": "backoff", "process": "web", "attempt": 2, "delay": 2.0},
            "web              backoff        attempt 2, next start in 2s",
        ),
        (
            {"event": "config_reloaded", "ok": True, "added": ["a"], "removed": [], "changed": ["b"]},
            "-                config_reloaded added: a; removed: -; changed: b",
        ),
        (
            {"event": "config_reloaded", "ok": False, "error": "s.toml: x: bad\ns.toml: y: bad"},
            "-                config_reloaded rejected: s.toml: x: bad\\x0as.toml: y: bad",
        ),
        (
            {"event": "fatal", "process": "job", "detail": "\x1b]0;pwned\x07", "exit_code": 1},
            "job              fatal          \\x1b]0;pwned\\x07",
        ),
    ],
)  # fmt: skip
def test_event_lines(event: dict[str, Any], text: str) -> None:
    """Each event is one readable line: time, process, event, what happened, escaped."""
    assert (
        event_line({"timestamp": 0.0, **event}, None, PLAIN_TERMINAL, clock=at)
        == f"12:00:00.000  {text}"
    )


def test_event_lines_name_the_host_and_colour_the_event() -> None:
    """For a fleet the host comes after the time; alarming events are red on a terminal."""
    line = event_line({"event": "fatal", "process": "job", "detail": "x"}, "h1", TERMINAL, at)
    assert line == "12:00:00.000  h1  job              \x1b[31mfatal\x1b[0m          x"
