"""How the command line shows text: hostile bytes escaped, colours, tables, durations.

What a supervised program or a probe target controls (process and probe details, log lines,
event reasons) may hold bytes a terminal acts on: ESC sequences that retitle the window, move
the cursor or rewrite what was printed, CR and backspace that overwrite a line, bidi controls
that reorder it. On a terminal they are shown escaped (`\\x1b`, `\\u202e`); into a pipe or a file
they pass unchanged, as `ls` does with file names, except that a line break inside a table
cell is escaped there too, so that a row stays one line for `grep` and `awk`.

Colour is for a terminal only, and never when NO_COLOR is set (https://no-color.org) or TERM
is dumb.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TextIO

# C0 controls but tab and newline, DEL, C1 controls (NEL and the 8-bit CSI among them)
_CONTROLS = "\x00-\x08\x0b-\x1f\x7f-\x9f"
# bidi marks, embeddings, overrides and isolates, and the Unicode line and paragraph separators
_FORMATTING = "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029"
_UNSAFE_IN_TEXT = re.compile(f"[{_CONTROLS}{_FORMATTING}]")  # log lines keep \t and \n
_UNSAFE_IN_CELL = re.compile(f"[\t\n{_CONTROLS}{_FORMATTING}]")
_LINE_BREAKS = re.compile("[\n\r]")

GREEN, YELLOW, RED = "32", "33", "31"


def _visible(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str, *, keep_lines: bool = False) -> str:
    """`text` with every control and bidi character written out (`\\x1b`, `\\u202e`); with
    `keep_lines`, tabs and newlines stay as they are."""
    return (_UNSAFE_IN_TEXT if keep_lines else _UNSAFE_IN_CELL).sub(_visible, text)


def width(text: str) -> int:
    """Columns `text` takes on a terminal: wide East Asian characters take two, combining
    marks none."""
    return sum(
        0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
        for c in text
    )


@dataclass(frozen=True)
class Style:
    """How one output stream shows text: escaped, and coloured, on a terminal; as is elsewhere."""

    terminal: bool
    colour: bool

    @classmethod
    def of(cls, stream: TextIO, environ: Mapping[str, str] = os.environ) -> Style:
        terminal = stream.isatty()
        colour = terminal and not environ.get("NO_COLOR") and environ.get("TERM") != "dumb"
        return cls(terminal, colour)

    def text(self, text: str) -> str:
        """Lines of program-controlled text (a log): escaped on a terminal, newlines kept."""
        return escape(text, keep_lines=True) if self.terminal else text

    def line(self, text: str) -> str:
        """Program-controlled text that must stay on one line (a cell, an event)."""
        if self.terminal:
            return escape(text)
        return _LINE_BREAKS.sub(_visible, text)

    def paint(self, text: str, colour: str | None) -> str:
        if not self.colour or colour is None or not text:
            return text
        return f"\x1b[{colour}m{text}\x1b[0m"


@dataclass(frozen=True)
class Cell:
    """A table cell: its text (as the program gave it: the table escapes it) and colour."""

    text: str
    colour: str | None = None


def table(header: Sequence[str], rows: Iterable[Sequence[Cell | str]], style: Style) -> list[str]:
    """Aligned columns two spaces apart, the last one unpadded; cells escaped for `style`."""
    body = [[c if isinstance(c, Cell) else Cell(c) for c in row] for row in rows]
    texts = [[style.line(c.text) for c in row] for row in body]
    columns = len(header)
    widths = [
        max([width(header[i]), *(width(row[i]) for row in texts)]) for i in range(columns - 1)
    ]
    lines = ["  ".join([*(h.ljust(w) for h, w in zip(header, widths, strict=False)), header[-1]])]
    for cells, row in zip(body, texts, strict=True):
        parts = [
            style.paint(text, cell.colour) + " " * (w - width(text))
            for cell, text, w in zip(cells, row, widths, strict=False)
        ]
        parts.append(style.paint(row[-1], cells[-1].colour))
        lines.append("  ".join(parts))
    return [line.rstrip(" ") for line in lines]


def duration(seconds: float) -> str:
    """A span as people read it at a glance: 42s, 5m12s, 3h05m, 2d03h."""
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s // 60 % 60:02d}m"
    return f"{s // 86400}d{s // 3600 % 24:02d}h"
