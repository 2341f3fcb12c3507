"""What every bundled check shares: Nagios plugin conventions, argument types and a runner.

A check is a function from parsed arguments to a `Result`; `run` turns that into one line of
output (`NAME STATUS - summary | perfdata`) and the matching exit code. Bad arguments, a
timeout and unexpected errors are handled here, once, so no check ever ends in a traceback.
Standard library only: the checks must run under any Python 3.11 with nothing installed.
"""

from __future__ import annotations

import argparse
import enum
import itertools
import re
import signal
import socket
import sys
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, NoReturn

# The same spellings as sentinel's config (sentinel/model.py), so a value can be copied across.
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]i?B|B)?\s*$", re.IGNORECASE)
_SIZE_UNITS = {"b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12}
_SIZE_UNITS |= {"kib": 2**10, "mib": 2**20, "gib": 2**30, "tib": 2**40}


class Status(enum.IntEnum):
    """Nagios plugin exit codes; sentinel passes OK and WARNING and fails the others."""

    OK = 0  # healthy
    WARNING = 1  # passes, but worth a look: sentinel reports it
    CRITICAL = 2  # the thing checked is unhealthy
    UNKNOWN = 3  # the check could not tell: bad arguments or an error of its own


@dataclass(frozen=True)
class Result:
    """What a check found: a status, a one-line summary, and optional details."""

    status: Status
    summary: str
    perfdata: Sequence[str] = ()
    details: Sequence[str] = field(default=())  # Nagios "long output": lines after the first


class CheckTimeout(Exception):
    """The check's own --timeout ran out."""


def duration(text: str) -> float:
    """An argparse type: seconds, from "250ms", "10s", "5m", "1h", "1d" or a number."""
    match = _DURATION.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f'expected a duration like "250ms", "10s", "5m" or "1h", got {text!r}'
        )
    return float(match[1]) * _DURATION_UNITS[match[2]]


def size(text: str) -> int:
    """An argparse type: bytes, from "50MB", "1GiB" or a number of bytes."""
    match = _SIZE.match(text)
    if match is None:
        raise argparse.ArgumentTypeError(
            f'expected a size like "50MB", "1GiB" or a number of bytes, got {text!r}'
        )
    return int(float(match[1]) * _SIZE_UNITS[(match[2] or "b").lower()])


def port(text: str) -> int:
    """An argparse type: a TCP port number."""
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number (1-65535), got {text!r}")
    return int(text)


def format_seconds(seconds: float) -> str:
    """A human duration for the summary: "0.8s", "42.0s", "5m03s", "2h07m"."""
    if abs(seconds) < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


