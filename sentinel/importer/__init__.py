"""`sentinel import-supervisord FILE`: a supervisord.conf and its [include] files as sentinel TOML.

The modules, in the order the config goes through them:
  conf       the files, read as supervisord reads them (configparser, [include], %(here)s),
             and the file and line of every section and key
  values     supervisord's value types; %(...)s expansions -> sentinel's ${VAR} and {instance}
  sections   one section's values, expanded with the names supervisord gives that section
  server     [supervisord], [unix_http_server], [inet_http_server] -> [sentinel], [control];
             the sections with no equivalent
  programs   [program:x] and [group:x] -> [programs.x]
  listeners  [eventlistener:x]: superlance's httpok and memmon -> liveness probes
  tomlout    the TOML, with comments saying where each program came from and what was dropped

Supervisor itself is not needed: it is a test dependency, and the tests pin this reading to
Supervisor's own parser on a corpus of configs (tests/fixtures/supervisord/).

Exit codes: 0 translated (what was not, or not exactly, is listed on stderr); 1 the input
cannot be read, or sentinel could not take what it says (one line naming the file and line);
2 the output cannot be written (it exists, and no --force).
"""

from __future__ import annotations

import os
import platform
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from pydantic import ValidationError

from sentinel.auth import hash_password
from sentinel.errors import ConfigError, ConfigProblem
from sentinel.importer import listeners, programs, server
from sentinel.importer.conf import Note, printable, read
from sentinel.importer.sections import Context
from sentinel.importer.tomlout import Table, dumps
from sentinel.model import ConfigFile

EXIT_OK, EXIT_UNREADABLE, EXIT_UNWRITABLE = 0, 1, 2
PROG = "sentinel import-supervisord"


@dataclass(frozen=True)
class Translation:
    """The TOML, and what was not translated (or not as it was)."""

    text: str
    notes: list[Note]
    files: list[Path]  # the files read: the main one, then its [include] files
    programs: int


def translate(
    path: Path,
    *,
    environ: Mapping[str, str] | None = None,
    node: str | None = None,
    hasher: Callable[[str], str] = hash_password,
) -> Translation:
    """The sentinel config that does what the supervisord config at `path` does; ConfigError
    when it cannot be read. `environ` is what %(ENV_X)s reads where a value must be known
    now (a number, a password), `node` what %(host_node_name)s is."""
    environ = os.environ if environ is None else environ
    node = platform.node() if node is None else node
    conf, notes = read(path, environ, node)
    ctx = Context(conf, environ, node)
    ctx.report.notes.extend(notes)
    document = Table()
    defaults = server.daemon(ctx, document)
    server.control(ctx, document, hasher)
    groups = programs.read_groups(ctx)
    translated = [
        programs.translate(ctx, name, groups.get(name.split(":", 1)[1].strip()), defaults)
        for name in conf.sections("program:")
    ]
    _unique(ctx, translated)
    for name in conf.sections("eventlistener:"):
        listeners.translate(ctx, name, translated)
    server.other_sections(ctx)
    table = document.table("programs")
    for program in translated:
        table.set(program.name, program.table)
    order = {file: i for i, file in enumerate(conf.shown)}
    notes = sorted(ctx.report.notes, key=lambda n: (order.get(n.place.file, 0), n.place.line or 0))
    document.comments = _header(path, conf.files, notes)
    text = dumps(document)
    _validate(text, path)
    return Translation(text, notes, conf.files, len(translated))


def main(
    file: str,
    output: str | None = None,
    force: bool = False,
    *,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
) -> int:
    """The command: the TOML to `output` (or stdout), warnings and errors to stderr."""
    out, err = stdout or sys.stdout, stderr or sys.stderr
    try:
        result = translate(Path(file))
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"{PROG}: {printable(str(problem))}", file=err)
        return EXIT_UNREADABLE
    for note in result.notes:
        print(f"warning: {note}", file=err)
    if output is None:
        out.write(result.text)
        return EXIT_OK
    try:
        _write(Path(output), result.text, force, private="password_hash" in result.text)
    except FileExistsError:
        print(f"{PROG}: {printable(output)} exists: give --force to replace it", file=err)
        return EXIT_UNWRITABLE
    except OSError as exc:
        print(f"{PROG}: cannot write {printable(output)}: {exc.strerror}", file=err)
        return EXIT_UNWRITABLE
    print(f"{printable(output)}: {result.programs} programs", file=err)
    return EXIT_OK


def _unique(ctx: Context, translated: list[programs.Program]) -> None:
    """supervisord names a process GROUP:NAME, sentinel by its name alone: a name used in two
    groups gets its group in front."""
    seen: dict[str, programs.Program] = {}
    keys: dict[str, programs.Program] = {}
    for program in translated:
        if program.name in keys:
            other = keys[program.name].section
            raise ctx.conf.error(program.section, None, f"named {program.name}, as [{other}] is")
        keys[program.name] = program
        clash = next((seen[n] for n in program.processes if n in seen), None)
        if clash is not None:
            template = program.table.get("name") or "{program}"
            program.table.set("name", f"{program.group}_{template}")
            program.processes = [f"{program.group}_{n}" for n in program.processes]
            place = ctx.conf.place(program.section, "process_name")
            ctx.report.warn(
                place,
                f"[{program.section}] process_name",
                f"also a process of [{clash.section}]: named {program.group}_... (sentinel's "
                "process names are unique across groups)",
            )
        seen.update(dict.fromkeys(program.processes, program))


def _header(path: Path, files: list[Path], notes: list[Note]) -> list[str]:
    lines = [f"sentinel config imported from {path} by `sentinel import-supervisord`"]
    if len(files) > 1:
        lines += ["with its [include] files:", *(f"  {f}" for f in files[1:])]
    lines += [
        "",
        "Stop signals go to each program's whole process group (supervisord's stopasgroup",
        "and killasgroup, always on).",
    ]
    if notes:
        lines += ["", "Not translated, or not as it was:"]
        lines += [f"  {note}" for note in notes]
    return lines


def _validate(text: str, path: Path) -> None:
    """What sentinel would refuse is said now, not when it starts."""
    try:
        ConfigFile.model_validate(tomllib.loads(text))
    except ValidationError as exc:
        error = exc.errors()[0]
        key = ".".join(str(part) for part in error["loc"])
        message = f"sentinel would refuse {key}: {error['msg']}"
        raise ConfigError([ConfigProblem(str(path), "", message)]) from None


def _write(path: Path, text: str, force: bool, private: bool) -> None:
    mode = 0o600 if private else 0o644  # password hashes are for sentinel's user only
    if not force:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return
    partial = path.with_name(f".{path.name}.partial")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(partial, path)
