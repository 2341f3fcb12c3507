"""The control plane's guard against a real daemon: cross-site requests, foreign Host headers,
body limits, users and roles, unix peers, the socket's place and mode, and the audit log."""

from __future__ import annotations

import json
import os
import select
import socket
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.auth import hash_password
from tests.integration.conftest import SentinelProcess, child, state_is

Start = Callable[[str], SentinelProcess]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))
PASSWORDS = {"viewer": "v-pass", "operator": "o-pass", "admin": "a-pass"}
USERS = ", ".join(
    f'{{ name = "{role}", password_hash = "{hash_password(password)}", role = "{role}" }}'
    for role, password in PASSWORDS.items()
)


def http_address(daemon: SentinelProcess) -> str:
    address = daemon.api("GET", "/healthz").json()["http"]
    assert address and address.startswith("127.0.0.1:"), address
    return str(address)


def audit_entries(daemon: SentinelProcess) -> list[dict[str, Any]]:
    path = daemon.directory / "state" / "audit.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def shared_daemon(directory: Path, config: str) -> Iterator[SentinelProcess]:
    """A daemon shared by the tests of this module that change nothing it runs (no spawn:
    the leak guard would see a new child)."""
    daemon = SentinelProcess(directory, config).start()
    daemon.wait_event(state_is("beta", "RUNNING"))
    yield daemon
    assert daemon.terminate() == 0, daemon.log()


PROGRAMS = f"""
    [programs.beta]
    command = {SLEEPER}
    start_seconds = 0
    [programs.idle]
    command = {SLEEPER}
    autostart = false
"""


@pytest.fixture(scope="module")
def open_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelProcess]:
    """A daemon on loopback without users: anonymous callers are viewers."""
    config = '[control]\nhttp = "127.0.0.1:0"\n' + PROGRAMS
    yield from shared_daemon(tmp_path_factory.mktemp("open"), config)


@pytest.fixture(scope="module")
def users_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelProcess]:
    config = f'[control]\nhttp = "127.0.0.1:0"\nusers = [{USERS}]\n' + PROGRAMS
    yield from shared_daemon(tmp_path_factory.mktemp("users"), config)


# --- what a web page can send -------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "body"),
    [
        (
            {"Origin": "http://evil.example", "Content-Type": "application/x-www-form-urlencoded"},
            "a=1",
        ),
        ({"Content-Type": "application/x-www-form-urlencoded"}, "a=1"),  # a form, even same-site
        ({"Content-Type": "text/plain"}, '{"signal": "KILL"}'),
        ({"Content-Type": "multipart/form-data; boundary=x"}, "--x--"),
        ({"Origin": "http://evil.example", "Content-Type": "application/json"}, "{}"),
        ({"Origin": "null", "Content-Type": "application/json"}, "{}"),
        ({"Sec-Fetch-Site": "cross-site"}, ""),
        ({"Sec-Fetch-Site": "same-site"}, ""),
    ],
)
def test_what_a_web_page_can_send_changes_nothing(
    users_daemon: SentinelProcess, headers: dict[str, str], body: str
) -> None:
    """Cross-site forms, text bodies and foreign origins are refused (403) before any
    authentication, even with an admin's password, and the program keeps running."""
    daemon = users_daemon
    pid = daemon.status("beta")["pid"]
    base = f"http://{http_address(daemon)}"
    auth = ("admin", PASSWORDS["admin"])
    for path in (
        "/api/v1/programs/beta/stop",
        "/api/v1/all/signal?signal=KILL",
        "/api/v1/shutdown",
    ):
        response = httpx.post(base + path, headers=headers, content=body, auth=auth, timeout=10)
        assert response.status_code == 403, (path, response.text)
        assert "refused" in response.json()["error"]
    assert daemon.status("beta")["pid"] == pid and daemon.proc is not None
    assert daemon.proc.poll() is None
    refused = [e for e in audit_entries(daemon) if e["result"].startswith("refused")]
    assert {e["action"] for e in refused[-3:]} == {
        "POST /api/v1/programs/beta/stop", "POST /api/v1/all/signal", "POST /api/v1/shutdown"
    }  # fmt: skip


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.2:{port}"])
def test_a_foreign_host_header_is_misdirected(open_daemon: SentinelProcess, host: str) -> None:
    """A DNS-rebinding page reaches 127.0.0.1 under a name of its own: 421, nothing read."""
    address = http_address(open_daemon)
    port = address.rsplit(":", 1)[1]
    for method, path in (("GET", "/api/v1/programs"), ("POST", "/api/v1/programs/beta/stop")):
        response = httpx.request(
            method, f"http://{address}{path}", headers={"Host": host.format(port=port)}, timeout=10
        )
        assert response.status_code == 421, response.text
        assert "beta" not in response.text
    assert open_daemon.status("beta")["state"] == "RUNNING"


