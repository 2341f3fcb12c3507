"""HTTP checks: a small HTTP/1.1 client on asyncio, one new connection per probe.

Like the kubelet, each probe opens a new connection and closes it (`Connection: close`): a
server that has stopped accepting connections must fail its probe even if an old connection
still works. Redirects are not followed: a 3xx is judged by its own status.

Why not a general HTTP client: a probe needs one request on one fresh connection, a status
and at most 64 KiB of body. httpx spends about 2.5 ms of CPU on that (client, pool, anyio
layers), so a thousand probes a second would need two and a half cores. Here a plain-TCP
probe is a non-blocking socket with one reader callback on the event loop, and the response
is parsed as it arrives; https goes through asyncio's TLS transport with the same parser.
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

from sentinel import __version__
from sentinel.model import HttpCheck
from sentinel.probes import ProbeResult

MAX_BODY = 64 * 1024  # enough for any health page; more is not read
MAX_HEAD = 64 * 1024  # status line and headers
MAX_CHUNK_LINE = 4096
READ_SIZE = 64 * 1024
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_STATUS_LINE = re.compile(rb"HTTP/1\.[01] ([0-9]{3})(?: ([^\r\n]*))?")
_NO_BODY_STATUSES = frozenset({204, 304})
_NOT_CONNECTED_YET = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOTCONN, errno.EINTR})


class BadResponse(Exception):
    """The peer answered something that is not an HTTP/1.x response."""


@dataclass(frozen=True)
class _Target:
    """What a URL resolves to once: where to connect and the request bytes to send."""

    host: str
    port: int
    tls: bool
    request: bytes
    head_only: bool
    family: socket.AddressFamily | None  # an IP literal's; None: a name to resolve


@dataclass(frozen=True)
class _Response:
    status: int
    reason: str
    body: bytes


class _Exchange(asyncio.Protocol):
    """Sends one request and parses the response incrementally, as data_received gets it."""

    def __init__(self, request: bytes, head_only: bool, done: asyncio.Future[_Response]) -> None:
        self._request, self._head_only, self._done = request, head_only, done
        self._buffer = bytearray()
        self._status = 0  # 0: the head has not arrived yet
        self._reason = ""
        self._body = bytearray()
        self._framing = ""  # "length", "chunked" or "close", once the head is in
        self._remaining = 0  # "length": body bytes still to come
        self._chunk_left: int | None = None  # "chunked": None while a size line is due
        self._chunks = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        self._buffer += data
        try:
            self._advance()
        except BadResponse as exc:
            self._done.set_exception(exc)

    def eof_received(self) -> bool:
        if not self._done.done():
            if self._status and self._framing == "close":
                self._finish()
            elif self._status:
                self._done.set_exception(BadResponse("connection closed in the middle of the body"))
            else:
                self._done.set_exception(BadResponse("connection closed before the response"))
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_exception(exc or BadResponse("connection closed before the response"))

    # --- parsing ----------------------------------------------------------------------------

    def _advance(self) -> None:
        while not self._status:
            match = _HEAD_END.search(self._buffer)
            if match is None:
                if len(self._buffer) > MAX_HEAD:
                    raise BadResponse(f"response head over {MAX_HEAD // 1024} KiB")
                return
            head = bytes(self._buffer[: match.start()])
            del self._buffer[: match.end()]
            self._head(head)
        if self._framing == "chunked":
            self._chunked()
        elif self._framing == "close":
            self._take(len(self._buffer))
        else:
            self._remaining -= self._take(self._remaining)
            if self._remaining == 0:
                self._finish()

    def _head(self, head: bytes) -> None:
        # Lines end in CRLF; a bare LF is accepted too, as RFC 9112 allows (and Go's client
        # does, which is what the kubelet probes with).
        status_line, *lines = (line.rstrip(b"\r") for line in head.split(b"\n"))
        match = _STATUS_LINE.fullmatch(status_line)
        if match is None:
            raise BadResponse(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(match[1])
        if 100 <= status < 200 and status != 101:
            return  # an interim response (100 Continue): the real one follows
        headers: dict[bytes, bytes] = {}
        name = b""
        for line in lines:
            if line[:1] in (b" ", b"\t") and name:  # an obsolete folded continuation
                headers[name] += b" " + line.strip()
                continue
            name, colon, value = line.partition(b":")
            if not colon:
                raise BadResponse(f"malformed header line: {line[:60]!r}")
            name = name.strip().lower()
            headers[name] = value.strip()
        self._status = status
        self._reason = (match[2] or b"").decode("latin-1").strip()
        if self._head_only or status in _NO_BODY_STATUSES or status == 101:
            self._framing, self._remaining = "length", 0
        elif b"chunked" in headers.get(b"transfer-encoding", b"").lower():
            self._framing = "chunked"
        elif b"content-length" in headers:
            try:
                self._remaining = int(headers[b"content-length"])
            except ValueError:
                raise BadResponse("malformed Content-Length") from None
            self._framing = "length"
        else:
            self._framing = "close"  # the body ends when the server closes

    def _take(self, count: int) -> int:
        """Move up to `count` buffered bytes into the body (keeping MAX_BODY at most); how
        many left the buffer."""
        count = min(count, len(self._buffer))
        room = MAX_BODY - len(self._body)
        if room > 0:
            self._body += self._buffer[: min(count, room)]
        del self._buffer[:count]
        if len(self._body) >= MAX_BODY:
            self._finish()  # the rest would not be looked at
        return count

    def _chunked(self) -> None:
        while not self._done.done():
            if self._chunk_left is None:
                start = 2 if self._chunks else 0  # the CRLF that ends the previous chunk
                end = self._buffer.find(b"\r\n", start)
                if end < 0:
                    if len(self._buffer) > MAX_CHUNK_LINE:
                        raise BadResponse("malformed chunked body")
                    return
                if self._buffer[:start] != b"\r\n"[:start]:
                    raise BadResponse("malformed chunked body")
                size = self._buffer[start:end].split(b";", 1)[0].strip()
                try:
                    self._chunk_left = int(size, 16)
                except ValueError:
                    raise BadResponse(f"malformed chunk size: {bytes(size[:20])!r}") from None
                del self._buffer[: end + 2]
                self._chunks += 1
                if self._chunk_left == 0:
                    self._finish()  # trailers, if any, do not matter
                    return
            if not self._buffer:
                return
            self._chunk_left -= self._take(self._chunk_left)
            if self._chunk_left == 0:
                self._chunk_left = None  # the next size line is due

    def _finish(self) -> None:
        if not self._done.done():
            self._done.set_result(_Response(self._status, self._reason, bytes(self._body)))


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
        except TimeoutError:
            return ProbeResult(False, time.perf_counter() - began, f"timed out after {timeout:g}s")
        except (OSError, BadResponse) as exc:
            return ProbeResult(False, time.perf_counter() - began, _describe(exc, target))
        latency = time.perf_counter() - began
        status, reason = response.status, response.reason
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
        exchange = _Exchange(target.request, target.head_only, done)
        if not target.tls:
            return await _plain_exchange(loop, target, exchange, done)
        try:
            await loop.create_connection(
                lambda: exchange,
                target.host,
                target.port,
                ssl=self._context(verify),
                server_hostname=target.host,
            )
            return await done
        finally:
            if exchange.transport is not None:
                exchange.transport.abort()  # no lingering: the probe is over either way

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
    sock = await _connect(loop, target)
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


async def _connect(loop: asyncio.AbstractEventLoop, target: _Target) -> socket.socket:
    """A connected non-blocking socket with the request sent, trying each address in turn."""
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
            await _connect_and_send(loop, sock, address, target.request)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:  # cancelled (the probe timed out)
            sock.close()
            raise
        return sock
    if len(errors) == 1 or len({str(e) for e in errors}) == 1:
        raise errors[0]
    raise OSError(f"Multiple exceptions: {', '.join(str(e) for e in errors)}")


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
    parts = urlsplit(url)
    tls = parts.scheme == "https"
    host = parts.hostname or "localhost"
    port = parts.port or (443 if tls else 80)
    default_port = port == (443 if tls else 80)
    host_header = f"[{host}]" if ":" in host else host
    fields = {
        "host": host_header if default_port else f"{host_header}:{port}",
        "user-agent": f"sentinel/{__version__}",
        "accept": "*/*",
    }
    if parts.username is not None:
        userinfo = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
        fields["authorization"] = "Basic " + base64.b64encode(userinfo.encode()).decode()
    names = {"host": "Host", "user-agent": "User-Agent", "accept": "Accept"}
    names["authorization"] = "Authorization"
    for name, value in headers:  # configured headers replace the defaults
        fields[name.lower()] = value
        names[name.lower()] = name
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    lines = [f"{method} {target} HTTP/1.1"]
    lines += [f"{names[key]}: {value}" for key, value in fields.items()]
    lines.append("Connection: close")
    request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", errors="replace")
    return _Target(host, port, tls, request, method == "HEAD", _literal_family(host))


def _literal_family(host: str) -> socket.AddressFamily | None:
    try:
        version = ipaddress.ip_address(host).version
    except ValueError:
        return None
    return socket.AF_INET if version == 4 else socket.AF_INET6


def _describe(exc: OSError | BadResponse, target: _Target) -> str:
    where = f"{target.host}:{target.port}"
    if isinstance(exc, BadResponse):
        return f"{where}: bad response: {exc}"
    if isinstance(exc, ConnectionRefusedError) or (
        # every address of a name refused: asyncio lists them all in one OSError
        exc.errno is None and f"[Errno {errno.ECONNREFUSED}]" in str(exc)
    ):
        return "connection refused"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: TLS: {exc.verify_message or exc.reason}"
    if isinstance(exc, ssl.SSLError):
        return f"{where}: TLS: {exc.reason or exc}"
    if isinstance(exc, socket.gaierror):
        return f"cannot resolve {target.host}: {exc.strerror}"
    reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
    return f"{where}: {reason.lower()}"
