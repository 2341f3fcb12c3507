"""Where the CLI finds its daemons, and what it says when one refuses or cannot be reached."""

from __future__ import annotations

import errno
from pathlib import Path

import httpx
import pytest

from sentinel.cli.client import Daemon, DaemonError
from sentinel.cli.servers import Server, find_servers, parse_server, read_hosts
from sentinel.errors import ControlError


@pytest.mark.parametrize(
    ("text", "server", "label"),
    [
        ("/run/sentinel.sock", Server(socket="/run/sentinel.sock"), "/run/sentinel.sock"),
        ("unix:///run/s.sock", Server(socket="/run/s.sock"), "/run/s.sock"),
        ("sentinel.sock", Server(socket="sentinel.sock"), "sentinel.sock"),
        ("http://web1:9001", Server(url="http://web1:9001"), "web1:9001"),
        ("https://ops@web1:9001/", Server(url="https://ops@web1:9001/"), "web1:9001"),
        ("web1.internal:9001", Server(url="http://web1.internal:9001"), "web1.internal:9001"),
        ("[::1]:9001", Server(url="http://[::1]:9001"), "[::1]:9001"),
    ],
)
def test_servers_are_sockets_or_urls(text: str, server: Server, label: str) -> None:
    """A path is a socket, a URL or HOST:PORT is HTTP; the label names the host, not the user."""
    assert parse_server(text) == server
    assert server.label == label


@pytest.mark.parametrize("text", ["", "   ", "ftp://web1/"])
def test_what_is_not_a_server(text: str) -> None:
    with pytest.raises(ControlError):
        parse_server(text)


def test_hosts_file_skips_comments_and_blank_lines(tmp_path: Path) -> None:
    hosts = tmp_path / "hosts"
    hosts.write_text("# fleet\nweb1:9001\n\n  /run/a.sock   # local\nhttp://web2:9001#x\n")
    assert read_hosts(str(hosts)) == ["web1:9001", "/run/a.sock", "http://web2:9001#x"]
    hosts.write_text("# nothing\n\n")
    with pytest.raises(ControlError, match="names no server"):
        read_hosts(str(hosts))
    with pytest.raises(ControlError, match="cannot read"):
        read_hosts(str(tmp_path / "missing"))


def test_where_the_servers_come_from(tmp_path: Path) -> None:
    """-s and --hosts, else $SENTINEL_SERVERS, else $SENTINEL_SERVER, else the config's
    [control] socket; a list (or more than one) labels answers with their host."""
    hosts = tmp_path / "hosts"
    hosts.write_text("c:1\n")
    config = tmp_path / "s.toml"
    config.write_text('[control]\nsocket = "run/s.sock"\n[programs.x]\ncommand = "${UNSET}"\n')
    env = {"SENTINEL_SERVERS": "d:1, e:1", "SENTINEL_SERVER": "f:1"}

    def found(
        given: list[str], hosts_file: str | None, environ: dict[str, str]
    ) -> tuple[list[str], bool]:
        servers = find_servers(given, hosts_file, str(config), environ)
        return [s.label for s in servers.servers], servers.fleet

    assert found(["a:1", "b:1", "a:1"], str(hosts), env) == (["a:1", "b:1", "c:1"], True)
    assert found(["a:1"], None, env) == (["a:1"], False)
    assert found([], None, env) == (["d:1", "e:1"], True)
    assert found([], None, {"SENTINEL_SERVER": "f:1"}) == (["f:1"], False)
    assert found([], None, {}) == ([str(tmp_path / "run" / "s.sock")], False)


def daemon(handler: httpx.MockTransport, user: str | None = None) -> Daemon:
    credentials = (user, "pw") if user else None
    return Daemon(Server(url="http://web1:9001"), credentials=credentials, transport=handler)


def answering(status: int, error: str) -> httpx.MockTransport:
    return httpx.MockTransport(lambda _: httpx.Response(status, json={"ok": False, "error": error}))


@pytest.mark.parametrize(
    ("status", "error", "user", "message"),
    [
        (401, "log in: this needs the viewer role", None,
         "log in: this needs the viewer role: give --user NAME (and the password in SENTINEL_PASSWORD)"),
        (401, "wrong user name or password", "ops", "user ops was refused: wrong user name or password"),
        (403, "ops is a viewer: this needs operator", "ops", "ops is a viewer: this needs operator"),
        (404, "no such process or group: web", None, "no such process or group: web"),
        (400, "unknown signal 'NOPE'", None, "unknown signal 'NOPE'"),
        (500, "boom", None, "HTTP 500: boom"),
    ],
)  # fmt: skip
def test_refusals_say_what_to_do(status: int, error: str, user: str | None, message: str) -> None:
    """401 says to give --user (or which user failed), 403 the role needed, 404/400 the
    daemon's own words."""
    with daemon(answering(status, error), user) as d, pytest.raises(DaemonError) as info:
        d.json("GET", "/api/v1/programs")
    assert str(info.value) == message
    assert info.value.in_fleet() == f"web1:9001: {message}"
    assert not info.value.unreachable


def test_an_accepted_error_status_is_an_answer() -> None:
    """reload's 400 (a rejected config) is read, not raised."""
    with daemon(answering(400, "bad config")) as d:
        assert d.json("POST", "/api/v1/reload", accept=(400,)) == {
            "ok": False,
            "error": "bad config",
        }


def test_credentials_go_as_basic_auth() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers.get("authorization", ""))
        return httpx.Response(200, json=[])

    with daemon(httpx.MockTransport(handler), "ops") as d:
        d.json("GET", "/api/v1/programs")
    assert seen == ["Basic b3BzOnB3"]  # ops:pw


def unreachable(error: Exception) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("failed", request=request) from error

    return httpx.MockTransport(handler)


@pytest.mark.parametrize(
    ("cause", "reason"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection refused"),
        (FileNotFoundError(errno.ENOENT, "No such file"), "no such socket (is the daemon running?)"),
        (PermissionError(errno.EACCES, "Permission denied"),
         "permission denied (see [control] socket_mode and socket_group)"),
        (OSError(-2, "Name or service not known"), "unknown host (Name or service not known)"),
    ],
)  # fmt: skip
def test_unreachable_says_why_in_words(cause: Exception, reason: str) -> None:
    """The OS error under httpx's, in a few words: refused, no socket, permission, no host."""
    with daemon(unreachable(cause)) as d, pytest.raises(DaemonError) as info:
        d.json("GET", "/api/v1/programs")
    assert str(info.value) == f"cannot reach the daemon at web1:9001: {reason}"
    assert info.value.in_fleet() == f"web1:9001: cannot reach the daemon: {reason}"


def test_a_timeout_names_the_limit() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with (
        Daemon(
            Server(socket="/run/s.sock"), timeout=2.5, transport=httpx.MockTransport(handler)
        ) as d,
        pytest.raises(
            DaemonError, match=r"^cannot reach the daemon at /run/s.sock: no answer within 2.5s$"
        ),
    ):
        d.json("GET", "/api/v1/programs")


def test_event_stream_yields_data_objects() -> None:
    body = b': connected\n\nevent: restart\ndata: {"event": "restart"}\n\ndata: {"n": 2}\n\n'
    transport = httpx.MockTransport(lambda _: httpx.Response(200, content=body))
    with daemon(transport) as d:
        assert list(d.stream("/api/v1/events", {})) == [{"event": "restart"}, {"n": 2}]