def test_the_listeners_own_names_are_hosts(open_daemon: SentinelProcess) -> None:
    """127.0.0.1 and localhost (with the port) are the listener's names."""
    address = http_address(open_daemon)
    port = address.rsplit(":", 1)[1]
    for host in (address, f"localhost:{port}", "localhost", "LOCALHOST"):
        response = httpx.get(f"http://{address}/api/v1/programs", headers={"Host": host})
        assert response.status_code == 200, host


def test_a_same_origin_json_request_works(users_daemon: SentinelProcess) -> None:
    """What a page of sentinel's own origin sends (JSON, its own Origin) is allowed."""
    address = http_address(users_daemon)
    response = httpx.post(
        f"http://{address}/api/v1/programs/beta/signal",
        headers={"Origin": f"http://{address}", "Sec-Fetch-Site": "same-origin"},
        json={"signal": "CONT"},
        auth=("operator", PASSWORDS["operator"]),
        timeout=30,
    )
    assert response.status_code == 200, response.text


# --- how much a request may cost ---------------------------------------------------------


def test_a_huge_body_is_refused_before_it_is_read(open_daemon: SentinelProcess) -> None:
    """20 MB announced: 413 at once, nothing echoed; the daemon answers the next request."""
    address = http_address(open_daemon)
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        began = time.monotonic()
        sock.sendall(
            b"POST /api/v1/reload HTTP/1.1\r\nHost: " + address.encode() + b"\r\n"
            b"Content-Type: application/json\r\nContent-Length: 20000000\r\n\r\n" + b"{" * 65536
        )
        answer = sock.recv(65536)
        assert time.monotonic() - began < 1.0
    assert answer.startswith(b"HTTP/1.1 413 "), answer[:100]
    assert b"{{{{" not in answer
    assert open_daemon.status("beta")["state"] == "RUNNING"


def test_a_chunked_body_is_cut_at_the_limit(open_daemon: SentinelProcess) -> None:
    """Without a Content-Length, the body is counted as it comes and refused past 1 MiB."""
    address = http_address(open_daemon)

    def chunks() -> Iterator[bytes]:
        for _ in range(40):
            yield b" " * 65536

    response = httpx.post(
        f"http://{address}/api/v1/programs/beta/signal",
        content=chunks(),
        headers={"Content-Type": "application/json"},
        timeout=10,
    )
    assert response.status_code in (401, 413), response.text  # anonymous: refused either way
    assert open_daemon.status("beta")["state"] == "RUNNING"


@pytest.mark.parametrize(
    "query",
    [
        "/api/v1/events?history=abc",
        "/api/v1/events?history=-1",
        "/api/v1/events?follow=maybe",
        "/api/v1/programs/beta/log?offset=1e3",
        "/api/v1/programs/beta/log?stream=stdin",
        "/api/v1/programs/beta/log?length=-5",
    ],
)
def test_a_bad_query_parameter_is_a_400(open_daemon: SentinelProcess, query: str) -> None:
    """Every query parameter is checked: 400 with what was expected, never a 500."""
    response = open_daemon.api("GET", query)  # the unix socket: root is admin
    assert response.status_code == 400, response.text
    assert "expected" in response.json()["error"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v1/programs/all"),  # a 500: one process was unpacked from two
        ("GET", "/api/v1/programs/beta:*"),
        ("GET", "/api/v1/programs/beta:beta"),
        ("GET", "/api/v1/programs/all/log"),  # read the first process's log
        ("POST", "/api/v1/programs/all/stop"),  # stopped every process
        ("POST", "/api/v1/programs/beta:*/signal?signal=CONT"),
    ],
)
def test_a_process_route_takes_one_process_not_a_selection(
    open_daemon: SentinelProcess, method: str, path: str
) -> None:
    """/api/v1/programs/{name}/... names one process: `all` and GROUP:* are 404 there (the
    group and all routes take those)."""
    response = open_daemon.api(method, path)
    assert response.status_code == 404, response.text
    assert response.json()["error"].startswith("no such process: ")
    assert open_daemon.status("beta")["state"] == "RUNNING"


