"""The bundled exec-probe checks (checks/*.py), each run as a real subprocess against real things."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import socketserver
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import IO, Any

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import wait_until

ROOT = Path(__file__).resolve().parents[2]
CHECKS = ["heartbeat", "memory", "http_json", "redis_ping", "postgres_ready"]
PG_BIN_DIRS = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)  # newest first


@dataclass(frozen=True)
class Outcome:
    code: int
    line: str  # the first line: what sentinel keeps as the probe's detail
    output: str  # stdout and stderr


def run_check(name: str, *args: str, env: dict[str, str] | None = None) -> Outcome:
    """Run checks/NAME.py as a script, the way a person tries one out."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "checks" / f"{name}.py"), *args],
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, **(env or {})},
    )  # fmt: skip
    return Outcome(
        result.returncode, result.stdout.partition("\n")[0], result.stdout + result.stderr
    )


def assert_outcome(outcome: Outcome, code: int, status: str, *fragments: str) -> None:
    assert outcome.code == code, outcome.output
    assert re.match(rf"^[A-Z_]+ {status} - ", outcome.line), outcome.output
    for fragment in fragments:
        assert fragment in outcome.line, outcome.output


class ServerLog:
    """A server's output, collected by a thread, so a test waits for a log line, not a sleep."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.lines: list[str] = []
        self._ended = False
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: IO[bytes]) -> None:
        for raw in stream:
            with self._changed:
                self.lines.append(raw.decode(errors="replace").rstrip())
                self._changed.notify_all()
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def wait_for(self, pattern: str, timeout: float = 30) -> None:
        """Return once a line matches the regular expression; fail if the server exits first."""

        def matched() -> bool:
            return any(re.search(pattern, line) for line in self.lines)

        with self._changed:
            self._changed.wait_for(lambda: self._ended or matched(), timeout)
            if not matched():
                raise AssertionError(f"/{pattern}/ not logged; the log:\n" + "\n".join(self.lines))

    def join(self) -> None:
        self._thread.join(30)


def stop(proc: subprocess.Popen[bytes], log: ServerLog, sig: signal.Signals) -> None:
    """Signal a server, reap it and its log reader, close its pipe."""
    if proc.poll() is None:
        proc.send_signal(sig)
    proc.wait(30)
    log.join()
    assert proc.stdout is not None
    proc.stdout.close()


@contextlib.contextmanager
def serving(server: socketserver.BaseServer) -> Iterator[None]:
    """Run a socketserver in a thread for the duration of the block."""
    # A short poll interval: shutdown() waits for the loop to look, 0.5s by default.
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that refuses connections: bound (so no one else takes it), not listening."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A loopback port that completes connections (the kernel's backlog) but never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


@pytest.fixture
def not_a_server() -> Iterator[int]:
    """A TCP port on loopback that answers anything with an HTTP error: the wrong protocol."""

    class Handler(socketserver.BaseRequestHandler):
        def handle(self) -> None:
            self.request.recv(4096)
            self.request.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
            while self.request.recv(4096):  # keep it open until the client has read and gone
                pass

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    with serving(server):
        yield server.server_address[1]


# --- every check ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", CHECKS)
def test_help_explains_and_exits_0(name: str) -> None:
    """--help exits 0 and shows how to use the check from a sentinel exec probe."""
    outcome = run_check(name, "--help")
    assert outcome.code == 0, outcome.output
    assert f'check = "{name}"' in outcome.output


@pytest.mark.parametrize("name", CHECKS)
def test_bad_argument_is_unknown(name: str) -> None:
    """A bad argument exits 3 (UNKNOWN) with a status line, not argparse's 2 (CRITICAL)."""
    outcome = run_check(name, "--timeout", "soon")
    assert_outcome(outcome, 3, "UNKNOWN", "--timeout")
    assert "Traceback" not in outcome.output


