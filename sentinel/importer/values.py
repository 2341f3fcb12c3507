"""supervisord's values, read as supervisord reads them and written as sentinel reads them.

supervisord expands `%(name)s` in a value when it starts (Python %-formatting against a dict
of names); sentinel expands `${VAR}` from its environment when it starts and `{instance}` per
process. A translated value is a `Template`: literal text, and the parts only known when the
daemon starts (an environment variable, the instance number). Whatever is known now (the
program's name, %(here)s, a variable the config's own `environment` sets) becomes literal.

The value types (booleans, sizes, signals, exit codes, KEY=val pairs) follow
supervisor/datatypes.py; tests/unit/test_importer.py pins each to Supervisor's own function.
"""

from __future__ import annotations

import re
import shlex
import signal
from collections.abc import Callable, Mapping
from dataclasses import dataclass

KIB, MIB, GIB = 2**10, 2**20, 2**30

# --- templates --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Env:
    """`${NAME}`: a variable of the daemon's environment, read when it starts."""

    name: str


@dataclass(frozen=True)
class Instance:
    """`{instance}`, or padded like `{instance:02d}`: the process's number."""

    width: int = 0
    zero: bool = False


@dataclass(frozen=True)
class ProgramName:
    """`{program}`: only in a process-name template."""


Part = str | Env | Instance | ProgramName


@dataclass(frozen=True)
class Template:
    """A value as sentinel will expand it."""

    parts: tuple[Part, ...] = ()

    @classmethod
    def of(cls, text: str) -> Template:
        return cls((text,) if text else ())

    def __add__(self, other: Template) -> Template:
        return Template(_joined(self.parts + other.parts))

    @property
    def literal(self) -> str | None:
        """The text, when nothing in it waits for the daemon's start."""
        if all(isinstance(p, str) for p in self.parts):
            return "".join(p for p in self.parts if isinstance(p, str))
        return None

    @property
    def env_names(self) -> list[str]:
        return [p.name for p in self.parts if isinstance(p, Env)]

    def toml(self) -> str:
        """The string sentinel reads: a literal `$` doubled, variables as `${NAME}`."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part.replace("$", "$$"))
            elif isinstance(part, Env):
                out.append("${" + part.name + "}")
            elif isinstance(part, Instance):
                spec = f":{'0' if part.zero else ''}{part.width}d" if part.width else ""
                out.append("{instance" + spec + "}")
            else:
                out.append("{program}")
        return "".join(out)

    def resolve(self, environ: Mapping[str, str]) -> str:
        """The text now, with variables from `environ` (for what must be a number today)."""
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Env) and part.name in environ:
                out.append(environ[part.name])
            elif isinstance(part, Env):
                raise ValueError(
                    f"environment variable {part.name} is not set (supervisord reads it when it "
                    "starts; set it for the import)"
                )
            else:
                raise ValueError("%(process_num) cannot be used here")
        return "".join(out)

    def with_placeholders(self) -> tuple[str, dict[str, Part]]:
        """The text with a unique word standing for each part that is not literal, and what
        each word stands for: to split the value as supervisord would, then put them back."""
        literal = "".join(p for p in self.parts if isinstance(p, str))
        stand_ins: dict[str, Part] = {}
        out = []
        for part in self.parts:
            if isinstance(part, str):
                out.append(part)
                continue
            word = f"zzSENTINEL{len(stand_ins)}zz"
            while word in literal:
                word = "z" + word + "z"
            stand_ins[word] = part
            out.append(word)
        return "".join(out), stand_ins

    @classmethod
    def restore(cls, text: str, stand_ins: Mapping[str, Part]) -> Template:
        if not stand_ins:
            return cls.of(text)
        pattern = re.compile("|".join(re.escape(word) for word in stand_ins))
        parts: list[Part] = []
        position = 0
        for match in pattern.finditer(text):
            parts.append(text[position : match.start()])
            parts.append(stand_ins[match[0]])
            position = match.end()
        parts.append(text[position:])
        return cls(_joined(tuple(parts)))


def _joined(parts: tuple[Part, ...]) -> tuple[Part, ...]:
    out: list[Part] = []
    for part in parts:
        if part == "":
            continue
        if isinstance(part, str) and out and isinstance(out[-1], str):
            out[-1] += part
        else:
            out.append(part)
    return tuple(out)


# --- %(name)s expansions ----------------------------------------------------------------------


class InstanceNumber:
    """What %(process_num) stands for: each process's own number."""


Expansion = str | int | Template | InstanceNumber | ProgramName
Lookup = Callable[[str], Expansion | None]

# Python's %-format: %(key) flags width .precision length conversion
_FORMAT = re.compile(
    r"%(?:\((?P<key>[^)]*)\))?(?P<spec>[#0\- +]*\d*(?:\.\d*)?[hlL]?)(?P<conv>[diouxXeEfFgGcrsa%])"
)
_PADDING = re.compile(r"(0?)([1-9]\d?)")


def expand(text: str, lookup: Lookup) -> Template:
    """`text` with its %(name)s expansions done, as supervisord does them; ValueError says
    what supervisord would have refused (or what sentinel cannot express)."""
    parts: list[Part] = []
    position = 0
    while (start := text.find("%", position)) != -1:
        parts.append(text[position:start])
        match = _FORMAT.match(text, start)
        if match is None or (match["key"] is None and match["conv"] != "%"):
            raise ValueError(f"{text!r}: a lone % (write %% for a % sign)")
        position = match.end()
        if match["conv"] == "%":
            parts.append("%")
            continue
        key, spec = match["key"], match["spec"] + match["conv"]
        value = lookup(key)
        if value is None:
            raise ValueError(f"{text!r}: supervisord cannot expand %({key}) here")
        parts.extend(_formatted(key, value, spec))
    parts.append(text[position:])
    return Template(_joined(tuple(parts)))


