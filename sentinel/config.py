"""TOML -> model: includes, ${VAR} expansion, validation, and errors a user can act on.

`load(path)` returns a `Config` or raises `ConfigError` listing every problem found, each
naming the file, the dotted key path and what was expected. `control_socket(path)` is what a
client needs: the `[control]` socket of the main file, read alone.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import re
import stat
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from sentinel import dependencies
from sentinel.accounts import Account, lookup_user
from sentinel.errors import ConfigError, ConfigProblem
from sentinel.model import (
    NAME_PATTERN,
    Config,
    ConfigFile,
    ControlSection,
    LogSpec,
    ProcessSpec,
    Program,
    expand_instance,
)

DEFAULT_LOCATIONS = (Path("sentinel.toml"), Path("/etc/sentinel/sentinel.toml"))
_VARIABLE = re.compile(r"\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


def find_config(explicit: str | os.PathLike[str] | None) -> Path:
    """-c FILE, else ./sentinel.toml, else /etc/sentinel/sentinel.toml."""
    if explicit is not None:
        return Path(explicit)
    for candidate in DEFAULT_LOCATIONS:
        if candidate.exists():
            return candidate
    raise ConfigError(
        [
            ConfigProblem(
                str(DEFAULT_LOCATIONS[0]),
                "",
                "no config file found "
                "(give one with -c FILE, or create ./sentinel.toml or "
                "/etc/sentinel/sentinel.toml)",
            )
        ]
    )


def load(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Config:
    """Read, expand, merge and validate a config file and its includes."""
    path = Path(path).absolute()
    env = os.environ if environ is None else environ
    problems: list[ConfigProblem] = []
    refs: dict[str, set[str]] = {}  # key path -> the variables expanded there
    document = _read(path, env, problems, refs)
    if document is None:
        raise ConfigError(problems)
    programs = document.get("programs", {})
    origin: dict[str, Path] = dict.fromkeys(programs if isinstance(programs, dict) else (), path)
    for included in _included_files(path, document.get("include"), problems):
        _merge_include(document, included, _read(included, env, problems, refs), origin, problems)
    secrets = _Secrets(refs, env)
    parsed: ConfigFile | None = None
    try:
        parsed = ConfigFile.model_validate(_as_first_instances(document))
    except ValidationError as exc:
        problems.extend(_problems_from(exc, path, origin, secrets))
    except RecursionError:
        problems.append(ConfigProblem(str(path), "", "values are nested too deeply"))
    else:
        problems.extend(dependencies.check(parsed.programs, origin, path))
    if problems or parsed is None:
        raise ConfigError(problems)
    config = _resolve(path, parsed, document.get("programs", {}), origin, secrets)
    daemon = {n for key, names in refs.items() if not key.startswith("programs") for n in names}
    return dataclasses.replace(config, daemon_variables=frozenset(daemon))


class _Secrets:
    """What ${VAR} put where, so that an error about a value taken from the environment says
    which key is wrong without saying what the value is (it may be a password)."""

    def __init__(self, refs: Mapping[str, set[str]], env: Mapping[str, str]) -> None:
        self._refs, self._env = refs, env

    def under(self, key: str) -> list[str]:
        """The values of the variables expanded at `key`, inside it, or around it."""
        found = []
        for where, names in self._refs.items():
            if _related(where, key):
                found += [self._env[n] for n in names if self._env.get(n)]
        return found

    def scrub(self, key: str, message: str, value: object) -> tuple[str, bool]:
        """The message without the values; True if any variable was expanded there."""
        values = self.under(key)
        if not values and not any(_related(where, key) for where in self._refs):
            return message, False
        for text in sorted({repr(value), str(value), *values}, key=len, reverse=True):
            if len(text) > 1:
                message = message.replace(text, "(a value from the environment)")
        return message, True


def _related(a: str, b: str) -> bool:
    """Whether key path `a` is `b`, inside it, or around it."""
    if not a or not b or a == b:
        return a == b or not a or not b
    return any(
        x.startswith(y) and x[len(y)] in ".[" for x, y in ((a, b), (b, a)) if len(x) > len(y)
    )


def control_socket(path: str | os.PathLike[str], environ: Mapping[str, str] | None = None) -> Path:
    """The daemon's control socket, for a client: `[control] socket` of the main file alone.

    Nothing else is read or checked (no includes, no other table, no `${VAR}` outside this
    key): a typo in conf.d/ or a variable set for the daemon but not in the operator's shell
    must not stop `sentinel status` while the daemon runs fine.
    """
    path = Path(path).absolute()
    env = os.environ if environ is None else environ
    try:
        with path.open("rb") as f:
            document = tomllib.load(f)
    except OSError as exc:
        raise ConfigError.single(str(path), "", f"cannot read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError.single(str(path), "", f"invalid TOML: {exc}") from None
    control = document.get("control", {})
    if not isinstance(control, dict):
        raise ConfigError.single(str(path), "control", "expected a table")
    socket = control.get("socket", ControlSection().socket)
    if not isinstance(socket, str) or not socket:
        raise ConfigError.single(str(path), "control.socket", f"expected a path, got {socket!r}")
    problems: list[ConfigProblem] = []
    expanded = str(_expand(socket, env, str(path), "control.socket", problems))
    if problems:
        raise ConfigError(problems)
    return path.parent / expanded


def _as_first_instances(document: dict[str, Any]) -> dict[str, Any]:
    """The document with each program as its first instance ({instance} = instances_start, or
    0): a setting that is only valid once expanded (a TCP port of "800{instance}") validates
    as it will run."""
    programs = document.get("programs")
    if not isinstance(programs, dict):
        return document
    return {
        **document,
        "programs": {k: expand_instance(v, _first_instance(v)) for k, v in programs.items()},
    }


def _first_instance(program: Any) -> int:
    start = program.get("instances_start", 0) if isinstance(program, dict) else 0
    return start if isinstance(start, int) and not isinstance(start, bool) else 0


def process_name(program_name: str, raw: Any, program: Program, instance: int) -> str:
    """The name of one process of a program: from its `name` template (as written, before
    {instance} is expanded), else the program's name, with _{instance} when there are more."""
    template = raw.get("name") if isinstance(raw, dict) else None
    if isinstance(template, str):
        return expand_instance(template.replace("{program}", program_name), instance)  # type: ignore[no-any-return]
    return program_name if program.instances == 1 else f"{program_name}_{instance}"


