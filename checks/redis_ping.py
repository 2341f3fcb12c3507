"""Redis check: PING a server (authenticating first if asked) and expect PONG."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

# Relative when run as sentinel.checks.redis_ping, a sibling module when run as a file;
# mypy takes the first branch.
if TYPE_CHECKING or __package__:
    from . import _nagios
else:
    import _nagios

_MAX_LINE = 4096  # a reply line longer than this is not the simple reply PING and AUTH give
_SHOWN = 60  # characters of an unexpected reply quoted in the summary


def build_parser() -> _nagios.CheckParser:
    parser = _nagios.CheckParser(
        "REDIS",
        description="Check that a Redis server answers: send PING (after AUTH when a password "
        "is given) and expect +PONG. A refused or timed-out connection, a failed AUTH, an "
        "error reply such as LOADING or NOAUTH, or a reply that is not Redis's is CRITICAL. "
        "The password is never printed; prefer $REDISCLI_AUTH to --password, which other "
        "users can read in the process list.",
        example="Example, as a sentinel exec probe:\n"
        '  exec = { check = "redis_ping", args = ["--socket", "/run/redis/redis.sock"] }',
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=_nagios.port, default=6379, help="default: 6379")
    parser.add_argument("--socket", metavar="PATH", help="a unix socket, instead of TCP")
    parser.add_argument("--username", help="an ACL user (Redis 6 and later); needs a password")
    parser.add_secret(
        "--password",
        # redis-cli's own variable, so the secret can stay out of argv (and `ps`).
        default=os.environ.get("REDISCLI_AUTH") or None,
        help="AUTH with this password (default: $REDISCLI_AUTH)",
    )
    return parser


def check(args: argparse.Namespace) -> _nagios.Result:
    critical = _nagios.Status.CRITICAL
    password = args.password
    if args.username is not None and not password:
        return _nagios.Result(_nagios.Status.UNKNOWN, "--username needs a password")
    commands = [["PING"]]
    if password:
        commands.insert(0, ["AUTH", *([args.username] if args.username else []), password])
    where = _nagios.endpoint(args.host, args.port, args.socket)
    began = time.monotonic()
    try:
        sock = _nagios.connect(args.host, args.port, args.socket, args.timeout)
    except OSError as exc:
        return _nagios.Result(critical, f"cannot connect to {where}: {_nagios.error_text(exc)}")
    try:
        with sock, sock.makefile("rb") as reader:
            sock.sendall(b"".join(_encode(command) for command in commands))  # pipelined
            # One reply at a time: a server that is not Redis may never send a second line.
            for command in commands:
                reply = _reply(reader.readline(_MAX_LINE))
                if not reply:
                    return _nagios.Result(critical, f"{where} closed the connection unanswered")
                if not reply.startswith(("+", "-")):
                    return _nagios.Result(critical, f"{where} is not Redis: it said {_show(reply)}")
                if command[0] == "AUTH" and reply.startswith("-"):
                    return _nagios.Result(critical, f"AUTH failed at {where}: {reply[1:]}")
    except OSError as exc:
        return _nagios.Result(critical, f"talking to {where}: {_nagios.error_text(exc)}")
    elapsed = time.monotonic() - began
    perfdata = [_nagios.perf("time", round(elapsed, 6), "s", minimum=0)]
    if reply != "+PONG":  # the last reply is the PING's: an error like LOADING or NOAUTH
        return _nagios.Result(critical, f"PING at {where} answered {_show(reply)}", perfdata)
    return _nagios.Result(_nagios.Status.OK, f"PONG from {where} in {elapsed:.3f}s", perfdata)


def _encode(command: list[str]) -> bytes:
    """A command as a RESP array of bulk strings (safe for any bytes, unlike inline commands)."""
    parts = [arg.encode("utf-8", "surrogateescape") for arg in command]
    return f"*{len(parts)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in parts
    )


def _reply(line: bytes) -> str:
    """A reply line without its CRLF; empty when the server closed the connection first."""
    return line.decode("utf-8", "replace").rstrip("\r\n")


def _show(reply: str) -> str:
    return repr(reply if len(reply) <= _SHOWN else reply[:_SHOWN] + "...")


if __name__ == "__main__":
    _nagios.run(build_parser(), check)
