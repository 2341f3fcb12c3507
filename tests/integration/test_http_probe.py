"""HttpProber against real loopback servers: statuses, body framings, requests, failures,
malformed and hostile responses, TLS; and the URL and headers a config may give it."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from sentinel.config import load
from sentinel.errors import ConfigError
from sentinel.model import HttpCheck
from sentinel.probes import ProbeResult
from sentinel.probes.http import HttpProber


@dataclass
class Request:
    """One request as the server read it off the wire."""

    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]  # names lower-cased, in the order sent
    body: bytes

    def header(self, name: str) -> list[str]:
        """Every value sent under `name` (case-insensitive)."""
        return [value for key, value in self.headers if key == name.lower()]


# Writes the response to one request; returns True to keep the connection open for another.
Respond = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """The next request on a connection, or None if the client closed it between requests."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, version = request_line.split(" ")
    headers = []
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    request = Request(method, target, version, headers, b"")
    if length := request.header("content-length"):
        request.body = await reader.readexactly(int(length[0]))
    return request


@dataclass
class LoopbackServer:
    """A real server on 127.0.0.1 or ::1 (port 0, kept bound) in the test's own event loop."""

    respond: Respond
    ssl_context: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    connections: int = 0  # accepted (after the TLS handshake, for TLS)
    requests: list[Request] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None
    _handlers: set[asyncio.Task[Any]] = field(default_factory=set)

    async def start(self) -> LoopbackServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.ssl_context)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def authority(self) -> str:
        """host:port as in a URL, a Host header or a probe's detail."""
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def url(self, path: str = "/", scheme: str = "http") -> str:
        return f"{scheme}://{self.authority}{path}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        try:
            while (request := await read_request(reader)) is not None:
                self.requests.append(request)
                if not await self.respond(request, writer):
                    break
        except (OSError, asyncio.IncompleteReadError):
            pass  # the prober hung up early (it read enough, or gave up): its verdict is checked
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
            self._handlers.discard(task)

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for task in self._handlers:
            task.cancel()  # handlers that hang on purpose
        await asyncio.gather(*self._handlers, return_exceptions=True)
        await self._server.wait_closed()


# --- responses ------------------------------------------------------------------------------


def head(status: int, reason: str, *headers: str, version: str = "HTTP/1.1") -> bytes:
    return "\r\n".join([f"{version} {status} {reason}", *headers, "", ""]).encode()


def reply(status: int, reason: str, body: bytes = b"", *headers: str) -> Respond:
    """A keep-alive HTTP/1.1 response with Content-Length (and no body for HEAD)."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(status, reason, f"Content-Length: {len(body)}", *headers))
        if request.method != "HEAD":
            writer.write(body)
        await writer.drain()
        return True

    return respond


def send_raw(data: bytes, then: str) -> Respond:
    """Write `data` as is, then "close" the connection or "hang" with it open."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(data)
        await writer.drain()
        if then == "hang":
            await asyncio.get_running_loop().create_future()  # cancelled at teardown
        return False

    return respond


def send_chunked(parts: list[bytes]) -> Respond:
    """A Transfer-Encoding: chunked body, one chunk per part, each written out separately."""

    async def respond(request: Request, writer: asyncio.StreamWriter) -> bool:
        writer.write(head(200, "OK", "Content-Type: text/plain", "Transfer-Encoding: chunked"))
        for part in parts:
            writer.write(b"%x\r\n%s\r\n" % (len(part), part))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    return respond


def send_until_close(body: bytes) -> Respond:
    """An HTTP/1.0 body with no length: it ends where the server closes the connection."""
    return send_raw(head(200, "OK", "Content-Type: text/plain", version="HTTP/1.0") + body, "close")


def send_body(framing: str, body: bytes, parts: list[bytes] | None = None) -> Respond:
    if framing == "content-length":
        return reply(200, "OK", body, "Content-Type: text/plain")
    if framing == "chunked":
        return send_chunked(parts or [body[i : i + 10_000] for i in range(0, len(body), 10_000)])
    return send_until_close(body)