@pytest.mark.parametrize(
    ("query", "body"),
    [
        ("?signal=CONT", '{"signal": "AAA"}'),  # found by schemathesis: a 200, body ignored
        ("?signal=CONT", '{"signal": 18}'),
        ("?signal=CONT", "[]"),
        ("?signal=CONT", "{"),
        ("?signal=%D9%A3", ""),  # an Arabic-Indic 3: was SIGQUIT
        ("", "{}"),
        ("", ""),
    ],
)
def test_a_signal_named_wrong_anywhere_is_a_400(
    open_daemon: SentinelProcess, query: str, body: str
) -> None:
    """The query and the body are both checked, though the query wins when both are right."""
    headers = {"Content-Type": "application/json"}
    path = "/api/v1/programs/beta/signal" + query
    response = open_daemon.api("POST", path, content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False


def test_a_signal_in_the_body_alone_is_sent(open_daemon: SentinelProcess) -> None:
    body = {"signal": "cont"}
    response = open_daemon.api("POST", "/api/v1/programs/beta/signal", json=body)
    assert response.status_code == 200 and response.json()["results"] == {"beta": True}


def test_idle_connections_cannot_take_the_daemons_descriptors(open_daemon: SentinelProcess) -> None:
    """More idle connections than the cap are closed at once; the daemon still answers."""
    address = http_address(open_daemon)
    host, port = address.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port)), timeout=10) for _ in range(300)]
    try:
        response = open_daemon.api("GET", "/api/v1/programs/beta")
        assert response.status_code == 200
        # Those over the cap were closed as soon as they were accepted: they read EOF now.
        readable, _, _ = select.select(idle, [], [], 5.0)
        assert all(sock.recv(1) == b"" for sock in readable)
        assert len(readable) >= 300 - 128, len(readable)
    finally:
        for sock in idle:
            sock.close()


# --- users and roles ---------------------------------------------------------------------

ROUTES = [
    ("GET", "/api/v1/programs", "viewer"),
    ("GET", "/api/v1/programs/beta", "viewer"),
    ("GET", "/api/v1/events?follow=false", "viewer"),
    ("GET", "/metrics", "viewer"),
    ("POST", "/api/v1/programs/idle/stop", "operator"),
    ("POST", "/api/v1/groups/beta/signal?signal=CONT", "operator"),
    ("POST", "/api/v1/programs/beta/start", "operator"),
    ("GET", "/api/v1/programs/beta/log", "admin"),
    ("POST", "/api/v1/reload", "admin"),
]
RANK = {"viewer": 1, "operator": 2, "admin": 3}


@pytest.mark.parametrize(("method", "path", "needs"), ROUTES)
def test_every_route_against_every_role(
    users_daemon: SentinelProcess, method: str, path: str, needs: str
) -> None:
    """Each role may do what it and the roles below it may; a wrong password is 401; without
    a password (users configured) nothing but /healthz."""
    base = f"http://{http_address(users_daemon)}"
    for role, password in PASSWORDS.items():
        response = httpx.request(method, base + path, auth=(role, password), timeout=30)
        expected = 200 if RANK[role] >= RANK[needs] else 403
        assert response.status_code == expected, (role, response.text)
        if expected == 403:
            assert f"needs {needs}" in response.json()["error"]
    wrong = httpx.request(method, base + path, auth=("admin", "nope"), timeout=30)
    assert wrong.status_code == 401 and wrong.headers["WWW-Authenticate"].startswith("Basic ")
    anonymous = httpx.request(method, base + path, timeout=30)
    assert anonymous.status_code == 401
    assert httpx.get(base + "/healthz", timeout=10).status_code == 200


def test_anonymous_callers_on_loopback_read_and_change_nothing(
    open_daemon: SentinelProcess,
) -> None:
    """Without users, a loopback listener answers anyone's reads, and refuses changes (401)."""
    base = f"http://{http_address(open_daemon)}"
    assert httpx.get(base + "/api/v1/programs", timeout=10).status_code == 200
    for path in ("/api/v1/programs/beta/stop", "/api/v1/shutdown"):
        assert httpx.post(base + path, timeout=10).status_code == 401
    assert httpx.get(base + "/api/v1/programs/beta/log", timeout=10).status_code == 401
    assert open_daemon.status("beta")["state"] == "RUNNING"


