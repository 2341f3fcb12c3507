"""The commands that need no daemon: run it, check a config, test the alerts, hash a password."""

from __future__ import annotations

import argparse
import asyncio
import sys

from sentinel.cli.exitcodes import EXIT_NOT_IN_STATE, EXIT_OK, EXIT_USAGE
from sentinel.cli.output import Style, table

# The config's models (pydantic) are imported where they are used: a client command need not
# pay for them.


def run(args: argparse.Namespace) -> int:
    # Imported here: client commands start faster without the daemon's imports (uvicorn).
    from sentinel.daemon import run  # noqa: PLC0415
    from sentinel.statefile import AlreadyRunning  # noqa: PLC0415

    try:
        return run(args.config, args.adopt_fd)
    except AlreadyRunning as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_USAGE


def check_config(args: argparse.Namespace) -> int:
    # apprise is slow to import; only this needs it
    from sentinel import logpaths, notify  # noqa: PLC0415
    from sentinel.config import find_config, load  # noqa: PLC0415

    config = load(find_config(args.config))
    notify.check(config)
    logpaths.check(config)
    print(f"{config.path}: ok, {len(config.processes)} processes")
    rows = [
        (spec.name, spec.group, str(spec.priority), str(spec.settings.autostart).lower(),
         " ".join(spec.settings.command))
        for spec in sorted(config.processes, key=lambda p: (p.priority, p.name))
    ]  # fmt: skip
    header = ("NAME", "GROUP", "PRIORITY", "AUTOSTART", "COMMAND")
    print("\n".join(table(header, rows, Style.of(sys.stdout))))
    return EXIT_OK


def notify_test(args: argparse.Namespace) -> int:
    from sentinel.config import find_config, load  # noqa: PLC0415
    from sentinel.notify import send_test  # noqa: PLC0415 (apprise: see check_config)

    config = load(find_config(args.config))
    if not config.notify.urls and config.notify.config is None:
        print(
            f"{config.path}: [notify] has no urls and no config: nothing to test", file=sys.stderr
        )
        return EXIT_USAGE
    results = asyncio.run(send_test(config.notify))
    for url, ok in results:
        print(f"{'ok    ' if ok else 'FAILED'}  {url}")
    return EXIT_OK if all(ok for _, ok in results) else EXIT_NOT_IN_STATE


def hash_password(_: argparse.Namespace) -> int:
    import getpass  # noqa: PLC0415 (termios: not for the daemon, which imports this module)

    from sentinel.auth import hash_password  # noqa: PLC0415 (only this command needs it)

    if sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            print("sentinel: the passwords differ", file=sys.stderr)
            return EXIT_USAGE
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print("sentinel: an empty password is not a password", file=sys.stderr)
        return EXIT_USAGE
    print(hash_password(password))
    return EXIT_OK


def import_supervisord(args: argparse.Namespace) -> int:
    from sentinel.importer import main  # noqa: PLC0415 (only this command needs it)

    return main(args.file, args.output, args.force)