async def hang(request: Request, writer: asyncio.StreamWriter) -> bool:
    """Accept and read the request, never answer."""
    await asyncio.get_running_loop().create_future()  # cancelled at teardown
    return False


async def redirect_root(request: Request, writer: asyncio.StreamWriter) -> bool:
    """A 301 from / to /elsewhere, which answers 200: following it would change the verdict."""
    if request.target == "/":
        return await reply(301, "Moved Permanently", b"", "Location: /elsewhere")(request, writer)
    return await reply(200, "OK", b"ok")(request, writer)


# --- fixtures -------------------------------------------------------------------------------

Serve = Callable[..., Awaitable[LoopbackServer]]


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    """Start loopback servers; each is closed (hanging handlers cancelled) at teardown."""
    started: list[LoopbackServer] = []

    async def start(
        respond: Respond, ssl_context: ssl.SSLContext | None = None, host: str = "127.0.0.1"
    ) -> LoopbackServer:
        server = await LoopbackServer(respond, ssl_context, host).start()
        started.append(server)
        return server

    yield start
    for server in started:
        await server.close()


@pytest.fixture
async def prober() -> AsyncIterator[HttpProber]:
    prober = HttpProber()
    yield prober
    await prober.aclose()


@pytest.fixture
def self_signed() -> ssl.SSLContext:
    """A server-side TLS context with a certificate for 127.0.0.1 from a CA nobody trusts."""
    cert = trustme.CA().issue_cert("127.0.0.1")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(context)
    return context


async def timed(prober: HttpProber, check: HttpCheck, timeout: float) -> tuple[ProbeResult, float]:
    """The probe's result and how long the await took (monotonic)."""
    began = time.monotonic()
    result = await prober.probe(check, timeout)
    return result, time.monotonic() - began


def verdict(result: ProbeResult) -> tuple[bool, str, bool]:
    return result.ok, result.detail, result.warning


# --- status ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "fields", "ok"),
    [
        ((200, "OK"), {}, True),
        ((204, "No Content"), {}, True),
        ((302, "Found"), {}, True),
        ((399, "Whatever"), {}, True),  # the reason comes from the wire, not from a table
        ((400, "Bad Request"), {}, False),
        ((404, "Not Found"), {}, False),
        ((503, "Service Unavailable"), {}, False),
        ((503, "Service Unavailable"), {"expect_status": ((503, 503),)}, True),
        ((200, "OK"), {"expect_status": ((201, 299),)}, False),
        ((204, "No Content"), {"expect_status": ((200, 200), (204, 204))}, True),
    ],
)
async def test_status_is_judged_against_expect_status(
    serve: Serve, prober: HttpProber, answer: tuple[int, str], fields: dict[str, Any], ok: bool
) -> None:
    """A status inside expect_status (default 200-399) passes, outside fails: "HTTP 503 ..."."""
    status, reason = answer
    server = await serve(reply(status, reason, b"" if status == 204 else b"body"))
    check = HttpCheck(url=server.url("/healthz"), **fields)

    result, elapsed = await timed(prober, check, 5.0)

    assert verdict(result) == (ok, f"HTTP {status} {reason}", False)
    assert 0 < result.latency <= elapsed
    assert [r.target for r in server.requests] == ["/healthz"]


@pytest.mark.parametrize(
    ("fields", "ok"),
    [({}, True), ({"expect_status": ((200, 200),)}, False)],
    ids=["default", "200-only"],
)
async def test_redirect_is_judged_by_its_own_status_not_followed(
    serve: Serve, prober: HttpProber, fields: dict[str, Any], ok: bool
) -> None:
    """A 301 is not followed: it passes the default ranges and fails expect_status 200."""
    server = await serve(redirect_root)

    result = await prober.probe(HttpCheck(url=server.url("/"), **fields), 5.0)

    assert verdict(result) == (ok, "HTTP 301 Moved Permanently", False)
    assert [r.target for r in server.requests] == ["/"]


# --- body -----------------------------------------------------------------------------------

FRAMINGS = ["content-length", "chunked", "close"]
PAGE = b"<html>status: all-good; version 1.2.3</html>\n"
# "all-good" and the regex below both span the boundary between the first and second chunk.
PAGE_PARTS = [b"<html>status: al", b"l-go", b"od; version 1.2.3</html>\n"]


