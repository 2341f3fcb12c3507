"""PostgreSQL check: does the server accept connections? pg_isready, in the wire protocol."""

from __future__ import annotations

import argparse
import os
import socket
import struct
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, BinaryIO

# Relative when run as sentinel.checks.postgres_ready, a sibling module when run as a file;
# mypy takes the first branch.
if TYPE_CHECKING or __package__:
    from . import _nagios
else:
    import _nagios

_PROTOCOL_3_0 = 196608  # major 3 in the high 16 bits, minor 0 in the low
_TERMINATE = b"X\x00\x00\x00\x04"
_MAX_MESSAGE = 2**20  # an error or authentication request is small; more is not PostgreSQL
_CANNOT_CONNECT_NOW = "57P03"  # starting up, shutting down, or in recovery without hot standby
# What may come back before the answer: Authentication, ErrorResponse, ParameterStatus,
# BackendKeyData, ReadyForQuery, NoticeResponse, NegotiateProtocolVersion.
_KINDS = frozenset(bytes([c]) for c in b"REKSZNv")
_AUTH_METHODS = {2: "Kerberos", 3: "password", 5: "MD5", 7: "GSSAPI", 9: "SSPI", 10: "SASL"}


class _ProtocolError(Exception):
    """What came back is not PostgreSQL's protocol, or stopped short."""


def build_parser() -> _nagios.CheckParser:
    parser = _nagios.CheckParser(
        "POSTGRES",
        description="Check that a PostgreSQL server accepts connections, as pg_isready does "
        "and without a client library: send a startup message and read the reply. "
        "Authentication succeeding, or the server asking for a password, is OK (the check "
        "never sends one). An error with SQLSTATE 57P03 (starting up, shutting down) is "
        "CRITICAL. Any other error, such as no pg_hba.conf entry (28000) or an unknown "
        "database (3D000), means the server is up, as pg_isready says, but refused the "
        "check's login: WARNING, which passes, so that the misconfiguration shows. No "
        "connection or no answer is CRITICAL.",
        example="Example, as a sentinel exec probe:\n"
        '  exec = { check = "postgres_ready", args = ["--socket-dir", "/var/run/postgresql"] }',
    )
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument(
        "--port",
        type=_nagios.port,
        default=5432,
        help="default: 5432; with --socket-dir it names the socket file",
    )
    parser.add_argument(
        "--socket-dir",
        metavar="DIR",
        help="connect to DIR/.s.PGSQL.PORT instead of TCP, e.g. /var/run/postgresql",
    )
    parser.add_argument("--user", default="postgres", help="default: postgres")
    parser.add_argument("--dbname", help="default: the same as --user")
    return parser


def check(args: argparse.Namespace) -> _nagios.Result:
    path = None
    if args.socket_dir is not None:
        path = os.path.join(args.socket_dir, f".s.PGSQL.{args.port}")
    where = _nagios.endpoint(args.host, args.port, path)
    began = time.monotonic()
    try:
        sock = _nagios.connect(args.host, args.port, path, args.timeout)
    except OSError as exc:
        summary = f"cannot connect to {where}: {_nagios.error_text(exc)}"
        return _nagios.Result(_nagios.Status.CRITICAL, summary)
    try:
        with sock, sock.makefile("rb") as reader:
            sock.sendall(_startup(args.user, args.dbname or args.user))
            status, summary = _answer(sock, reader, where)
    except OSError as exc:
        summary = f"talking to {where}: {_nagios.error_text(exc)}"
        return _nagios.Result(_nagios.Status.CRITICAL, summary)
    except _ProtocolError as exc:
        return _nagios.Result(_nagios.Status.CRITICAL, f"{where} {exc}")
    perfdata = [_nagios.perf("time", round(time.monotonic() - began, 6), "s", minimum=0)]
    return _nagios.Result(status, summary, perfdata)


def _answer(sock: socket.socket, reader: BinaryIO, where: str) -> tuple[_nagios.Status, str]:
    """What the server's reply to the startup message says about it."""
    accepting = f"accepting connections at {where}"
    for kind, body in _messages(reader):
        if kind == b"R":
            (code,) = struct.unpack("!i", body[:4])
            if code != 0:
                # Closing while the server waits for a password leaves no error in its log.
                return _nagios.Status.OK, f"{accepting} (it asks for {_auth(code)})"
            # AuthenticationOk: the role and the database are checked after it, so read on.
        elif kind == b"Z":  # ReadyForQuery: logged in
            sock.sendall(_TERMINATE)  # a polite goodbye, so the server logs no lost client
            return _nagios.Status.OK, f"{accepting} (logged in)"
        elif kind == b"E":
            fields = _error_fields(body)
            error = f"{fields.get('C', 'no SQLSTATE')} {fields.get('M', '')}".strip()
            if fields.get("C") == _CANNOT_CONNECT_NOW:
                return _nagios.Status.CRITICAL, f"rejecting connections at {where}: {error}"
            if "C" not in fields:  # pg_isready too takes an error without SQLSTATE as no answer
                return _nagios.Status.CRITICAL, f"{where} failed: {error}"
            return _nagios.Status.WARNING, f"{accepting}, but refused this check's login: {error}"
        # Anything else (parameters, notices, a protocol version note) comes before the answer.
    raise _ProtocolError("closed the connection without an answer")


def _startup(user: str, database: str) -> bytes:
    """A StartupMessage: length, protocol version, then NUL-terminated name/value pairs."""
    params = {"user": user, "database": database, "application_name": "sentinel-check"}
    payload = b"".join(f"{k}\0{v}\0".encode() for k, v in params.items()) + b"\0"
    return struct.pack("!ii", 8 + len(payload), _PROTOCOL_3_0) + payload


def _messages(reader: BinaryIO) -> Iterator[tuple[bytes, bytes]]:
    """The server's messages as (type, body), until it closes; _ProtocolError if not PostgreSQL."""
    while header := reader.read(5):
        kind = header[:1]
        if len(header) < 5 or kind not in _KINDS:
            raise _ProtocolError(f"is not PostgreSQL: it said {header!r}")
        (length,) = struct.unpack("!i", header[1:])
        if not 4 <= length <= _MAX_MESSAGE:
            raise _ProtocolError(f"is not PostgreSQL: a {length}-byte message")
        body = reader.read(length - 4)
        if len(body) < length - 4 or (kind == b"R" and len(body) < 4):
            raise _ProtocolError("closed the connection in the middle of a message")
        yield kind, body


def _error_fields(body: bytes) -> dict[str, str]:
    """An ErrorResponse's fields by code: C is the SQLSTATE, M the message."""
    fields = {}
    for field in body.split(b"\0"):
        if field:
            fields[chr(field[0])] = field[1:].decode("utf-8", "replace")
    return fields


def _auth(code: int) -> str:
    return f"{_AUTH_METHODS.get(code, f'method {code}')} authentication"


if __name__ == "__main__":
    _nagios.run(build_parser(), check)
