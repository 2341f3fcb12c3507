"""HTTP checks: a small HTTP/1.1 client on asyncio, one new connection per probe.

Like the kubelet, each probe opens a new connection and closes it (`Connection: close`): a
server that has stopped accepting connections must fail its probe even if an old connection
still works. Redirects are not followed: a 3xx is judged by its own status.

Why not a general HTTP client: a probe needs one request on one fresh connection, a status
and at most 64 KiB of body. httpx spends about 2.5 ms of CPU on that (client, pool, anyio
layers), so a thousand probes a second would need two and a half cores. Here a plain-TCP
probe is a non-blocking socket with one reader callback on the event loop, and https goes
through asyncio's TLS transport. Either way h11, the HTTP/1.1 parser httpx itself runs on,
writes the request and parses the response as it arrives: a response that a browser, curl or
Go's net/http would refuse (a negative or doubled Content-Length, an unknown
Transfer-Encoding, a chunk size that is not plain hex) fails the probe as a bad response.

A failed probe is a result. What failed is told by the exception's type, and `_describe` is
the one place that turns each into the probe's detail:

    TimeoutError                 the probe's timeout ran out       timed out after 1s
    socket.gaierror              the host name did not resolve     cannot resolve HOST: ...
    ConnectError                 no address took the connection    connection refused (when
                                 (it keeps each address's OSError)   every address refused)
    ssl.SSLError, subclasses     the TLS handshake or a read       HOST:PORT: TLS: ...
    h11.RemoteProtocolError      h11 refused the response          HOST:PORT: bad response: ...
    BadResponse                  closed before a whole head came,  HOST:PORT: bad response: ...
                                 or the head is over 64 KiB
    OSError                      a read failed                     HOST:PORT: connection reset...

The reason phrase and h11's complaints come from the server: control characters in them are
escaped and they are cut short before they reach a detail (a log line, a terminal, an alert).
"""

from __future__ import annotations

import asyncio
import base64
import errno
import functools
import ipaddress
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import h11

from sentinel import __version__
from sentinel.model import HttpCheck
from sentinel.probes import ProbeResult

MAX_BODY = 64 * 1024  # enough for any health page; more is not read
MAX_HEAD = 64 * 1024  # status line and headers
READ_SIZE = 64 * 1024
MAX_TEXT = 200  # characters of server-sent text (a reason phrase, h11's complaint) in a detail
_END_OF_MESSAGE = h11.EndOfMessage()  # immutable: one serves every request
_NOT_CONNECTED_YET = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOTCONN, errno.EINTR})


class BadResponse(Exception):
    """The connection ended, or the head outgrew MAX_HEAD, before a whole response head came."""


class ConnectError(Exception):
    """No address of the target took the connection."""

    def __init__(self, errors: list[OSError]) -> None:
        super().__init__("; ".join(str(error) for error in errors))
        self.errors = errors  # each address's, in the order they were tried


@dataclass(frozen=True)
class _Target:
    """What a URL resolves to once: where to connect and the request to send."""

    host: str
    port: int
    where: str  # "host:port" for details, an IPv6 address in brackets
    tls: bool
    request: h11.Request  # validated once; each probe's h11 connection writes it
    family: socket.AddressFamily | None  # an IP literal's; None: a name to resolve


@dataclass(frozen=True)
class _Response:
    status: int
    reason: bytes
    body: bytearray  # at most MAX_BODY bytes