@pytest.mark.parametrize("framing", FRAMINGS)
@pytest.mark.parametrize(
    ("match", "expected"),
    [
        ({"body_contains": "all-good"}, (True, "HTTP 200 OK")),
        ({"body_contains": "all-bad"}, (False, "HTTP 200: body lacks 'all-bad'")),
        ({"body_regex": "status: al+-go+d;"}, (True, "HTTP 200 OK")),
        ({"body_regex": "version [2-9]"}, (False, "HTTP 200: body does not match 'version [2-9]'")),
        ({"body_contains": "all-good", "body_regex": "^<html>"}, (True, "HTTP 200 OK")),
        (
            {"body_contains": "all-good", "body_regex": "^status"},
            (False, "HTTP 200: body does not match '^status'"),
        ),
    ],
    ids=["contains", "lacks", "matches", "no-match", "both", "contains-but-no-match"],
)
async def test_body_is_checked_whatever_its_framing(
    serve: Serve,
    prober: HttpProber,
    framing: str,
    match: dict[str, str],
    expected: tuple[bool, str],
) -> None:
    """body_contains and body_regex see the body, sent with a length, chunked or until close."""
    assert b"".join(PAGE_PARTS) == PAGE
    server = await serve(send_body(framing, PAGE, PAGE_PARTS))

    result = await prober.probe(HttpCheck(url=server.url("/"), **match), 5.0)

    assert verdict(result) == (*expected, False)


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_only_the_first_64_kib_of_the_body_is_examined(
    serve: Serve, prober: HttpProber, framing: str
) -> None:
    """A needle after 100 KiB of filler is not found; one inside the first 64 KiB is."""
    needle = "needle-in-the-body"
    late = await serve(send_body(framing, b"x" * (100 * 1024) + needle.encode() + b"\n"))
    early = await serve(
        send_body(framing, b"x" * (60 * 1024) + needle.encode() + b"x" * (40 * 1024))
    )

    late_result = await prober.probe(HttpCheck(url=late.url("/"), body_contains=needle), 5.0)
    early_result = await prober.probe(HttpCheck(url=early.url("/"), body_contains=needle), 5.0)

    assert verdict(late_result) == (False, f"HTTP 200: body lacks {needle!r}", False)
    assert verdict(early_result) == (True, "HTTP 200 OK", False)


