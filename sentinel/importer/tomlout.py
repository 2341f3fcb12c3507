"""A small TOML writer that keeps comments: where each program came from, what was dropped.

(tomli_w writes no comments, and the comments are half of what makes an imported config
readable.) Strings are basic strings with TOML's escapes, keys are bare when they can be;
tests/unit/test_importer.py reads everything written back with tomllib.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from sentinel.importer.conf import printable

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {
    "\\": "\\\\",
    '"': '\\"',
    "\b": "\\b",
    "\t": "\\t",
    "\n": "\\n",
    "\f": "\\f",
    "\r": "\\r",
}
_TO_ESCAPE = re.compile(r'[\\"\x00-\x1f\x7f]')
INLINE_WIDTH = 100  # an inline table longer than this becomes a table of its own


class Table:
    """A TOML table: keys with values or tables, in order, each with comment lines above it."""

    def __init__(self, comments: Iterable[str] = ()) -> None:
        self.comments = list(comments)
        self._items: list[tuple[str | None, Any, list[str]]] = []  # key None: a comment line

    def set(self, key: str, value: Any, comment: str | None = None) -> None:
        self._items = [item for item in self._items if item[0] != key]
        self._items.append((key, value, [comment] if comment else []))

    def note(self, comment: str) -> None:
        self._items.append((None, None, [comment]))

    def table(self, key: str, comments: Iterable[str] = ()) -> Table:
        """The sub-table `key`, made if it is not there yet."""
        existing = self.get(key)
        if isinstance(existing, Table):
            existing.comments.extend(comments)
            return existing
        table = Table(comments)
        self.set(key, table)
        return table

    def order(self, keys: Iterable[str]) -> None:
        """Put the entries in the order of `keys`; others follow, as they were."""
        rank = {key: i for i, key in enumerate(keys)}
        self._items.sort(key=lambda item: rank.get(item[0] or "", len(rank)))

    def get(self, key: str) -> Any:
        return next((value for k, value, _ in self._items if k == key), None)

    def __contains__(self, key: str) -> bool:
        return any(k == key for k, _, _ in self._items)

    def keys(self) -> list[str]:
        return [k for k, _, _ in self._items if k is not None]

    @classmethod
    def of(cls, data: Mapping[str, Any]) -> Table:
        """A table from plain data: each dict that is not in a list becomes a table."""
        table = cls()
        for key, value in data.items():
            table.set(key, cls.of(value) if isinstance(value, Mapping) else value)
        return table


def dumps(table: Table) -> str:
    lines: list[str] = _comment_lines(table.comments)
    _write(table, (), lines)
    return "\n".join(lines).strip("\n") + "\n"


def _write(table: Table, path: tuple[str, ...], lines: list[str]) -> None:
    tables = []
    for key, value, comments in table._items:
        if key is None:
            lines.extend(_comment_lines(comments))
        elif isinstance(value, Table):
            tables.append((key, value, comments))
        else:
            lines.extend(_comment_lines(comments))
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, sub, comments in tables:
        # [programs.web] stays a table; its stdout = { ... } and the like are inline
        inline = _inline(sub) if not sub.comments and not comments and len(path) >= 2 else None
        if inline is not None and len(inline) + len(key) <= INLINE_WIDTH:
            lines.append(f"{_key(key)} = {inline}")
            continue
        if sub.comments or comments or any(not isinstance(v, Table) for _, v, _ in sub._items):
            lines.append("")
            lines.extend(_comment_lines(sub.comments + comments))
            lines.append("[" + ".".join(_key(k) for k in (*path, key)) + "]")
        _write(sub, (*path, key), lines)


def _inline(table: Table) -> str | None:
    """The table as `{ k = v, ... }` when it holds only plain values and no comments."""
    if any(k is None or comments or isinstance(v, Table) for k, v, comments in table._items):
        return None
    return _value({k: v for k, v, _ in table._items})


def _comment_lines(comments: Iterable[str]) -> list[str]:
    return [f"# {printable(line)}".rstrip() for c in comments for line in c.split("\n")]


def _key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    escaped = _TO_ESCAPE.sub(lambda m: _ESCAPES.get(m[0], f"\\u{ord(m[0]):04x}"), text)
    return f'"{escaped}"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, Mapping):
        inner = ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items())
        return "{ " + inner + " }" if inner else "{}"
    if isinstance(value, list | tuple):
        items = [_value(v) for v in value]
        if any(isinstance(v, Mapping) for v in value):
            return "[\n" + "".join(f"    {item},\n" for item in items) + "]"
        return "[" + ", ".join(items) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")