MAX_FILE_SIZE = 10 << 20  # a config file is text; a bigger one is a mistake


def _read(
    path: Path,
    env: Mapping[str, str],
    problems: list[ConfigProblem],
    refs: dict[str, set[str]] | None = None,
) -> dict[str, Any] | None:
    try:
        raw = read_text_file(path)
        document = tomllib.loads(raw)
    except OSError as exc:
        problems.append(ConfigProblem(str(path), "", f"cannot read: {exc.strerror or exc}"))
        return None
    except tomllib.TOMLDecodeError as exc:
        problems.append(ConfigProblem(str(path), "", f"invalid TOML: {exc}"))
        return None
    except ValueError as exc:  # not a regular file, not UTF-8, too big
        problems.append(ConfigProblem(str(path), "", str(exc)))
        return None
    except RecursionError:
        problems.append(ConfigProblem(str(path), "", "invalid TOML: nested too deeply"))
        return None
    try:
        expanded: dict[str, Any] = _expand(document, env, str(path), "", problems, refs=refs)
    except RecursionError:
        problems.append(ConfigProblem(str(path), "", "values are nested too deeply"))
        return None
    return expanded


def read_text_file(path: Path) -> str:
    """A config file's text: a regular file (a FIFO or a device would block or never end),
    of a sane size, in UTF-8. ValueError (with what is wrong, in words) or OSError."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError("not a regular file")
        if info.st_size > MAX_FILE_SIZE:
            raise ValueError(f"larger than {MAX_FILE_SIZE >> 20} MiB: not a config file")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    try:
        text = data.decode()
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise ValueError(
            f"not UTF-8 text: byte 0x{data[exc.start]:02x} at line {line} (TOML is UTF-8)"
        ) from None
    return text


def _expand(
    value: Any,
    env: Mapping[str, str],
    file: str,
    key: str,
    problems: list[ConfigProblem],
    *,
    refs: dict[str, set[str]] | None = None,
) -> Any:
    """Expand ${VAR} and ${VAR:-default} in every string; $$ is a literal $. `refs` gets,
    per key path, the variables expanded there."""
    if isinstance(value, dict):
        return {
            k: _expand(v, env, file, f"{key}.{k}" if key else k, problems, refs=refs)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _expand(v, env, file, f"{key}[{i}]", problems, refs=refs) for i, v in enumerate(value)
        ]
    if not isinstance(value, str) or "$" not in value:
        return value

    def substitute(match: re.Match[str]) -> str:
        if match[1]:
            return "$"
        name, default = match[2], match[3]
        if refs is not None:
            refs.setdefault(key, set()).add(name)
        if name in env:
            return env[name]
        if default is not None:
            return default
        problems.append(
            ConfigProblem(
                file,
                key,
                f"environment variable {name} is not set "
                f"(give a default with ${{{name}:-default}})",
            )
        )
        return ""

    return _VARIABLE.sub(substitute, value)


def _included_files(main: Path, patterns: object, problems: list[ConfigProblem]) -> list[Path]:
    if patterns is None:
        return []
    if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
        problems.append(
            ConfigProblem(
                str(main),
                "include",
                f'expected a list of glob patterns like ["conf.d/*.toml"], got {patterns!r}',
            )
        )
        return []
    files: list[Path] = []
    for pattern in patterns:
        full = Path(pattern) if Path(pattern).is_absolute() else main.parent / pattern
        files.extend(Path(p) for p in sorted(glob.glob(str(full))) if Path(p) != main)
    return files


def _merge_include(
    document: dict[str, Any],
    path: Path,
    included: dict[str, Any] | None,
    origin: dict[str, Path],
    problems: list[ConfigProblem],
) -> None:
    """An included file adds programs; one program per file is how ops teams deploy."""
    if included is None:
        return
    for key in included:
        if key != "programs":
            problems.append(
                ConfigProblem(
                    str(path), key, "only [programs.*] tables may be set in an included file"
                )
            )
    programs = document.setdefault("programs", {})
    adding = included.get("programs", {})
    if not isinstance(programs, dict) or not isinstance(adding, dict):
        if not isinstance(adding, dict):
            problems.append(ConfigProblem(str(path), "programs", "expected a table"))
        return  # a main file whose programs is no table: validation says so
    for name, body in adding.items():
        if name in programs:
            problems.append(
                ConfigProblem(str(path), f"programs.{name}", f"already defined in {origin[name]}")
            )
            continue
        programs[name] = body
        origin[name] = path


def _problems_from(
    exc: ValidationError, main: Path, origin: dict[str, Path], secrets: _Secrets
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors():
        loc = [str(part) for part in error["loc"] if part != "[key]"]
        file = origin.get(loc[1], main) if len(loc) > 1 and loc[0] == "programs" else main
        key = _key_path(loc)
        problems.append(ConfigProblem(str(file), key, _describe(error, secrets, key)))
    return problems


def _key_path(loc: list[str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if part.isdigit() else (f".{part}" if path else part)
    return path


MAX_SHOWN = 60  # characters of a wrong value an error shows


def _describe(error: Any, secrets: _Secrets, key: str) -> str:
    """What was expected, and what was given, unless it came from the environment (it may be
    a password: the key is named, the value never shown)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        return "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    message, secret = secrets.scrub(key, message, error.get("input"))
    if kind == "value_error":
        return message
    message = message[0].lower() + message[1:]
    expected = f"expected {message.removeprefix('input should be ')}"
    if secret:
        return f"{expected}, got a value from the environment (not shown)"
    shown = repr(error.get("input"))
    if len(shown) > MAX_SHOWN:
        shown = f"{shown[:MAX_SHOWN]}... ({len(shown)} characters)"
    return f"{expected}, got {shown}"