# --- the request ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
async def test_server_sees_the_method_target_headers_and_host(
    serve: Serve, prober: HttpProber, method: str
) -> None:
    """The configured method and extra headers reach the server, with Host as host:port."""
    server = await serve(reply(200, "OK", b"fine"))
    headers = {"X-Probe": "sentinel", "X-Request-Id": "probe-42"}
    check = HttpCheck(url=server.url("/healthz?full=1"), method=method, headers=headers)

    result = await prober.probe(check, 5.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    [request] = server.requests
    assert (request.method, request.target, request.version) == (
        method,
        "/healthz?full=1",
        "HTTP/1.1",
    )
    assert request.header("x-probe") == ["sentinel"]
    assert request.header("x-request-id") == ["probe-42"]
    assert request.header("host") == [f"127.0.0.1:{server.port}"]
    assert request.body == b""


async def test_userinfo_is_basic_auth_and_configured_headers_replace_the_defaults(
    serve: Serve, prober: HttpProber
) -> None:
    """user:password in the URL is sent as Basic auth; a configured Host or User-Agent wins."""
    server = await serve(reply(200, "OK", b"ok"))
    url = f"http://ops:s%C3%A9cret%40@127.0.0.1:{server.port}/"
    headers = {"host": "web.internal", "User-Agent": "probe/1"}

    result = await prober.probe(HttpCheck(url=url, headers=headers), 5.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    [request] = server.requests
    assert request.header("authorization") == [
        "Basic " + base64.b64encode("ops:sécret@".encode()).decode()
    ]
    assert request.header("host") == ["web.internal"]
    assert request.header("user-agent") == ["probe/1"]
    assert request.header("accept") == ["*/*"]
    assert request.header("connection") == ["close"]


@pytest.mark.parametrize(
    ("path", "target"),
    [
        ("/a b", "/a%20b"),
        ("/ok\u2713", "/ok%E2%9C%93"),
        ("/q?name=a b&mark=\u2713", "/q?name=a%20b&mark=%E2%9C%93"),
        ("/page#section", "/page"),  # a fragment stays with the client
    ],
    ids=["space", "non-ascii", "query", "fragment"],
)
async def test_the_request_target_is_the_percent_encoded_path_and_query(
    serve: Serve, prober: HttpProber, path: str, target: str
) -> None:
    """A path or query with spaces or non-ASCII goes out percent-encoded, as curl sends it."""
    server = await serve(reply(200, "OK", b"ok"))

    result = await prober.probe(HttpCheck(url=server.url(path)), 5.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    assert [r.target for r in server.requests] == [target]


async def test_head_with_content_length_and_no_body_does_not_wait_for_one(
    serve: Serve, prober: HttpProber
) -> None:
    """A HEAD answer announcing 5000 bytes, on a connection left open, passes at once."""
    server = await serve(send_raw(head(200, "OK", "Content-Length: 5000"), then="hang"))
    check = HttpCheck(url=server.url("/"), method="HEAD")

    result, elapsed = await timed(prober, check, 3.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    assert elapsed < 1.0
    assert [r.method for r in server.requests] == ["HEAD"]


async def test_each_probe_opens_a_new_connection(serve: Serve, prober: HttpProber) -> None:
    """Three probes make three connections, though the server would keep each one alive."""
    server = await serve(reply(200, "OK", b"ok"))
    check = HttpCheck(url=server.url("/"))

    results = [await prober.probe(check, 5.0) for _ in range(3)]

    assert [verdict(r) for r in results] == [(True, "HTTP 200 OK", False)] * 3
    assert len(server.requests) == 3
    assert server.connections == 3


# --- the URL and headers at config time -----------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "normal"),
    [
        ("http://127.0.0.1:8000/healthz", "http://127.0.0.1:8000/healthz"),
        ("http://Example.COM:80", "http://example.com/"),  # default port and empty path
        ("https://example.com:443/x", "https://example.com/x"),
        ("http://b\u00fccher.example:8080/", "http://xn--bcher-kva.example:8080/"),  # IDNA
        ("http://[::1]:8080/a b?c=\u2713", "http://[::1]:8080/a%20b?c=%E2%9C%93"),
    ],
)
def test_a_url_is_normalised_once_at_config_time(url: str, normal: str) -> None:
    """The URL a probe sends is the normal form: lower-case host, IDNA, percent-encoding."""
    assert HttpCheck(url=url).url == normal


def config_with_url(tmp_path: Path, url: str, instances: int = 1) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f'[programs.web]\ncommand = "x"\ninstances = {instances}\n'
        f'[programs.web.liveness]\nhttp = {{ url = "{url}" }}\n'
    )
    return path


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://127.0.0.1:99999/", "expected an http or https URL (invalid port number), got"),
        ("http://127.0.0.1:0/", "expected an http or https URL with a port from 1 to 65535"),
        ("http://a host/", "expected an http or https URL (invalid international domain name)"),
        ("http://[::1/", "expected an http or https URL (invalid IPv6 address)"),
        ("http://", "expected an http or https URL (empty host), got 'http://'"),
        ("ftp://127.0.0.1/", "expected string should match pattern '^https?://'"),
    ],
)
def test_a_bad_url_is_a_config_error_naming_the_key(tmp_path: Path, url: str, message: str) -> None:
    """A URL that cannot be requested is refused when the config loads, not at the first probe."""
    with pytest.raises(ConfigError) as info:
        load(config_with_url(tmp_path, url))

    assert f"sentinel.toml: programs.web.liveness.http.url: {message}" in str(info.value)