def format_bytes(count: float) -> str:
    """A human size for the summary, in binary units like `ps` and `top`: "61.3MiB"."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(count) < 1024:
            return f"{count:.0f}{unit}" if unit == "B" else f"{count:.1f}{unit}"
        count /= 1024
    return f"{count:.1f}TiB"


def perf(
    label: str,
    value: float,
    unit: str = "",
    *,
    warn: float | None = None,
    crit: float | None = None,
    minimum: float | None = None,
) -> str:
    """One performance datum: `label=value[unit];warn;crit;min` (empty trailing fields dropped)."""
    fields = [f"{_number(value)}{unit}", *(_number(v) for v in (warn, crit, minimum))]
    return f"{label}=" + ";".join(fields).rstrip(";")


def _number(value: float | None) -> str:
    # Byte counts stay exact: "%g" would turn 118370304 into 1.1837e+08.
    if value is None:
        return ""
    return str(value) if isinstance(value, int) else f"{value:.6g}"


def error_text(error: object) -> str:
    """An OSError as a person reads it: "Connection refused", not "[Errno 111] Connection..."."""
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def endpoint(host: str, port: int, unix_path: str | None) -> str:
    """How to name a server in a summary: its socket path, or host:port."""
    if unix_path is not None:
        return unix_path
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect(host: str, port: int, unix_path: str | None, timeout: float) -> socket.socket:
    """A connected stream socket to a unix socket path, or else to host:port."""
    timeout_or_none = timeout or None  # --timeout 0 means no limit; a 0 would mean non-blocking
    if unix_path is None:
        return socket.create_connection((host, port), timeout=timeout_or_none)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout_or_none)
    try:
        sock.connect(unix_path)
    except BaseException:
        sock.close()
        raise
    return sock


class CheckParser(argparse.ArgumentParser):
    """argparse with a --timeout, whose usage errors are UNKNOWN (3) rather than argparse's 2.

    Values of options added with `add_secret` (passwords) are masked in everything printed.
    """

    def __init__(self, name: str, description: str, example: str, timeout: float = 5.0) -> None:
        super().__init__(
            # Wrapped here because the raw formatter, which keeps the example's lines, won't.
            description=textwrap.fill(description, 79),
            epilog=f"Exit codes: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n\n{example}",
            formatter_class=argparse.RawDescriptionHelpFormatter,
            allow_abbrev=False,  # "--pass x" must not quietly become "--password x"
        )
        self.check_name = name
        self.secret_dests: list[str] = []
        self._secret_options: list[str] = []
        self.add_argument(
            "--timeout",
            type=duration,
            default=timeout,
            metavar="DURATION",
            help=f"give up (CRITICAL) after this long, 0 for no limit; keep it below the "
            f"probe's own timeout (default: {timeout:g}s)",
        )

    def add_secret(self, option: str, **kwargs: Any) -> None:
        """An option whose value is a secret: never printed, not even in a usage error."""
        action = self.add_argument(option, **kwargs)
        self.secret_dests.append(action.dest)
        self._secret_options.append(option)

    def error(self, message: str) -> NoReturn:
        if self._secret_options and message.startswith("unrecognized arguments"):
            message = "unrecognized arguments (not shown: they may hold a password)"
        # 2 would read as CRITICAL: a typo in a probe must not look like a sick service.
        _emit(_mask(f"{self.check_name} UNKNOWN - {message}", self._secrets_in_argv()), ())
        self.print_usage(sys.stderr)
        sys.exit(Status.UNKNOWN)

    def _secrets_in_argv(self) -> list[str]:
        """The values given to secret options, as `--password X` or `--password=X`."""
        argv = sys.argv[1:]
        pairs = itertools.pairwise(argv)
        found = [value for option, value in pairs if option in self._secret_options]
        for arg in argv:
            option, equals, value = arg.partition("=")
            if equals and option in self._secret_options:
                found.append(value)
        return found


def run(parser: CheckParser, check: Callable[[argparse.Namespace], Result]) -> NoReturn:
    """Parse the arguments, run `check` under its timeout, print the result and exit with it."""
    args = parser.parse_args()
    secrets = [getattr(args, dest) for dest in parser.secret_dests]
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, args.timeout)
    try:
        result = check(args)
    except CheckTimeout:
        result = Result(Status.CRITICAL, f"no answer within {args.timeout:g}s")
    except Exception as exc:  # the one place a check's bug becomes UNKNOWN, not a traceback
        result = Result(Status.UNKNOWN, f"unexpected error: {type(exc).__name__}: {exc}")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    line = f"{parser.check_name} {result.status.name} - {result.summary}"
    if result.perfdata:
        line += " | " + " ".join(result.perfdata)
    _emit(_mask(line, secrets), [_mask(d, secrets) for d in result.details])
    sys.exit(result.status)


def _mask(text: str, secrets: Sequence[str | None]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def _emit(line: str, details: Sequence[str]) -> None:
    # One line: sentinel keeps the first line as the probe's detail, so newlines in a message
    # (from a server's error text, say) must not push the status off it.
    print(" ".join(line.splitlines()), *details, sep="\n", flush=True)


def _on_alarm(signum: int, frame: FrameType | None) -> None:
    raise CheckTimeout