@pytest.mark.parametrize("name", CHECKS)
def test_runs_as_a_package_module(name: str) -> None:
    """Each check also runs with -m from its package, as sentinel runs it."""
    result = subprocess.run(
        [sys.executable, "-m", f"checks.{name}", "--help"],
        capture_output=True, text=True, cwd=ROOT, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr


# --- heartbeat --------------------------------------------------------------------------------


def _beat(tmp_path: Path, age: float) -> str:
    path = tmp_path / "worker.beat"
    path.touch()
    then = time.time() - age
    os.utime(path, (then, then))
    return str(path)


@pytest.mark.parametrize(
    ("age", "code", "status"),
    [(1, 0, "OK"), (25, 1, "WARNING"), (100, 2, "CRITICAL")],
)
def test_heartbeat_age_bands(tmp_path: Path, age: float, code: int, status: str) -> None:
    """A heartbeat is OK when fresh, WARNING past --warn-age and CRITICAL past --max-age."""
    beat = _beat(tmp_path, age)
    outcome = run_check("heartbeat", "--file", beat, "--max-age", "30s", "--warn-age", "20s")
    assert_outcome(outcome, code, status, beat, " old")
    assert "| age=" in outcome.line


def test_heartbeat_from_the_future_is_warning(tmp_path: Path) -> None:
    """An mtime ahead of the clock (a clock stepped back) passes as WARNING and says so."""
    outcome = run_check("heartbeat", "--file", _beat(tmp_path, -100), "--max-age", "30s")
    assert_outcome(outcome, 1, "WARNING", "in the future")


def test_heartbeat_missing_file_is_critical(tmp_path: Path) -> None:
    """A heartbeat file that does not exist is CRITICAL."""
    outcome = run_check("heartbeat", "--file", str(tmp_path / "nope"), "--max-age", "30s")
    assert_outcome(outcome, 2, "CRITICAL", "does not exist")


def test_heartbeat_bad_duration_is_unknown(tmp_path: Path) -> None:
    """A --max-age that is not a duration is UNKNOWN and says what was expected."""
    outcome = run_check("heartbeat", "--file", _beat(tmp_path, 0), "--max-age", "ten")
    assert_outcome(outcome, 3, "UNKNOWN", "--max-age", "'ten'")


# --- memory -----------------------------------------------------------------------------------

GRANDCHILD = "import sys; block = b'x' * (50 << 20); print('ready', flush=True); sys.stdin.read()"
CHILD = f"import subprocess, sys; sys.exit(subprocess.call([sys.executable, '-c', {GRANDCHILD!r}]))"


@pytest.fixture
def process_tree() -> Iterator[int]:
    """A child whose grandchild holds 50 MB until the test closes their shared stdin."""
    with subprocess.Popen(
        [sys.executable, "-c", CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            assert proc.stdout.readline() == b"ready\n"
            yield proc.pid
        finally:
            proc.stdin.close()  # EOF: the grandchild returns, and then the child
            proc.wait(30)


def _rss(outcome: Outcome) -> int:
    match = re.search(r"\brss=(\d+)B", outcome.line)
    assert match, outcome.output
    return int(match[1])


def test_memory_counts_the_whole_tree(process_tree: int) -> None:
    """The RSS of child and grandchild together is CRITICAL above a threshold below 50 MB."""
    outcome = run_check("memory", "--pid", str(process_tree), "--critical", "40MB")
    assert_outcome(outcome, 2, "CRITICAL", f"pid {process_tree}", "2 processes", "critical above")
    assert _rss(outcome) > 50 * 2**20


def test_memory_under_threshold_from_sentinel_pid(process_tree: int) -> None:
    """With a high threshold the tree is OK, and the pid comes from $SENTINEL_PID."""
    outcome = run_check(
        "memory", "--critical", "1GiB", "--warning", "800MiB",
        env={"SENTINEL_PID": str(process_tree)},
    )  # fmt: skip
    assert_outcome(outcome, 0, "OK", f"pid {process_tree}", "2 processes", "MiB RSS")
    assert _rss(outcome) > 50 * 2**20


def test_memory_without_a_process_is_unknown() -> None:
    """A pid that cannot exist, or no pid at all, is UNKNOWN: there is nothing to measure."""
    pid_max = Path("/proc/sys/kernel/pid_max").read_text().strip()  # pids stay below it
    outcome = run_check("memory", "--pid", pid_max, "--critical", "1GB")
    assert_outcome(outcome, 3, "UNKNOWN", f"no process with pid {pid_max}")
    outcome = run_check("memory", "--critical", "1GB", env={"SENTINEL_PID": ""})
    assert_outcome(outcome, 3, "UNKNOWN", "no --pid given")


# --- http_json --------------------------------------------------------------------------------

HEALTH = (
    b'{"status": "ok", "ready": true, "checks": {"db": {"state": "up"}}, "items": [{"name": "a"}]}'
)
ROUTES = {
    "/health": (200, HEALTH),
    "/broken": (500, b'{"status": "error"}'),
    "/text": (200, b"all good"),
}
TOKEN = "Bearer t0ken"


class JSONHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        if self.path == "/private":  # HEALTH again, for a request with the right header only
            authorized = self.headers.get("Authorization") == TOKEN
            status, body = (200, HEALTH) if authorized else (401, b"{}")
        else:
            status, body = ROUTES.get(self.path, (404, b"{}"))
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep the test output for failures


@pytest.fixture
def http_url() -> Iterator[str]:
    """A real HTTP server on loopback port 0, serving ROUTES."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), JSONHandler)
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}"


@pytest.mark.parametrize(
    ("path", "args", "code", "fragment"),
    [
        ("/health", ["--field", "status", "--expect", "ok"], 0, 'status is "ok"'),
        ("/health", ["--field", "checks.db.state", "--expect", "up"], 0, "checks.db.state"),
        ("/health", ["--field", "ready", "--expect", "true"], 0, "ready is true"),
        ("/health", ["--field", "items.0.name", "--expect-regex", "^a$"], 0, "items.0.name"),
        ("/health", ["--field", "checks.db"], 0, "checks.db is {"),
        ("/health", ["--field", "checks.db.state", "--expect", "down"], 2, 'expected "down"'),
        ("/health", ["--field", "status", "--expect-regex", "^fine"], 2, "does not match"),
        ("/health", ["--field", "checks.cache.state"], 2, "no field checks.cache.state"),
        ("/broken", ["--field", "status", "--expect", "error"], 2, "HTTP 500"),
        ("/text", ["--field", "status"], 2, "not JSON"),
        ("/private", ["--field", "status"], 2, "HTTP 401"),
        ("/private", ["--field", "status", "--header", f"Authorization: {TOKEN}"], 0, "ok"),
    ],
)
def test_http_json(http_url: str, path: str, args: list[str], code: int, fragment: str) -> None:
    """The field at a dotted path is compared; bad statuses, bodies and paths are CRITICAL."""
    outcome = run_check("http_json", "--url", http_url + path, *args)
    assert_outcome(outcome, code, {0: "OK", 2: "CRITICAL"}[code], fragment)


def test_http_json_closed_port_is_critical(closed_port: int) -> None:
    """A URL where nothing listens is CRITICAL."""
    url = f"http://127.0.0.1:{closed_port}/health"
    outcome = run_check("http_json", "--url", url, "--field", "status")
    assert_outcome(outcome, 2, "CRITICAL", "cannot reach", "refused")


# --- redis_ping -------------------------------------------------------------------------------

PASSWORD = "s3cret-Hunter2"


@pytest.fixture
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., str]]:
    """Start real redis-servers on unix sockets only (--port 0); returns the socket's path."""
    binary = require_binary("redis-server")
    started: list[tuple[subprocess.Popen[bytes], ServerLog]] = []

    def start(*options: str) -> str:
        directory = tmp_path_factory.mktemp("redis")  # short: a socket path has a 107-byte limit
        path = str(directory / "redis.sock")
        proc = subprocess.Popen(
            [binary, "--port", "0", "--unixsocket", path, "--dir", str(directory),
             "--save", "", "--appendonly", "no", *options],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log = ServerLog(proc)
        started.append((proc, log))
        log.wait_for("(?i)ready to accept connections")  # wording varies by version
        return path

    yield start
    for proc, log in started:
        stop(proc, log, signal.SIGTERM)


def test_redis_ping_over_unix_socket(redis: Callable[..., str]) -> None:
    """A real Redis answers PONG over its unix socket."""
    outcome = run_check("redis_ping", "--socket", redis())
    assert_outcome(outcome, 0, "OK", "PONG from", "redis.sock")


@pytest.mark.parametrize(
    ("args", "env", "code", "fragment"),
    [
        (["--password", PASSWORD], {}, 0, "PONG"),
        ([], {"REDISCLI_AUTH": PASSWORD}, 0, "PONG"),
        (["--username", "probe", "--password", "probe-pw"], {}, 0, "PONG"),
        (["--password", PASSWORD + "x"], {}, 2, "AUTH failed"),
        (["--username", "probe", "--password", PASSWORD], {}, 2, "WRONGPASS"),
        ([], {}, 2, "NOAUTH"),
    ],
)
def test_redis_ping_auth(
    redis: Callable[..., str], args: list[str], env: dict[str, str], code: int, fragment: str
) -> None:
    """AUTH, with or without an ACL user, passes with the right password, which never shows."""
    path = redis("--requirepass", PASSWORD, "--user", "probe", "on", ">probe-pw", "+ping")
    outcome = run_check("redis_ping", "--socket", path, *args, env={"REDISCLI_AUTH": "", **env})
    assert_outcome(outcome, code, {0: "OK", 2: "CRITICAL"}[code], fragment)
    for secret in (PASSWORD, "probe-pw"):
        assert secret not in outcome.output


@pytest.mark.parametrize(
    "args", [["--password", PASSWORD, "--colour"], [f"--password={PASSWORD}", "-x"]]
)
def test_redis_ping_usage_error_hides_password(args: list[str]) -> None:
    """A usage error is UNKNOWN and does not echo the password given with it."""
    outcome = run_check("redis_ping", *args)
    assert_outcome(outcome, 3, "UNKNOWN", "unrecognized arguments")
    assert PASSWORD not in outcome.output


def test_redis_ping_closed_port_is_critical(closed_port: int) -> None:
    """A TCP port where nothing listens is CRITICAL."""
    outcome = run_check("redis_ping", "--port", str(closed_port))
    assert_outcome(outcome, 2, "CRITICAL", f"127.0.0.1:{closed_port}", "refused")


def test_redis_ping_silent_server_times_out(silent_port: int) -> None:
    """A server that accepts but never answers is CRITICAL once --timeout runs out."""
    outcome = run_check("redis_ping", "--port", str(silent_port), "--timeout", "300ms")
    assert_outcome(outcome, 2, "CRITICAL", "no answer within 0.3s")


def test_redis_ping_wrong_protocol_is_critical(not_a_server: int) -> None:
    """A TCP server that is not Redis is CRITICAL, with what it said."""
    outcome = run_check("redis_ping", "--port", str(not_a_server), "--timeout", "10s")
    assert_outcome(outcome, 2, "CRITICAL", "is not Redis", "HTTP/1.1 400")


# --- postgres_ready ---------------------------------------------------------------------------

PG_HBA = """\
# TYPE  DATABASE  USER            METHOD
local   all       postgres        trust
local   all       wants_password  scram-sha-256
local   all       all             reject
"""


def _as_postgres() -> dict[str, Any]:
    """Popen options: initdb refuses to run as root, so root runs it (and postgres) as postgres."""
    if os.geteuid() != 0:
        return {}
    user = pwd.getpwnam("postgres")
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _hand_over(path: Path) -> None:
    """Give a tree to the user the server runs as (a no-op unless we are root)."""
    options = _as_postgres()
    if not options:
        return
    for directory, _, files in os.walk(path):
        for name in [directory, *(os.path.join(directory, f) for f in files)]:
            os.chown(name, options["user"], options["group"])


class Postgres:
    """A real postmaster on a unix socket only; its port number only names the socket file."""

    def __init__(self, binary: str, data: Path, sockets: Path) -> None:
        self.sockets = sockets
        self.proc = subprocess.Popen(
            [binary, "-D", str(data), "-k", str(sockets), "-p", "5432",
             "-c", "listen_addresses=", "-c", "autovacuum=off", "-c", "fsync=off"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            cwd=sockets, **_as_postgres(),
        )  # fmt: skip
        self.log = ServerLog(self.proc)
        try:
            self.log.wait_for("database system is ready to accept connections")
        except BaseException:
            self.stop()
            raise
        # Its background processes are forked before that line; backends come and go later.
        self.baseline = self.children()

    def children(self) -> set[int]:
        found: set[int] = set()
        for path in glob.glob(f"/proc/{self.proc.pid}/task/*/children"):
            with contextlib.suppress(OSError):
                found.update(int(pid) for pid in Path(path).read_text().split())
        return found

    def settle(self) -> None:
        """Wait until the backends of finished connections are gone (they emit no event)."""
        wait_until(lambda: self.children() <= self.baseline, what="postgres backends to exit")

    def stop(self) -> None:
        stop(self.proc, self.log, signal.SIGINT)  # SIGINT: fast shutdown


@pytest.fixture(scope="module")
def pg_cluster() -> Iterator[tuple[str, Path]]:
    """initdb once into a template (never started, so it can be copied) with our pg_hba.conf."""
    initdb = require_binary("initdb", *PG_BIN_DIRS)
    postgres = require_binary("postgres", str(Path(initdb).parent), *PG_BIN_DIRS)
    # Not pytest's tmp_path: its parents are root-only, and the server may run as postgres.
    with tempfile.TemporaryDirectory(prefix="sentinel-pg-") as tmp:
        base = Path(tmp)
        _hand_over(base)
        result = subprocess.run(
            [initdb, "-D", str(base / "template"), "-U", "postgres", "--auth=trust",
             "--no-sync", "--encoding=UTF8", "--locale=C"],
            capture_output=True, text=True, cwd=base, timeout=120, check=False, **_as_postgres(),
        )  # fmt: skip
        assert result.returncode == 0, result.stdout + result.stderr
        (base / "template" / "pg_hba.conf").write_text(PG_HBA)
        yield postgres, base


def _new_server(pg_cluster: tuple[str, Path], name: str) -> Postgres:
    binary, base = pg_cluster
    shutil.copytree(base / "template", base / name / "data")
    (base / name / "sockets").mkdir()
    _hand_over(base / name)
    return Postgres(binary, base / name / "data", base / name / "sockets")


@pytest.fixture(scope="module")
def pg_server(pg_cluster: tuple[str, Path]) -> Iterator[Postgres]:
    server = _new_server(pg_cluster, "shared")
    yield server
    server.stop()


@pytest.fixture
def postgres(pg_server: Postgres) -> Iterator[Postgres]:
    """The shared server; afterwards its backends have exited, so none looks like a leak."""
    yield pg_server
    pg_server.settle()


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        ([], 0, "(logged in)"),
        (["--user", "wants_password"], 0, "asks for SASL authentication"),
        (["--dbname", "nosuchdb"], 1, '3D000 database "nosuchdb" does not exist'),
        (["--user", "intruder"], 1, "28000"),
    ],
)
def test_postgres_accepting(postgres: Postgres, args: list[str], code: int, fragment: str) -> None:
    """A running server is OK; a login it refuses (like pg_isready's "accepting") is WARNING."""
    outcome = run_check("postgres_ready", "--socket-dir", str(postgres.sockets), *args)
    status = {0: "OK", 1: "WARNING"}[code]
    assert_outcome(outcome, code, status, "accepting connections", ".s.PGSQL.5432", fragment)


def test_postgres_no_server_is_critical(tmp_path: Path, closed_port: int) -> None:
    """No socket in the directory, or a closed TCP port, is CRITICAL."""
    outcome = run_check("postgres_ready", "--socket-dir", str(tmp_path))
    assert_outcome(outcome, 2, "CRITICAL", "cannot connect", str(tmp_path))
    outcome = run_check("postgres_ready", "--port", str(closed_port))
    assert_outcome(outcome, 2, "CRITICAL", "cannot connect", "refused")


def test_postgres_wrong_protocol_is_critical(not_a_server: int) -> None:
    """A TCP server that is not PostgreSQL is CRITICAL."""
    outcome = run_check("postgres_ready", "--port", str(not_a_server))
    assert_outcome(outcome, 2, "CRITICAL", "is not PostgreSQL")


def _session(sockets: Path) -> socket.socket:
    """A logged-in client connection (startup, then read up to ReadyForQuery)."""
    sock = socket.socket(socket.AF_UNIX)
    try:
        sock.settimeout(30)
        sock.connect(str(sockets / ".s.PGSQL.5432"))
        payload = b"user\0postgres\0database\0postgres\0\0"
        sock.sendall(struct.pack("!ii", 8 + len(payload), 196608) + payload)  # protocol 3.0
        with sock.makefile("rb") as reader:
            while (header := reader.read(5))[:1] != b"Z":
                assert len(header) == 5 and header[:1] != b"E", header
                reader.read(struct.unpack("!i", header[1:])[0] - 4)
    except BaseException:
        sock.close()
        raise
    return sock


def test_postgres_shutting_down_is_critical(pg_cluster: tuple[str, Path]) -> None:
    """A server in smart shutdown (waiting for a client) rejects connections: 57P03, CRITICAL."""
    server = _new_server(pg_cluster, "shutdown")
    try:
        with _session(server.sockets):
            server.proc.send_signal(signal.SIGTERM)  # smart: wait for the session to end
            server.log.wait_for("received smart shutdown request")
            outcome = run_check("postgres_ready", "--socket-dir", str(server.sockets))
            assert_outcome(outcome, 2, "CRITICAL", "rejecting connections", "57P03")
    finally:
        server.stop()