def test_a_url_with_instance_is_validated_per_instance(tmp_path: Path) -> None:
    """ "{instance}" expands before the URL is checked: each instance's own URL must be valid."""
    assert [
        p.settings.liveness.http.url
        for p in load(config_with_url(tmp_path, "http://127.0.0.1:6553{instance}/", 2)).processes
        if p.settings.liveness and p.settings.liveness.http
    ] == ["http://127.0.0.1:65530/", "http://127.0.0.1:65531/"]

    with pytest.raises(ConfigError) as info:
        load(config_with_url(tmp_path, "http://127.0.0.1:6553{instance}/", 7))

    assert (
        "programs.web.liveness.http.url: expected an http or https URL (invalid port number)"
        in (str(info.value))
    )
    assert "(instance 6)" in str(info.value)


def config_with_headers(tmp_path: Path, headers: str) -> Path:
    path = tmp_path / "sentinel.toml"
    path.write_text(
        '[programs.web]\ncommand = "x"\n[programs.web.liveness]\n'
        f'http = {{ url = "http://127.0.0.1/", headers = {headers} }}\n'
    )
    return path


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (
            '{ "X-A" = "a\\u0001b" }',
            "header 'X-A': expected a value without line breaks or control",
        ),
        (
            '{ "X-A" = "a\\u007fb" }',
            "header 'X-A': expected a value without line breaks or control",
        ),
        ('{ "Content-Length" = "5" }', "header 'Content-Length' is the probe's own"),
        ('{ "transfer-encoding" = "chunked" }', "header 'transfer-encoding' is the probe's own"),
        ('{ "Connection" = "keep-alive" }', "header 'Connection' is the probe's own"),
    ],
    ids=["control", "del", "content-length", "transfer-encoding", "connection"],
)
def test_a_header_the_probe_cannot_send_is_a_config_error(
    tmp_path: Path, headers: str, message: str
) -> None:
    """Control characters, and framing headers that contradict one bodyless request, are refused."""
    with pytest.raises(ConfigError) as info:
        load(config_with_headers(tmp_path, headers))

    assert f"programs.web.liveness.http.headers: {message}" in str(info.value)


def test_blanks_around_a_header_value_are_dropped() -> None:
    """A value is sent without the spaces or tabs around it; those inside stay."""
    check = HttpCheck(url="http://127.0.0.1/", headers={"X-A": " \ta  b\t "})

    assert check.headers == {"X-A": "a  b"}


# --- failures -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "respond",
    [
        hang,
        send_raw(head(200, "OK", "Content-Length: 100") + b"only ten b", then="hang"),
    ],
    ids=["never-answers", "stalls-mid-body"],
)
async def test_a_silent_server_times_out_within_the_bound(
    serve: Serve, prober: HttpProber, respond: Respond
) -> None:
    """A server that accepts but never finishes its answer times out, within timeout + 0.5 s."""
    server = await serve(respond)
    timeout = 0.3

    result, elapsed = await timed(prober, HttpCheck(url=server.url("/")), timeout)

    assert verdict(result) == (False, "timed out after 0.3s", False)
    assert timeout <= elapsed < timeout + 0.5
    assert server.connections == 1


async def test_a_closed_port_is_connection_refused(prober: HttpProber, closed_port: int) -> None:
    """Nothing listening on the port: the probe fails with "connection refused"."""
    check = HttpCheck(url=f"http://127.0.0.1:{closed_port}/")

    result, elapsed = await timed(prober, check, 3.0)

    assert verdict(result) == (False, "connection refused", False)
    assert elapsed < 1.0


async def test_a_closed_port_over_https_is_connection_refused(
    prober: HttpProber, closed_port: int
) -> None:
    """https connects the same way: nothing listening is "connection refused" there too."""
    check = HttpCheck(url=f"https://127.0.0.1:{closed_port}/")

    result, elapsed = await timed(prober, check, 3.0)

    assert verdict(result) == (False, "connection refused", False)
    assert elapsed < 1.0


async def close_at_once(request: Request, writer: asyncio.StreamWriter) -> bool:
    return False


