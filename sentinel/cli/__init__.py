"""The command line: `sentinel run` is the daemon; every other command is a client of its API.

Modules:
  servers   where the daemons are (-s, --hosts, $SENTINEL_SERVERS, $SENTINEL_SERVER, [control])
  client    one daemon's API over its socket or HTTP (the only httpx importer), errors in words
  fleet     one command against every server at once; failures reported; the exit code
  commands  status, start, stop, restart, signal, reload, shutdown
  streams   tail and events
  describe  the status table and event lines, in words
  output    escaping what programs control, colours, tables
  local     run, check-config, notify-test, hash-password, import-supervisord
  exitcodes the exit codes

A command's module is imported when the command runs: the daemon's process holds none of the
client's (httpx), a client none of the daemon's.

Exit codes: 0 ok, 1 a named process is not in the wanted state (or a reload was rejected),
2 a usage or connection error, on any host (fleet.py); 130 when interrupted (but a
`-f` follow, which Ctrl-C ends: 0).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sentinel import __version__
from sentinel.cli.exitcodes import EXIT_NOT_IN_STATE, EXIT_OK, EXIT_USAGE
from sentinel.errors import ConfigError, ControlError

if TYPE_CHECKING:
    from sentinel.cli.client import Credentials

__all__ = ["main"]

QUICK_TIMEOUT = 10.0  # seconds to connect, and for an answer that involves no waiting
EXIT_INTERRUPTED = 130


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        result: int = args.handler(args)
        return result
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EXIT_NOT_IN_STATE if args.command == "check-config" else EXIT_USAGE
    except ControlError as exc:
        print(f"sentinel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK if getattr(args, "follow", False) else EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader left (`| head`): nothing failed. Later writes, and the flush at exit,
        # go nowhere instead of raising again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _imported(where: str) -> Callable[..., int]:
    """The function `module:name`, imported when the command runs: the daemon (`run`) never
    loads the HTTP client (httpx), and a client command never loads the daemon (uvicorn)."""
    module, name = where.split(":")

    def call(*args: Any) -> int:
        result: int = getattr(importlib.import_module(f"sentinel.cli.{module}"), name)(*args)
        return result

    return call


def _client(where: str) -> Callable[[argparse.Namespace], int]:
    """A client command's handler: find the servers, ask for the password, then run the
    function `module:name` on them."""
    run = _imported(where)

    def handler(args: argparse.Namespace) -> int:
        from sentinel.cli.commands import Command  # noqa: PLC0415 (see _imported)
        from sentinel.cli.fleet import Fleet  # noqa: PLC0415
        from sentinel.cli.servers import find_servers  # noqa: PLC0415

        servers = find_servers(
            [*(args.servers or []), *getattr(args, "servers_after", [])],
            args.hosts,
            args.config,
            os.environ,
        )
        timeout = QUICK_TIMEOUT if args.timeout is None else args.timeout
        fleet = Fleet(
            servers,
            credentials=credentials(args.user, os.environ),
            timeout=timeout,
            wait_limit=args.timeout,  # None: a start waits as long as the daemon does
        )
        return run(Command(fleet, args))

    return handler


def credentials(user: str | None, environ: Mapping[str, str]) -> Credentials | None:
    """--user NAME with the password from $SENTINEL_PASSWORD, else asked on the terminal."""
    if user is None:
        return None
    password = environ.get("SENTINEL_PASSWORD")
    if password is None:
        if not sys.stdin.isatty():
            raise ControlError(
                f"--user {user} needs a password: set SENTINEL_PASSWORD "
                "(there is no terminal to ask on)"
            )
        import getpass  # noqa: PLC0415 (it loads termios: the daemon has no use for it)

        password = getpass.getpass(f"password for {user}: ")
    return user, password


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 < value < 1e9:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentinel", description=__doc__.split("\n")[0])
    parser.add_argument("--version", action="version", version=f"sentinel {__version__}")
    config = argparse.ArgumentParser(add_help=False)
    client = argparse.ArgumentParser(add_help=False)
    # Options go before the command (as supervisorctl takes them) or after it; after it,
    # SUPPRESS keeps a subcommand from resetting what was given before it.
    for options, default in ((parser, None), (config, argparse.SUPPRESS)):
        options.add_argument(
            "-c",
            "--config",
            default=default,
            help="config file (default: ./sentinel.toml, then /etc/sentinel/sentinel.toml)",
        )
    for options, default, servers in (
        (parser, None, "servers"),
        (client, argparse.SUPPRESS, "servers_after"),
    ):
        options.add_argument(
            "-s",
            "--server",
            dest=servers,
            action="append",
            default=default,
            metavar="SERVER",
            help="a daemon: a unix socket path, an http(s) URL or HOST:PORT; repeat it for "
            "several (default: $SENTINEL_SERVERS, $SENTINEL_SERVER, the config's [control] "
            "socket)",
        )
        options.add_argument(
            "--hosts",
            default=default,
            metavar="FILE",
            help="the daemons listed in FILE, one a line (# comments)",
        )
        options.add_argument(
            "--user",
            default=default,
            help="log in as this user (password: $SENTINEL_PASSWORD, else asked)",
        )
        options.add_argument(
            "--timeout",
            type=_positive,
            default=default,
            metavar="SECONDS",
            help=f"per host: to connect and to answer (default: {QUICK_TIMEOUT:g}s, "
            "no limit on waiting for processes)",
        )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(
        name: str, handler: str, help: str, *, remote: bool = True, json: str = ""
    ) -> argparse.ArgumentParser:
        """`handler`: "module:function" in sentinel.cli."""
        # Local commands take the client options too, and ignore them: a wrapper that adds
        # -s to every command keeps working.
        p = sub.add_parser(name, parents=[config, client], help=help, description=help)
        p.set_defaults(handler=_client(handler) if remote else _imported(handler))
        if json:
            p.add_argument("--json", action="store_true", help=json)
        return p

    p = command("run", "local:run", "run the daemon in the foreground", remote=False)
    # The daemon's own, when it re-executes itself (`sentinel reexec`): not for people.
    p.add_argument("--adopt-fd", type=int, default=None, help=argparse.SUPPRESS)
    command(
        "check-config",
        "local:check_config",
        "validate the config and print the processes",
        remote=False,
    )
    p = command(
        "status", "commands:status", "show the state of processes", json="a JSON array of processes"
    )
    p.add_argument("names", nargs="*", metavar="NAME|GROUP:*")
    for verb in ("start", "stop", "restart"):
        p = command(
            verb,
            "commands:control",
            f"{verb} processes and wait until they are there",
            json="a JSON array: name, ok, process",
        )
        p.add_argument("names", nargs="+", metavar="NAME|GROUP:*|all")
        p.add_argument("--no-wait", action="store_true", help="return once asked, not when done")
        if verb == "restart":
            p.add_argument(
                "--rolling",
                action="store_true",
                help="a program's instances one at a time, each ready before the next (NAME "
                "may be a program); exit 1 if one is not ready within its rolling_timeout",
            )
    p = command(
        "signal",
        "commands:signal",
        "send a signal to processes",
        json="a JSON array: name, ok, process",
    )
    p.add_argument("signal", metavar="SIG")
    p.add_argument("names", nargs="+", metavar="NAME|GROUP:*|all")
    p = command(
        "tail",
        "streams:tail",
        "show the end of a process's output",
        json="JSON objects: name, stream, offset, data",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new output")
    p.add_argument("--stderr", action="store_true", help="the stderr log instead of stdout")
    p.add_argument("--raw", action="store_true", help="the bytes as they are, even on a terminal")
    p = command(
        "events",
        "streams:events",
        "print recent events; with -f, follow the stream",
        json="one JSON object a line, as the API sends them",
    )
    p.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    command(
        "notify-test",
        "local:notify_test",
        "send a test alert to every configured URL",
        remote=False,
    )
    command(
        "hash-password",
        "local:hash_password",
        "read a password on stdin (not echoed on a terminal), print its hash for [control] users",
        remote=False,
    )
    p = command(
        "import-supervisord",
        "local:import_supervisord",
        "supervisord.conf -> sentinel TOML",
        remote=False,
    )
    p.add_argument("file", metavar="FILE", help="supervisord.conf (its [include] files follow)")
    p.add_argument("-o", "--output", metavar="OUT", help="write OUT (default: stdout)")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    command(
        "reload",
        "commands:reload",
        "re-read the config; restart only what changed",
        json="the result: ok, added, removed, changed, error",
    )
    command(
        "reexec",
        "commands:reexec",
        "re-execute the daemon in place (an upgrade): every program keeps running",
        json="the daemon's answer",
    )
    command(
        "shutdown",
        "commands:shutdown",
        "stop every process, then the daemon",
        json="the daemon's answer",
    )
    return parser
