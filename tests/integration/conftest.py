"""A real `sentinel run` in a subprocess, with its API and event stream at hand."""

from __future__ import annotations

import asyncio
import email
import email.message
import http.server
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
import pytest
from aiosmtpd.smtp import SMTP

from tests.conftest import require_binary

if TYPE_CHECKING:
    from tests.integration.monitoring import Alertmanager, Prometheus

Event = dict[str, Any]


def wait_until(check: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll `check` until it returns something truthy; only for what emits no event."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.01)


def pid_alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def child(code: str) -> list[str]:
    """A real child process: the Python interpreter running `code` (trio's way)."""
    return [sys.executable, "-u", "-c", textwrap.dedent(code)]


class SentinelProcess:
    """`sentinel run -c CONFIG` as a real process, plus a reader of its event stream.

    `env` is added to the daemon's environment (which its programs inherit); `nofile` is its
    (soft, hard) RLIMIT_NOFILE.
    """

    def __init__(
        self,
        directory: Path,
        config: str,
        env: Mapping[str, str] | None = None,
        nofile: tuple[int, int] | None = None,
    ) -> None:
        self.directory = directory
        self.env = dict(env or {})
        self.nofile = nofile
        self.config_path = directory / "sentinel.toml"
        self.config_path.write_text(textwrap.dedent(config))
        control = tomllib.loads(textwrap.dedent(config)).get("control", {})
        self.socket = directory / control.get("socket", "sentinel.sock")
        self.stderr_path = directory / "sentinel.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.events: list[Event] = []
        self._queue: queue.Queue[Event | None] = queue.Queue()
        self._reader: threading.Thread | None = None

    # --- life -------------------------------------------------------------------------------

    def start(self) -> SentinelProcess:
        with self.stderr_path.open("wb") as stderr:
            argv = [sys.executable, "-m", "sentinel", "run", "-c", str(self.config_path)]
            if self.nofile is not None:  # util-linux's prlimit: no preexec_fn in a threaded test
                argv = ["prlimit", "--nofile={}:{}".format(*self.nofile), "--", *argv]
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=stderr, stderr=stderr,
                cwd=self.directory, env={**os.environ, **self.env},
            )  # fmt: skip
        wait_until(self._answers, what="the control socket")
        self._reader = threading.Thread(target=self._read_events, daemon=True)
        self._reader.start()
        return self

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"sentinel exited with {self.proc.returncode}:\n{self.log()}")
        # A plain connect first: httpx leaks the socket of a failed unix-socket connect.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return self.api("GET", "/healthz").status_code == 200

    def terminate(self, sig: signal.Signals = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        while (event := self._queue.get_nowait() if not self._queue.empty() else None) is not None:
            self.events.append(event)  # the stream's last events, up to its end
        return code

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    # --- talking to it ----------------------------------------------------------------------

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, base_url="http://sentinel", timeout=60) as client:
            return client.request(method, path, **kwargs)

    def status(self, name: str) -> dict[str, Any]:
        response = self.api("GET", f"/api/v1/programs/{name}")
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def cli(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "sentinel", *args, "-s", str(self.socket)],
            capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    # --- events -----------------------------------------------------------------------------

    def _read_events(self) -> None:
        """The event stream, over a socket of our own: HTTP/1.0, so the body is the bytes up
        to the close, and the socket is closed whatever happens (httpx drops the socket of a
        stream whose peer vanishes, as a daemon killed with SIGKILL does, without closing it)."""
        request = b"GET /api/v1/events?history=1000 HTTP/1.0\r\nHost: sentinel\r\n\r\n"
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(str(self.socket))
                sock.sendall(request)  # history: what happened before this reader connected
                with sock.makefile("rb") as stream:
                    status = stream.readline()
                    assert status.split()[1:2] == [b"200"], status
                    for line in stream:  # the head, up to its empty line
                        if line in (b"\r\n", b"\n"):
                            break
                    for line in stream:
                        if line.startswith(b"data: "):
                            self._queue.put(json.loads(line[6:]))
        except OSError:
            pass  # the daemon went away
        finally:
            self._queue.put(None)

    def wait_event(self, match: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """The first event (seen before or arriving now) that matches; fails after `timeout`."""
        for event in self.events:
            if match(event):
                return event
        return self.next_event(match, timeout)

    def next_event(self, match: Callable[[Event], bool], timeout: float = 10.0) -> Event:
        """The next not-yet-seen event that matches; fails after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self._queue.get(timeout=max(remaining, 0))
            except queue.Empty:
                raise AssertionError(
                    f"no matching event within {timeout}s; log:\n{self.log()}"
                ) from None
            if event is None:
                raise AssertionError(f"the event stream ended; log:\n{self.log()}")
            self.events.append(event)
            if match(event):
                return event

    def wait_state(self, process: str, state: str, timeout: float = 10.0) -> Event:
        return self.next_event(
            lambda e: (
                e["event"] == "state_changed" and e["process"] == process and e["new"] == state
            ),
            timeout,
        )


def state_is(process: str, state: str) -> Callable[[Event], bool]:
    return lambda e: e["event"] == "state_changed" and e["process"] == process and e["new"] == state


class StartSentinel(Protocol):
    def __call__(
        self, config: str, name: str = "", env: Mapping[str, str] | None = None
    ) -> SentinelProcess: ...


@pytest.fixture
def sentinel(tmp_path: Path) -> Iterator[StartSentinel]:
    """Start a real sentinel on a config; it is shut down (SIGTERM, exit 0) at teardown. Give
    each of several daemons a `name`: it gets a directory (config, socket, logs) of its own."""
    started: list[SentinelProcess] = []

    def start(config: str, name: str = "", env: Mapping[str, str] | None = None) -> SentinelProcess:
        directory = tmp_path / name
        directory.mkdir(exist_ok=True)
        daemon = SentinelProcess(directory, config, env)
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            assert daemon.terminate() == 0, daemon.log()


class SharedListener:
    """A TCP listener on 127.0.0.1, port 0, that stays bound in the test process and is handed
    (SCM_RIGHTS over a unix socket) to every instance of a supervised server that asks."""

    def __init__(self, directory: Path) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.path = directory / "listener.sock"
        self._unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._unix.bind(str(self.path))
        self._unix.listen(16)
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._unix.accept()
            except OSError:
                return
            with conn:
                socket.send_fds(conn, [b"x"], [self.listener.fileno()])

    def close(self) -> None:
        self._unix.close()
        self.listener.close()

    def server_code(self, body: str = "ok", status: int = 200) -> str:
        """Python code for a real HTTP server that serves on the shared listener."""
        return f"""
            import http.server, socket
            unix = socket.socket(socket.AF_UNIX)
            unix.connect({str(self.path)!r})
            _, fds, _, _ = socket.recv_fds(unix, 1, 1)
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = {body!r}.encode()
                    self.send_response({status})
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args):
                    pass
            server = http.server.HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = socket.socket(fileno=fds[0])
            print("serving", flush=True)
            server.serve_forever()
        """


@pytest.fixture
def shared_listener(tmp_path: Path) -> Iterator[SharedListener]:
    listener = SharedListener(tmp_path)
    yield listener
    listener.close()


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A port bound but not listening: connecting to it is refused, and nothing else takes it."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class WebhookReceiver:
    """A loopback HTTP server recording what apprise's json:// posts; can also hang."""

    def __init__(self, hang: bool = False) -> None:
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.received: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self._release = threading.Event()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if hang:
                    receiver._release.wait(60)  # a channel that never answers
                    return
                receiver.headers.append(dict(self.headers))
                receiver.messages.put(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def url(self, credentials: str = "") -> str:
        return f"json://{credentials}127.0.0.1:{self.port}/hook"

    def next(self, timeout: float = 10.0) -> dict[str, Any]:
        try:
            message = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message within {timeout}s; had {self.received}") from None
        self.received.append(message)
        return message

    def drain(self) -> list[dict[str, Any]]:
        while not self.messages.empty():
            self.received.append(self.messages.get_nowait())
        return self.received

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """A loopback SMTP server (aiosmtpd) on a port it bound itself, recording each mail."""

    def __init__(self) -> None:
        self.mails: queue.Queue[email.message.Message] = queue.Queue()
        receiver = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
                receiver.mails.put(email.message_from_bytes(envelope.content))
                return "250 OK"

        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()

        def serve() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                self._loop.create_server(lambda: SMTP(Handler()), sock=self._sock)
            )
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=serve, daemon=True)
        self._thread.start()
        ready.wait(10)

    def url(self) -> str:
        return f"mailto://127.0.0.1:{self.port}?from=sentinel@example.com&to=ops@example.com"

    def next(self, timeout: float = 10.0) -> email.message.Message:
        try:
            return self.mails.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no mail within {timeout}s") from None

    def close(self) -> None:
        async def stop() -> None:
            self._server.close()
            current = asyncio.current_task()
            for task in asyncio.all_tasks():
                if task is not current:  # sessions still open: the server is going away
                    task.cancel()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp() -> Iterator[SmtpReceiver]:
    receiver = SmtpReceiver()
    yield receiver
    receiver.close()


# --- Prometheus and Alertmanager (monitoring.py, which imports this module) ------------------


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Prometheus]]:
    """Start a real Prometheus on a config; it is stopped (SIGTERM, exit 0) at teardown."""
    from tests.integration.monitoring import Prometheus  # noqa: PLC0415 - an import cycle

    binary = require_binary("prometheus")
    started: list[Prometheus] = []

    def start(config: dict[str, Any]) -> Prometheus:
        server = Prometheus(binary, tmp_path / f"prometheus-{len(started)}", config)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def alertmanager(tmp_path: Path) -> Iterator[Callable[[dict[str, Any]], Alertmanager]]:
    """Start a real Alertmanager (Debian's prometheus-alertmanager) on a config; it is
    stopped (SIGTERM, exit 0) at teardown."""
    from tests.integration.monitoring import Alertmanager  # noqa: PLC0415 - an import cycle

    binary = require_binary("prometheus-alertmanager")
    started: list[Alertmanager] = []

    def start(config: dict[str, Any]) -> Alertmanager:
        server = Alertmanager(binary, tmp_path / f"alertmanager-{len(started)}", config)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