@pytest.mark.parametrize(
    "respond",
    [
        send_raw(b"hello\r\n\r\n", then="hang"),
        send_raw(b"hello\r\n\r\n", then="close"),
        close_at_once,
    ],
    ids=["garbage-then-silence", "garbage-then-close", "close-without-answering"],
)
async def test_a_broken_answer_fails_promptly(
    serve: Serve, prober: HttpProber, respond: Respond
) -> None:
    """Garbage for a status line, or a close with no answer, fails at once, with a reason."""
    server = await serve(respond)

    result, elapsed = await timed(prober, HttpCheck(url=server.url("/")), 2.0)

    assert result.ok is False
    assert result.detail
    assert "timed out" not in result.detail
    assert not result.detail.startswith("HTTP ")
    assert elapsed < 1.0
    assert len(server.requests) == 1


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"HTTP/1.0 200 OK\r\n\r\nok", "HTTP 200 OK"),  # no headers: the body ends at close
        (b"HTTP/1.1 204 No Content\r\n\r\n", "HTTP 204 No Content"),
        (b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok", "HTTP 200 OK"),  # bare LF line ends
        (b"HTTP/1.1 200 OK\r\nX-Long: a\r\n b\r\nContent-Length: 2\r\n\r\nok", "HTTP 200 OK"),
        (b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok", "HTTP 200"),  # no reason phrase
    ],
    ids=["no-headers", "204-no-headers", "bare-lf", "folded-header", "no-reason"],
)
async def test_minimal_valid_answers_pass(
    serve: Serve, prober: HttpProber, raw: bytes, detail: str
) -> None:
    """What a minimal health endpoint may answer, within RFC 9112's leeway, passes."""
    server = await serve(send_raw(raw, "close"))

    result, _ = await timed(prober, HttpCheck(url=server.url("/"), body_contains=None), 2.0)

    assert (result.ok, result.detail) == (True, detail)


def chunked(*lines: bytes) -> bytes:
    return head(200, "OK", "Transfer-Encoding: chunked") + b"".join(lines)


@pytest.mark.parametrize(
    ("raw", "body_contains", "complaint"),
    [
        # Read as a 5-byte body ("abcde") before: the needle was found in a body nobody sent.
        (head(200, "OK", "Content-Length: -3") + b"abcdefgh", "abc", "bad Content-Length"),
        (
            head(200, "OK", "Content-Length: 3", "Content-Length: 8") + b"abcdefgh",
            "abcdefgh",
            "conflicting Content-Length headers",
        ),
        (
            head(200, "OK", "Content-Length: 1_0") + b"0123456789",
            "0123456789",
            "bad Content-Length",
        ),
        (
            head(200, "OK", "Transfer-Encoding: xchunkedx") + b"2\r\nok\r\n0\r\n\r\n",
            "ok",
            "Only Transfer-Encoding: chunked is supported",
        ),
        (chunked(b"+2\r\nok\r\n0\r\n\r\n"), "ok", "illegal chunk header"),
        (chunked(b"0x2\r\nok\r\n0\r\n\r\n"), "ok", "illegal chunk header"),
        (chunked(b"2\r\nokXX0\r\n\r\n"), "ok", "malformed chunk footer"),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", None, "without a pending proposal"),
    ],
    ids=[
        "negative-length",
        "two-lengths",
        "underscore-length",
        "unknown-transfer-encoding",
        "chunk-size-plus",
        "chunk-size-0x",
        "chunk-without-crlf",
        "unasked-101",
    ],
)
async def test_a_malformed_response_fails_as_a_bad_response(
    serve: Serve, prober: HttpProber, raw: bytes, body_contains: str | None, complaint: str
) -> None:
    """What curl or Go's net/http would refuse fails the probe at once, with h11's complaint."""
    server = await serve(send_raw(raw, then="hang"))

    result, elapsed = await timed(
        prober, HttpCheck(url=server.url("/"), body_contains=body_contains), 2.0
    )

    assert result.ok is False
    assert result.detail.startswith(f"127.0.0.1:{server.port}: bad response: ")
    assert complaint in result.detail
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b"", "connection closed before the response"),
        (b"HTTP/1.1 200 OK\r\nContent-", "connection closed before the response"),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "connection closed before the response"),
        (
            head(200, "OK", "Content-Length: 100") + b"only ten b",
            "peer closed connection without sending complete message body "
            "(received 10 bytes, expected 100)",
        ),
        (chunked(b"2\r\nok\r\n"), "incomplete chunked read"),
    ],
    ids=["nothing", "half-a-head", "only-interim", "short-body", "unfinished-chunks"],
)
async def test_a_response_cut_short_fails_as_a_bad_response(
    serve: Serve, prober: HttpProber, raw: bytes, detail: str
) -> None:
    """A connection closed before the head, or the announced body, is complete fails at once."""
    server = await serve(send_raw(raw, then="close"))

    result, elapsed = await timed(prober, HttpCheck(url=server.url("/")), 2.0)

    assert result.ok is False
    assert result.detail.startswith(f"127.0.0.1:{server.port}: bad response: ")
    assert detail in result.detail
    assert elapsed < 1.0