def _resolve(
    path: Path,
    parsed: ConfigFile,
    raw_programs: dict[str, Any],
    origin: dict[str, Path],
    secrets: _Secrets,
) -> Config:
    base = path.parent
    log_dir = base / parsed.sentinel.log_dir
    processes: list[ProcessSpec] = []
    problems: list[ConfigProblem] = []
    users: dict[str, Account] = {}  # looked up once per name, however many instances use it
    for program_name, program in parsed.programs.items():
        first = program.instances_start
        for instance in range(first, first + program.instances):
            name = process_name(program_name, raw_programs[program_name], program, instance)
            try:
                settings = (  # the first instance was validated with the whole file
                    Program.model_validate(expand_instance(raw_programs[program_name], instance))
                    if instance != first
                    else program
                )
            except ValidationError as exc:  # valid as instance 0, not as this one
                file = str(origin.get(program_name, path))
                for error in exc.errors():
                    loc = ["programs", program_name, *(str(part) for part in error["loc"])]
                    key = _key_path(loc)
                    message = f"{_describe(error, secrets, key)} (instance {instance})"
                    problems.append(ConfigProblem(file, key, message))
                break
            if settings.user is not None and settings.user not in users:
                try:
                    users[settings.user] = lookup_user(settings.user)
                except ValueError as exc:
                    file = str(origin.get(program_name, path))
                    problems.append(ConfigProblem(file, f"programs.{program_name}.user", str(exc)))
                    break
            if settings.directory is not None:
                settings = settings.model_copy(update={"directory": str(base / settings.directory)})
            processes.append(
                ProcessSpec(
                    name=name,
                    program=program_name,
                    group=program.group or program_name,
                    instance=instance,
                    settings=settings,
                    stdout_log=_log_path(settings.stdout, base, log_dir, name, "stdout"),
                    stderr_log=None
                    if settings.redirect_stderr
                    else _log_path(settings.stderr, base, log_dir, name, "stderr"),
                    stdout_inherit=_inherit(settings.stdout, "stdout"),
                    stderr_inherit=None
                    if settings.redirect_stderr
                    else _inherit(settings.stderr, "stderr"),
                )
            )
    problems += _shared_log_files(processes, origin, path)
    seen: dict[str, str] = {}
    for spec in processes:
        if not re.match(NAME_PATTERN, spec.name):
            problems.append(
                ConfigProblem(
                    str(origin[spec.program]),
                    f"programs.{spec.program}.name",
                    f"the template gives {spec.name!r}: expected letters, digits, _ . - "
                    "(and {program}, {instance} or {instance:02d})",
                )
            )
        if spec.name in seen:
            problems.append(
                ConfigProblem(
                    str(origin[spec.program]),
                    f"programs.{spec.program}",
                    f"process name {spec.name!r} clashes with program {seen[spec.name]!r}",
                )
            )
        seen[spec.name] = spec.program
    if problems:
        raise ConfigError(problems)
    return Config(
        path=path,
        sentinel=parsed.sentinel,
        control=parsed.control,
        metrics=parsed.metrics,
        notify=parsed.notify.model_copy(
            update={"config": str(base / parsed.notify.config) if parsed.notify.config else None}
        ),
        processes=tuple(processes),
        log_dir=log_dir,
        state_dir=base / parsed.sentinel.state_dir,
        socket_path=base / parsed.control.socket,
    )