class _Exchange(asyncio.Protocol):
    """One request and its response on a new connection: h11 writes the request and parses
    the response incrementally, as data_received gets it."""

    def __init__(self, request: h11.Request, done: asyncio.Future[_Response]) -> None:
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEAD)
        # Also tells h11 what the answer is to (a HEAD's has no body, whatever it announces).
        self.request = self._h11.send(request) + self._h11.send(_END_OF_MESSAGE)
        self._done = done
        self._head: h11.Response | h11.InformationalResponse | None = None
        self._body = bytearray()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        if not self._done.done():
            self._h11.receive_data(data)
            self._advance()

    def eof_received(self) -> bool:
        if not self._done.done():
            if self._head is None:  # h11 would only say its state machine cannot go on
                self._done.set_exception(BadResponse("connection closed before the response"))
            else:
                self._h11.receive_data(b"")  # the end of a read-until-close body, or too soon
                self._advance()
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            if exc is None:
                self.eof_received()
            else:
                self._done.set_exception(exc)

    def _advance(self) -> None:
        """Take h11's events until it needs more data or the verdict can be given."""
        try:
            while True:
                event = self._h11.next_event()
                if isinstance(event, h11.Data):
                    room = MAX_BODY - len(self._body)
                    self._body += event.data if len(event.data) <= room else event.data[:room]
                    if len(self._body) >= MAX_BODY:
                        self._finish()  # the rest would not be looked at
                        return
                elif isinstance(event, h11.Response):
                    self._head = event
                elif isinstance(event, h11.EndOfMessage):
                    self._finish()
                    return
                elif isinstance(event, h11.InformationalResponse):
                    if event.status_code == 101:  # switched protocols (a configured Upgrade)
                        self._head = event
                        self._finish()
                        return
                    # an interim response (100 Continue, 103 Early Hints): the real one follows
                else:  # NEED_DATA: wait for the next read
                    return
        except h11.RemoteProtocolError as exc:
            if exc.error_status_hint == 431:  # h11's hint for a head over max_incomplete_event_size
                self._done.set_exception(BadResponse(f"response head over {MAX_HEAD // 1024} KiB"))
            else:
                self._done.set_exception(exc)

    def _finish(self) -> None:
        head = self._head
        assert head is not None
        self._done.set_result(_Response(head.status_code, head.reason, self._body))


class HttpProber:
    """Runs HTTP checks; one TLS context per verify setting, shared by every probe."""

    def __init__(self) -> None:
        self._tls: dict[bool, ssl.SSLContext] = {}

    async def probe(self, check: HttpCheck, timeout: float) -> ProbeResult:
        began = time.perf_counter()
        target = _target(check.url, check.method, tuple(check.headers.items()))
        try:
            async with asyncio.timeout(timeout):
                response = await self._exchange(target, check.tls_verify)
        except (OSError, ConnectError, BadResponse, h11.RemoteProtocolError) as exc:
            # (TimeoutError and the ssl errors are OSErrors)
            return ProbeResult(False, time.perf_counter() - began, _describe(exc, target, timeout))
        latency = time.perf_counter() - began
        status = response.status
        reason = _printable(response.reason.decode(errors="backslashreplace").strip())
        if not any(low <= status <= high for low, high in check.expect_status):
            return ProbeResult(False, latency, f"HTTP {status} {reason}".rstrip())
        if check.body_contains is not None or check.body_regex is not None:
            text = response.body.decode(errors="replace")
            if check.body_contains is not None and check.body_contains not in text:
                return ProbeResult(
                    False, latency, f"HTTP {status}: body lacks {check.body_contains!r}"
                )
            if check.body_regex is not None and re.search(check.body_regex, text) is None:
                return ProbeResult(
                    False, latency, f"HTTP {status}: body does not match {check.body_regex!r}"
                )
        return ProbeResult(True, latency, f"HTTP {status} {reason}".rstrip())

    async def _exchange(self, target: _Target, verify: bool) -> _Response:
        loop = asyncio.get_running_loop()
        done: asyncio.Future[_Response] = loop.create_future()
        exchange = _Exchange(target.request, done)
        if not target.tls:
            return await _plain_exchange(loop, target, exchange, done)
        sock = await _connect(loop, target, None)
        try:
            await loop.create_connection(
                lambda: exchange, sock=sock, ssl=self._context(verify), server_hostname=target.host
            )
            return await done
        finally:
            if exchange.transport is not None:
                exchange.transport.abort()  # no lingering: the probe is over either way
            else:
                sock.close()  # the handshake failed

    def _context(self, verify: bool) -> ssl.SSLContext:
        context = self._tls.get(verify)
        if context is None:
            context = ssl.create_default_context()
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._tls[verify] = context
        return context

    async def aclose(self) -> None:
        """Nothing to release: every probe closes its own connection."""


async def _plain_exchange(
    loop: asyncio.AbstractEventLoop,
    target: _Target,
    exchange: _Exchange,
    done: asyncio.Future[_Response],
) -> _Response:
    """One request on a new plain-TCP connection: connect, send, feed the parser, close."""
    sock = await _connect(loop, target, exchange.request)
    fd = sock.fileno()
    try:

        def readable() -> None:
            try:
                data = sock.recv(READ_SIZE)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                exchange.connection_lost(exc)
                return
            if data:
                exchange.data_received(data)
            else:
                exchange.eof_received()

        loop.add_reader(fd, readable)
        try:
            return await done
        finally:
            loop.remove_reader(fd)
    finally:
        sock.close()