async def test_a_head_over_64_kib_fails(serve: Serve, prober: HttpProber) -> None:
    """A status line and headers that never end within 64 KiB fail, without waiting for more."""
    server = await serve(send_raw(head(200, "OK")[:-2] + b"X-Pad: " + b"x" * 70_000, "hang"))

    result, elapsed = await timed(prober, HttpCheck(url=server.url("/")), 2.0)

    assert verdict(result) == (
        False,
        f"127.0.0.1:{server.port}: bad response: response head over 64 KiB",
        False,
    )
    assert elapsed < 1.0


async def test_interim_responses_are_skipped(serve: Serve, prober: HttpProber) -> None:
    """100 Continue and 103 Early Hints before the answer: the answer is what is judged."""
    raw = (
        b"HTTP/1.1 100 Continue\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
        + head(503, "Service Unavailable", "Content-Length: 4")
        + b"down"
    )
    server = await serve(send_raw(raw, then="hang"))

    result, elapsed = await timed(prober, HttpCheck(url=server.url("/")), 2.0)

    assert verdict(result) == (False, "HTTP 503 Service Unavailable", False)
    assert elapsed < 1.0


@pytest.mark.parametrize(
    ("fields", "ok"), [({}, False), ({"expect_status": "101"}, True)], ids=["default", "101"]
)
async def test_an_asked_for_upgrade_is_judged_by_its_101(
    serve: Serve, prober: HttpProber, fields: dict[str, Any], ok: bool
) -> None:
    """With an Upgrade header configured, a 101 is the answer, judged at once like any status."""
    server = await serve(send_raw(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", then="hang"))
    check = HttpCheck(url=server.url("/"), headers={"Upgrade": "websocket"}, **fields)

    result, elapsed = await timed(prober, check, 2.0)

    assert verdict(result) == (ok, "HTTP 101 Switching Protocols", False)
    assert elapsed < 1.0


async def test_reading_stops_at_64_kib_of_body(serve: Serve, prober: HttpProber) -> None:
    """A body announced as 1 MiB whose first 64 KiB have come is judged then, not awaited."""
    raw = head(200, "OK", f"Content-Length: {1024 * 1024}") + b"ok" + b"x" * (64 * 1024)
    server = await serve(send_raw(raw, then="hang"))

    result, elapsed = await timed(prober, HttpCheck(url=server.url("/"), body_contains="ok"), 2.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    assert elapsed < 1.0


# --- what the server controls ---------------------------------------------------------------


@pytest.mark.parametrize(("status", "ok"), [(200, True), (503, False)], ids=["passing", "failing"])
async def test_control_characters_in_the_reason_phrase_are_escaped(
    serve: Serve, prober: HttpProber, status: int, ok: bool
) -> None:
    """Terminal escapes, C1 controls and bidi overrides in a reason phrase arrive escaped."""
    reason = b"Fine\x1b[2J\x1b]0;owned\x07 \xc2\x9b \xe2\x80\xae \xff caf\xc3\xa9"
    raw = b"HTTP/1.1 %d %s\r\nContent-Length: 0\r\n\r\n" % (status, reason)
    server = await serve(send_raw(raw, then="close"))

    result = await prober.probe(HttpCheck(url=server.url("/")), 2.0)

    assert verdict(result) == (
        ok,
        f"HTTP {status} Fine\\x1b[2J\\x1b]0;owned\\x07 \\x9b \\u202e \\xff café",
        False,
    )


async def test_a_long_reason_phrase_is_cut_short(serve: Serve, prober: HttpProber) -> None:
    """A 10 000-character reason phrase is cut to 200 characters in the detail."""
    raw = head(503, "x" * 10_000, "Content-Length: 0")
    server = await serve(send_raw(raw, then="close"))

    result = await prober.probe(HttpCheck(url=server.url("/")), 2.0)

    assert verdict(result) == (False, "HTTP 503 " + "x" * 200 + "...", False)


async def test_a_complaint_quoting_the_response_is_escaped_and_short(
    serve: Serve, prober: HttpProber
) -> None:
    """When h11 quotes a bad header line back, the detail stays printable and short."""
    raw = head(200, "OK", "Content-Length: 0", "Bad Header: \x1b[31m" + "y" * 10_000)
    server = await serve(send_raw(raw, then="close"))

    result = await prober.probe(HttpCheck(url=server.url("/")), 2.0)

    assert result.ok is False
    assert result.detail.startswith(f"127.0.0.1:{server.port}: bad response: illegal header line")
    assert result.detail.isprintable()
    assert result.detail.endswith("...")
    assert len(result.detail) < 300


# --- IPv6 -----------------------------------------------------------------------------------


async def test_an_ipv6_literal_is_bracketed_in_host_and_detail(
    serve: Serve, prober: HttpProber
) -> None:
    """http://[::1]:PORT/ sends "Host: [::1]:PORT", and a failure names "[::1]:PORT"."""
    good = await serve(reply(200, "OK", b"ok"), host="::1")
    bad = await serve(send_raw(b"hello\r\n\r\n", then="close"), host="::1")

    good_result = await prober.probe(HttpCheck(url=good.url("/")), 2.0)
    bad_result = await prober.probe(HttpCheck(url=bad.url("/")), 2.0)

    assert verdict(good_result) == (True, "HTTP 200 OK", False)
    assert [r.header("host") for r in good.requests] == [[f"[::1]:{good.port}"]]
    assert bad_result.detail.startswith(f"[::1]:{bad.port}: bad response: illegal status line")


# --- TLS ------------------------------------------------------------------------------------


async def test_self_signed_certificate_fails_verification(
    serve: Serve, prober: HttpProber, self_signed: ssl.SSLContext
) -> None:
    """With tls_verify on, a certificate from an unknown CA fails the probe before any request."""
    server = await serve(reply(200, "OK", b"ok"), self_signed)
    check = HttpCheck(url=server.url("/", scheme="https"), tls_verify=True)

    result, elapsed = await timed(prober, check, 3.0)

    assert result.ok is False
    assert result.detail == f"127.0.0.1:{server.port}: TLS: unable to get local issuer certificate"
    assert elapsed < 1.0
    assert server.requests == []


@pytest.mark.parametrize("framing", FRAMINGS)
async def test_tls_bodies_are_read_whatever_their_framing(
    serve: Serve, prober: HttpProber, self_signed: ssl.SSLContext, framing: str
) -> None:
    """Over TLS too, a body with a length, chunked or ending at close is read and checked."""
    server = await serve(send_body(framing, PAGE, PAGE_PARTS), self_signed)
    check = HttpCheck(
        url=server.url("/", scheme="https"), tls_verify=False, body_regex="status: al+-go+d;"
    )

    result, elapsed = await timed(prober, check, 3.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    assert elapsed < 1.0


async def test_self_signed_certificate_passes_without_verification(
    serve: Serve, prober: HttpProber, self_signed: ssl.SSLContext
) -> None:
    """With tls_verify off, the same server is probed over TLS and its answer judged."""
    server = await serve(reply(200, "OK", b"secure ok"), self_signed)
    check = HttpCheck(
        url=server.url("/tls", scheme="https"), tls_verify=False, body_contains="secure ok"
    )

    result = await prober.probe(check, 3.0)

    assert verdict(result) == (True, "HTTP 200 OK", False)
    assert [(r.target, r.header("host")) for r in server.requests] == [
        ("/tls", [f"127.0.0.1:{server.port}"])
    ]