# What a container user writes for "the container's output": sentinel's own streams.
_INHERITED = {"/dev/stdout": "stdout", "/dev/stderr": "stderr", "/proc/self/fd/1": "stdout",
              "/proc/self/fd/2": "stderr"}  # fmt: skip


def _shared_log_files(
    processes: list[ProcessSpec], origin: dict[str, Path], main: Path
) -> list[ConfigProblem]:
    """Two streams writing one file overwrite each other's lines: an error naming both keys
    (a program's stderr in its stdout's file is redirect_stderr's job)."""
    problems = []
    owner: dict[Path, str] = {}
    for spec in processes:
        for stream, file in (("stdout", spec.stdout_log), ("stderr", spec.stderr_log)):
            if file is None:
                continue
            key = f"programs.{spec.program}.{stream}.path"
            where = key if spec.name == spec.program else f"{key} (process {spec.name})"
            first = owner.setdefault(file.resolve(), where)
            if first != where:
                problems.append(
                    ConfigProblem(
                        str(origin.get(spec.program, main)),
                        key,
                        f"{file} is also {first}'s file: two streams in one file overwrite "
                        "each other (give each its own, or use redirect_stderr)",
                    )
                )
    return problems


def _log_path(spec: LogSpec, base: Path, log_dir: Path, name: str, stream: str) -> Path | None:
    if spec.path in ("none", "inherit") or spec.path in _INHERITED:
        return None
    if spec.path == "auto":
        return log_dir / f"{name}.{stream}.log"
    return base / spec.path


def _inherit(spec: LogSpec, stream: str) -> str | None:
    """Which of sentinel's own streams this one goes to, if any."""
    return stream if spec.path == "inherit" else _INHERITED.get(spec.path)