def test_the_audit_log_says_who_did_what_and_never_a_password(
    users_daemon: SentinelProcess,
) -> None:
    """Each change is a JSON line: when, who, from where, what, target, result."""
    base = f"http://{http_address(users_daemon)}"
    response = httpx.post(
        base + "/api/v1/programs/idle/stop", auth=("operator", PASSWORDS["operator"]), timeout=30
    )
    assert response.status_code == 200
    httpx.post(base + "/api/v1/reload", auth=("operator", PASSWORDS["operator"]), timeout=30)
    entries = audit_entries(users_daemon)
    stop, refused = entries[-2:]
    assert {k: stop[k] for k in ("who", "role", "action", "target", "result")} == {
        "who": "operator", "role": "operator", "action": "stop", "target": "idle", "result": "ok"
    }  # fmt: skip
    assert stop["from"].startswith("127.0.0.1:") and abs(stop["time"] - time.time()) < 60
    assert refused["action"] == "POST /api/v1/reload" and refused["result"].startswith("refused")
    text = (users_daemon.directory / "state" / "audit.jsonl").read_text()
    assert not any(p in text for p in PASSWORDS.values())
    mode = stat.S_IMODE((users_daemon.directory / "state" / "audit.jsonl").stat().st_mode)
    assert mode == 0o600


# --- the unix socket ---------------------------------------------------------------------


def test_the_socket_is_private_by_default(open_daemon: SentinelProcess) -> None:
    """The socket is 0600; its directory is not writable by others."""
    assert stat.S_IMODE(open_daemon.socket.stat().st_mode) == 0o600


def test_a_socket_in_a_directory_others_can_write_is_refused(tmp_path: Path) -> None:
    """A world-writable directory would let another user create the path first: refused at
    start-up, naming the directory and the key."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)
    config = tmp_path / "sentinel.toml"
    config.write_text(f'[control]\nsocket = "{shared}/s.sock"\n')
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "run", "-c", str(config)],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert f"{config}: control.socket: {shared} may be written by other users" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (shared / "s.sock").exists()


@pytest.fixture
def public_socket_dir() -> Iterator[Path]:
    """A directory other users can enter but not write (the tests' tmp_path is private)."""
    directory = Path(tempfile.mkdtemp(prefix="sentinel-sock-"))
    directory.chmod(0o711)
    yield directory
    for entry in directory.iterdir():
        entry.unlink()
    directory.rmdir()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another user")
def test_unix_peers_by_uid(sentinel: Start, public_socket_dir: Path) -> None:
    """On a shared socket (0666), root is admin and another user is anonymous (a viewer)."""
    sock = public_socket_dir / "s.sock"
    daemon = sentinel(f"""
        [control]
        socket = "{sock}"
        socket_mode = "0666"
        [programs.beta]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("beta", "RUNNING"))

    def as_nobody(method: str, path: str) -> int:
        # The system's Python: the test's own may live where nobody cannot read.
        code = (
            "import socket, sys; s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); "
            "s.sendall(f'{sys.argv[2]} {sys.argv[3]} HTTP/1.1\\r\\nHost: x\\r\\n"
            "Content-Length: 0\\r\\nConnection: close\\r\\n\\r\\n'.encode()); "
            "print(s.recv(100).split()[1].decode())"
        )
        argv = ["/usr/bin/python3", "-c", code, str(sock), method, path]
        result = subprocess.run(
            ["runuser", "-u", "nobody", "--", *argv],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return int(result.stdout)

    assert as_nobody("GET", "/api/v1/programs") == 200
    assert as_nobody("POST", "/api/v1/programs/beta/signal?signal=STOP") == 401
    assert as_nobody("POST", "/api/v1/shutdown") == 401
    assert daemon.status("beta")["state"] == "RUNNING"
    entries = audit_entries(daemon)
    assert entries[-1]["from"].startswith("unix socket, uid 65534")
    assert daemon.api("POST", "/api/v1/programs/beta/restart").status_code == 200  # root: admin
