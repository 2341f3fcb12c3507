"""Where log files may be: checked when the config is read, so that a bad log directory is a
config error naming its key, never a traceback at run time.

sentinel (root) writes every log file, so a log file's directory, and every directory above
it, must be one that the program's user cannot write: a program that can write there can swap
its log file (or the directory itself) for a symlink, and have root write, at the next start
or rotation, a file of its choosing. Log files are opened with O_NOFOLLOW relative to their
directory's fd on top of this (logs.py), so that a link found there is refused, never
followed. A sticky directory (/tmp) is fine above a directory that the user does not own.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sentinel.accounts import Account, lookup_user
from sentinel.errors import ConfigError, ConfigProblem
from sentinel.model import Config, ProcessSpec


def problems(config: Config) -> list[ConfigProblem]:
    found: list[ConfigProblem] = []
    seen: set[tuple[Path, str | None]] = set()
    for spec in config.processes:
        for stream, path in _logs(spec):
            directory = path.parent
            key = (
                f"programs.{spec.program}.{stream}"
                if path != _auto(config, spec, stream)
                else ("sentinel.log_dir")
            )
            if (directory, None) not in seen:
                seen.add((directory, None))
                problem = _usable(directory)
                if problem:
                    found.append(ConfigProblem(str(config.path), key, problem))
                    continue
            user = spec.settings.user
            if user is None or (directory, user) in seen:
                continue
            seen.add((directory, user))
            try:
                account = lookup_user(user)
            except ValueError:
                continue  # config.py says so already
            if account.uid == 0:
                continue  # root may write anywhere anyway
            writable = _writable_by(directory, account)
            if writable is not None:
                found.append(
                    ConfigProblem(
                        str(config.path),
                        key,
                        f"{writable} is writable by {account.name}, who runs "
                        f"programs.{spec.program}: it could replace its log file with a link "
                        "and have sentinel write where it points. Use a directory only root "
                        "can write",
                    )
                )
    return found


def check(config: Config) -> None:
    found = problems(config)
    if found:
        raise ConfigError(found)


def _logs(spec: ProcessSpec) -> Iterator[tuple[str, Path]]:
    if spec.stdout_log is not None:
        yield "stdout", spec.stdout_log
    if spec.stderr_log is not None:
        yield "stderr", spec.stderr_log


def _auto(config: Config, spec: ProcessSpec, stream: str) -> Path:
    return config.log_dir / f"{spec.name}.{stream}.log"


def _usable(directory: Path) -> str | None:
    """Why sentinel cannot create (or write in) `directory`; None if it can."""
    existing = directory
    while not os.path.lexists(existing) and existing != existing.parent:
        existing = existing.parent
    try:
        info = existing.stat()
    except OSError as exc:
        return f"{existing}: {exc.strerror}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{existing} is not a directory: the log directory {directory} cannot be made"
    if not os.access(existing, os.W_OK | os.X_OK):
        what = "the log directory" if existing == directory else f"{existing}, above {directory},"
        why = "read-only" if _read_only(existing) else "permission denied"
        return f"sentinel cannot write in {what} ({why})"
    return None


def _read_only(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def _writable_by(directory: Path, account: Account) -> Path | None:
    """The first of `directory` and its parents that `account` could write in (or replace),
    or None."""
    path = directory.absolute()
    child: Path | None = None
    while True:
        try:
            info = path.stat()
        except OSError:
            info = None  # not made yet: sentinel makes it, as root
        if info is not None and _may_write(info, account):
            sticky = bool(info.st_mode & stat.S_ISVTX)
            owner_of_child = _owner(child) if child is not None else None
            if not (sticky and owner_of_child is not None and owner_of_child != account.uid):
                return path
        if path == path.parent:
            return None
        child, path = path, path.parent


def _may_write(info: os.stat_result, account: Account) -> bool:
    if account.uid == 0:
        return True
    if info.st_uid == account.uid:
        return bool(info.st_mode & stat.S_IWUSR)
    if info.st_gid == account.gid or info.st_gid in account.groups:
        return bool(info.st_mode & stat.S_IWGRP)
    return bool(info.st_mode & stat.S_IWOTH)


def _owner(path: Path) -> int | None:
    try:
        return path.lstat().st_uid
    except OSError:
        return 0  # not made yet: sentinel makes it, as root
