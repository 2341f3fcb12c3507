"""Text that a program or a probe target controls, made safe to carry: control characters
and bidi overrides escaped (`\\x1b`, `\\u202e`), and a bounded length. For what goes into
events, status and alerts; the CLI escapes again for the terminal (cli/output.py)."""

from __future__ import annotations

import re

# C0 (but tab and, where allowed, newline), DEL, C1, and the bidi and line controls.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROLS_AND_NEWLINE = re.compile(
    "[\x00-\x08\x0a-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)
DETAIL_MAX = 1000  # characters of a probe's detail: its first line is what matters


def _escape(match: re.Match[str]) -> str:
    code = ord(match[0])
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def clean(text: str, limit: int, *, newlines: bool = False) -> str:
    """`text` with its control characters escaped (newlines kept if `newlines`), cut to
    `limit` characters with a note of how much was cut."""
    pattern = _CONTROLS if newlines else _CONTROLS_AND_NEWLINE
    text = pattern.sub(_escape, text)
    if len(text) > limit:
        cut = len(text) - limit
        text = f"{text[:limit]}... ({cut} more characters)"
    return text