async def _connect(
    loop: asyncio.AbstractEventLoop, target: _Target, request: bytes | None
) -> socket.socket:
    """A connected non-blocking socket (with `request` sent, if given), trying each address in
    turn; ConnectError if none takes the connection."""
    addresses: list[tuple[socket.AddressFamily, Any]]
    if target.family is not None:
        addresses = [(target.family, (target.host, target.port))]
    else:
        infos = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        addresses = [(family, address) for family, _, _, _, address in infos]
    errors: list[OSError] = []
    for family, address in addresses:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            if request is None:
                await loop.sock_connect(sock, address)
            else:
                await _connect_and_send(loop, sock, address, request)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:  # cancelled (the probe timed out)
            sock.close()
            raise
        return sock
    raise ConnectError(errors)


async def _connect_and_send(
    loop: asyncio.AbstractEventLoop, sock: socket.socket, address: Any, request: bytes
) -> None:
    code = sock.connect_ex(address)
    if code not in (0, errno.EINPROGRESS):
        raise OSError(code, os.strerror(code))
    try:
        # On loopback the handshake is over before connect returns: send at once. Elsewhere
        # the send fails with EAGAIN (or ENOTCONN) until the socket becomes writable.
        sent = sock.send(request)
    except OSError as exc:
        if exc.errno not in _NOT_CONNECTED_YET:
            raise
        await _writable(loop, sock)
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            raise OSError(code, os.strerror(code)) from None
        sent = 0
    if sent < len(request):
        await loop.sock_sendall(sock, request[sent:])


async def _writable(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> None:
    ready: asyncio.Future[None] = loop.create_future()
    fd = sock.fileno()

    def writable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_writer(fd, writable)
    try:
        await ready
    finally:
        loop.remove_writer(fd)


@functools.lru_cache(maxsize=4096)
def _target(url: str, method: str, headers: tuple[tuple[str, str], ...]) -> _Target:
    # The model has normalised the URL: an ASCII host (IDNA), no default port, and a path and
    # query already percent-encoded, so they go out as they are.
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if tls else 80)
    fields = {
        "host": ("Host", parts.netloc.rpartition("@")[2]),  # with the port when not default
        "user-agent": ("User-Agent", f"sentinel/{__version__}"),
        "accept": ("Accept", "*/*"),
    }
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        credentials = base64.b64encode(userinfo.encode()).decode()
        fields["authorization"] = ("Authorization", f"Basic {credentials}")
    for name, value in headers:  # configured headers replace the defaults
        fields[name.lower()] = (name, value)
    request = h11.Request(
        method=method,
        target=(parts.path or "/") + (f"?{parts.query}" if parts.query else ""),
        headers=[
            *((name.encode("ascii"), value.encode()) for name, value in fields.values()),
            (b"Connection", b"close"),
        ],
    )
    family = _literal_family(host)
    where = f"[{host}]:{port}" if family == socket.AF_INET6 else f"{host}:{port}"
    return _Target(host, port, where, tls, request, family)


def _literal_family(host: str) -> socket.AddressFamily | None:
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return None
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _describe(
    exc: OSError | ConnectError | BadResponse | h11.RemoteProtocolError,
    target: _Target,
    timeout: float,
) -> str:
    """The detail of a failed probe, by the type of what failed."""
    where = target.where
    if isinstance(exc, TimeoutError):
        return f"timed out after {timeout:g}s"
    if isinstance(exc, ConnectError):
        if exc.errors and all(isinstance(e, ConnectionRefusedError) for e in exc.errors):
            return "connection refused"
        reasons = dict.fromkeys(_os_reason(error) for error in exc.errors)  # distinct, in order
        return f"{where}: {'; '.join(reasons) or 'no address to connect to'}"
    if isinstance(exc, BadResponse | h11.RemoteProtocolError):
        return f"{where}: bad response: {_printable(str(exc))}"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: TLS: {_printable(exc.verify_message or exc.reason or str(exc))}"
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS: {_printable(exc.reason or str(exc))}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {target.host}: {exc.strerror}"
    return f"{where}: {_os_reason(exc)}"


def _os_reason(exc: OSError) -> str:
    return (os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__).lower()


def _printable(text: str) -> str:
    """Server-sent `text` fit for a detail: non-printing characters escaped as repr escapes
    them ("\\x1b", "\\u202e"), and at most MAX_TEXT characters."""
    if len(text) <= MAX_TEXT and text.isprintable():
        return text
    pieces: list[str] = []
    size = 0
    for char in text:
        piece = char if char.isprintable() else repr(char)[1:-1]
        size += len(piece)
        if size > MAX_TEXT:
            pieces.append("...")
            break
        pieces.append(piece)
    return "".join(pieces)
