"""Reading a supervisord.conf the way supervisord reads it, and remembering where things are.

supervisord parses its config with configparser's RawConfigParser (`;` and `#` start inline
comments, a section may be given twice and its keys merge), reads the [include] files listed
in the main file (globs relative to it; an included file's own [include] is not followed),
and replaces %(here)s in each file with that file's directory as it reads it. This module
does the same with the same parser, and keeps, for every section and key, the file and line
it came from, for comments in the output and for errors a user can act on.
"""

from __future__ import annotations

import configparser
import glob
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sentinel.errors import ConfigError, ConfigProblem
from sentinel.importer.values import Expansion, Template, expand

_HEADER = re.compile(r"\[(?P<header>.+)\]")  # configparser's SECTCRE
_OPTION = re.compile(r"(?P<option>[^=:]*?)\s*[=:]")  # configparser's OPTCRE, up to the value
_HERE = "%(here)s"
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")


def printable(text: str) -> str:
    """`text` with control characters escaped: it goes to a terminal or into a comment."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)


@dataclass(frozen=True)
class Place:
    """Where something is: a file, and the line when known."""

    file: str
    line: int | None = None

    def __str__(self) -> str:
        return printable(self.file if self.line is None else f"{self.file}:{self.line}")


@dataclass(frozen=True)
class Note:
    """Something that was not translated, or not as it was: where, and what to do instead."""

    place: Place
    subject: str  # "[program:web] stdout_syslog"
    message: str

    def __str__(self) -> str:
        return f"{self.place}: {printable(self.subject)}: {printable(self.message)}"


@dataclass
class Report:
    notes: list[Note] = field(default_factory=list)

    def warn(self, place: Place, subject: str, message: str) -> None:
        note = Note(place, subject, message)
        if note not in self.notes:
            self.notes.append(note)


class Conf:
    """A supervisord config as supervisord reads it: the main file and its [include] files."""

    def __init__(self, main: Path) -> None:
        self.main = main  # as given
        self.here = str(Path(os.path.abspath(main)).parent)  # supervisord's %(here)s
        self.files: list[Path] = []
        self.shown: list[str] = []  # the files as messages name them
        self.parser = configparser.RawConfigParser(inline_comment_prefixes=(";", "#"), strict=False)
        self._sections: dict[str, Place] = {}  # where each section first appears
        self._options: dict[tuple[str, str], Place] = {}  # where each key was last set

    def sections(self, prefix: str = "") -> list[str]:
        return [s for s in self.parser.sections() if s.startswith(prefix)]

    def has(self, section: str, key: str) -> bool:
        return self.parser.has_option(section, key)

    def raw(self, section: str, key: str) -> str | None:
        if not self.parser.has_option(section, key):
            return None
        return self.parser.get(section, key)

    def keys(self, section: str) -> list[str]:
        return self.parser.options(section)

    def place(self, section: str, key: str | None = None) -> Place:
        if key is not None:
            found = self._options.get((section, key)) or self._options.get(
                (self.parser.default_section, key)
            )
            if found is not None:
                return found
        return self._sections.get(section, Place(str(self.main)))

    def error(self, section: str, key: str | None, message: str) -> ConfigError:
        subject = f"[{section}]" + (f" {key}" if key else "")
        return ConfigError([ConfigProblem(str(self.place(section, key)), subject, message)])

    # --- reading ----------------------------------------------------------------------------

    def read(self, path: Path, shown: str) -> None:
        text = _text_of(path, shown)
        try:
            self.parser.read_string(text, source=shown)
        except configparser.MissingSectionHeaderError as exc:
            raise _problem(shown, exc.lineno, "a key before the first [section]") from None
        except configparser.ParsingError as exc:
            line, content = exc.errors[0]
            raise _problem(shown, line, f"cannot parse {content}") from None
        except configparser.Error as exc:
            raise _problem(shown, None, exc.message) from None
        self.files.append(path)
        self.shown.append(shown)
        self._locate(text, shown)

    def expand_here(self, here: str) -> None:
        """Replace %(here)s in every value read so far, as supervisord does after each file."""
        for section in self.parser.sections():
            for key, value in self.parser.items(section):
                if _HERE in value:
                    self.parser.set(section, key, value.replace(_HERE, here))

    def _locate(self, text: str, shown: str) -> None:
        section: str | None = None
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip() or line.lstrip()[0] in "#;" or line[0].isspace():
                continue  # blank, a comment, or a value's continuation
            header = _HEADER.match(line.strip())
            if header is not None:
                section = header["header"]
                self._sections.setdefault(section, Place(shown, number))
                continue
            option = _OPTION.match(line)
            if section is not None and option is not None:
                key = self.parser.optionxform(option["option"].strip())
                self._options[(section, key)] = Place(shown, number)


def read(path: Path, environ: Mapping[str, str], node: str) -> tuple[Conf, list[Note]]:
    """The config at `path` and its [include] files; ConfigError when supervisord could not
    read them. Also what supervisord would have warned about."""
    conf = Conf(path)
    notes: list[Note] = []
    conf.read(path, str(path))
    if not conf.parser.has_section("include"):
        return conf, notes
    conf.expand_here(conf.here)
    raw = conf.raw("include", "files")
    if raw is None:
        raise conf.error("include", None, "supervisord needs a files = ... line here")

    def names(key: str) -> Expansion | None:
        if key == "here":
            return conf.here
        if key == "host_node_name":
            return node
        if key.startswith("ENV_"):
            return Template.of(environ[key[4:]]) if key[4:] in environ else None
        return None

    try:
        patterns = expand(raw, names).resolve(environ).split()
    except ValueError as exc:
        raise conf.error("include", "files", str(exc)) from None
    included_from = conf.place("include", "files")
    for pattern in patterns:
        full = os.path.join(conf.here, pattern)
        found = sorted(glob.glob(full))
        if not found:
            notes.append(Note(included_from, "[include] files", f"no file matches {full}"))
        for name in found:
            had_include = conf.raw("include", "files")
            conf.read(Path(name), name)
            if conf.raw("include", "files") != had_include:
                notes.append(
                    Note(
                        conf.place("include", "files"),
                        "[include] files",
                        "supervisord reads [include] in the main file only: not followed",
                    )
                )
            conf.expand_here(os.path.dirname(os.path.abspath(name)))
    return conf, notes


def _text_of(path: Path, shown: str) -> str:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise _problem(shown, None, f"cannot read: {exc.strerror}") from None
    try:
        return data.decode()
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise _problem(shown, line, "not UTF-8 text") from None


def _problem(file: str, line: int | None, message: str) -> ConfigError:
    return ConfigError([ConfigProblem(str(Place(file, line)), "", message)])