def _formatted(key: str, value: Expansion, spec: str) -> tuple[Part, ...]:
    if isinstance(value, InstanceNumber):
        if spec in ("s", "d", "i", "u"):
            return (Instance(),)
        padded = _PADDING.fullmatch(spec[:-1]) if spec.endswith("d") else None
        if padded is None:
            raise ValueError(
                f"%({key}){spec}: sentinel numbers processes with {{instance}} or a zero- or "
                "space-padded {instance:02d}"
            )
        return (Instance(int(padded[2]), padded[1] == "0"),)
    if isinstance(value, ProgramName):
        if spec != "s":
            raise ValueError(f"%({key}){spec}: a process name template takes %({key})s")
        return (value,)
    if isinstance(value, Template):
        if spec == "s":
            return value.parts
        if value.literal is None:
            raise ValueError(f"%({key}){spec}: only %({key})s can be translated")
        value = value.literal
    try:
        return (("%" + spec) % value,)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"%({key}){spec} cannot format {value!r}: {exc}") from None


# --- value types (supervisor/datatypes.py) ----------------------------------------------------

TRUE_WORDS = ("yes", "true", "on", "1")
FALSE_WORDS = ("no", "false", "off", "0")


def boolean(text: str) -> bool:
    word = text.lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"expected true or false (yes/no, on/off, 1/0), got {text!r}")


def integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"expected a whole number, got {text!r}") from None


def byte_size(text: str) -> int:
    """supervisord's sizes: KB, MB and GB are powers of 1024."""
    lowered = text.lower()
    units = {"kb": KIB, "mb": MIB, "gb": GIB}
    try:
        if lowered[-2:] in units:
            return int(lowered[:-2]) * units[lowered[-2:]]
        return int(lowered)
    except ValueError:
        raise ValueError(
            f'expected a size like "50MB" or a number of bytes, got {text!r}'
        ) from None


def size_text(size: int) -> int | str:
    """A size written for sentinel, exactly: "50MiB" (supervisord's 50MB), or bytes."""
    for unit, name in ((GIB, "GiB"), (MIB, "MiB"), (KIB, "KiB")):
        if size and size % unit == 0:
            return f"{size // unit}{name}"
    return size


def signal_name(text: str) -> str:
    """A signal's name without SIG ("TERM"), from a name with or without SIG, or a number."""
    try:
        number = int(text)
    except ValueError:
        name = text.strip().upper()
        name = name if name.startswith("SIG") else "SIG" + name
        member = signal.Signals.__members__.get(name)
        if member is None:
            raise ValueError(
                f"expected a signal name like TERM, QUIT or HUP, got {text!r}"
            ) from None
        return member.name.removeprefix("SIG")
    try:
        return signal.Signals(number).name.removeprefix("SIG")
    except ValueError:
        raise ValueError(f"expected a signal number, got {text!r}") from None


def exit_codes(text: str) -> list[int]:
    try:
        codes = [int(code) for code in text.split(",")] if text else []
    except ValueError:
        codes = [-1]
    if any(not 0 <= code <= 255 for code in codes):
        raise ValueError(f"expected exit codes between 0 and 255, like 0,2, got {text!r}")
    return codes


def autorestart(text: str) -> str:
    word = text.lower()
    if word in TRUE_WORDS:
        return "always"
    if word in FALSE_WORDS:
        return "never"
    if word == "unexpected":
        return "on-failure"
    raise ValueError(f"expected true, false or unexpected, got {text!r}")


def octal(text: str) -> int:
    try:
        return int(text, 8)
    except ValueError:
        raise ValueError(f'expected an octal number like "022", got {text!r}') from None


def list_of_strings(text: str) -> list[str]:
    return [item.strip() for item in text.split(",")] if text else []


def key_value_pairs(value: Template) -> dict[str, Template]:
    """KEY="val",KEY2=val2, split as supervisord splits it (shlex, quotes kept in a value
    stripped from its ends); a part waiting for the daemon's start stays a part."""
    text, stand_ins = value.with_placeholders()
    lexer = shlex.shlex(text)
    lexer.wordchars += "/.+-():"
    tokens = list(lexer)
    pairs: dict[str, Template] = {}
    for i in range(0, len(tokens), 4):  # KEY = VALUE ,
        triple = tokens[i : i + 3]
        if len(triple) != 3 or triple[1] != "=":
            raise ValueError(f"expected KEY=value pairs separated by commas, got {text!r}")
        key = Template.restore(triple[0], stand_ins).literal
        if key is None:
            raise ValueError(f"a variable's name must be written out, got {triple[0]!r}")
        pairs[key] = Template.restore(triple[2].strip("'\""), stand_ins)
    return pairs


# supervisord's loglevel -> sentinel's log_level
LOG_LEVELS = {
    "critical": "error",
    "error": "error",
    "warn": "warning",
    "info": "info",
    "debug": "debug",
    "trace": "debug",
    "blather": "debug",
}


def log_level(text: str) -> str:
    level = LOG_LEVELS.get(text.lower())
    if level is None:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {text!r}")
    return level
