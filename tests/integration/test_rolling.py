"""Rolling restarts with real servers: one instance at a time, each ready before the next."""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import SentinelProcess, SharedListener, child, state_is

Start = Callable[[str], SentinelProcess]


@pytest.fixture
def listeners(tmp_path: Path) -> Iterator[list[SharedListener]]:
    """Four loopback listeners, bound by the test for its whole length: one per instance."""
    made = []
    for instance in range(4):
        directory = tmp_path / f"l{instance}"
        directory.mkdir()
        made.append(SharedListener(directory))
    yield made
    for listener in made:
        listener.close()


def server(tmp_path: Path) -> str:
    """A real HTTP server (the standard library's) on the listener of its {instance}: it says
    READY=1 a little after it serves, and on SIGTERM finishes the request it has and exits."""
    return json.dumps(
        child(f"""
            import http.server, os, signal, socket, threading, time, sdnotify
            unix = socket.socket(socket.AF_UNIX)
            unix.connect({str(tmp_path)!r} + "/l{{instance}}/listener.sock")
            _, fds, _, _ = socket.recv_fds(unix, 1, 1)
            class Handler(http.server.BaseHTTPRequestHandler):
                def do_GET(self):
                    body = str(os.getpid()).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def log_message(self, *args):
                    pass
            server = http.server.HTTPServer(("127.0.0.1", 0), Handler, bind_and_activate=False)
            server.socket.close()
            server.socket = socket.socket(fileno=fds[0])
            signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
            def ready():
                time.sleep(0.3)
                if not os.path.exists({str(tmp_path)!r} + "/broken.{{instance}}"):
                    sdnotify.SystemdNotifier().notify("READY=1")
            threading.Thread(target=ready).start()
            server.serve_forever(poll_interval=0.05)
        """)
    )


class Load:
    """A steady stream of requests to every port, from a few threads, until stopped."""

    def __init__(self, ports: list[int]) -> None:
        self.ports, self.done, self.failures = ports, 0, []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,)) for i in range(4)]
        for thread in self._threads:
            thread.start()

    def _run(self, offset: int) -> None:
        turn = offset
        while not self._stop.is_set():
            port = self.ports[turn % len(self.ports)]
            turn += 1
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                conn.close()
                if response.status != 200:
                    self.failures.append(f"{port}: HTTP {response.status}")
            except OSError as exc:
                self.failures.append(f"{port}: {exc!r}")
            self.done += 1

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


class ReadySampler:
    """How many instances the daemon says are ready, read over and over until stopped."""

    def __init__(self, daemon: SentinelProcess) -> None:
        self.daemon, self.counts = daemon, []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            processes = self.daemon.api("GET", "/api/v1/programs").json()
            self.counts.append(sum(p["ready"] for p in processes if p["program"] == "web"))
            time.sleep(0.01)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def said_ready(daemon: SentinelProcess, instances: int) -> None:
    """Wait for READY=1 from web_0 .. web_{instances - 1}."""
    for instance in range(instances):
        daemon.wait_event(
            lambda e, i=instance: (
                e["event"] == "notify" and e["process"] == f"web_{i}" and e["ready"]
            )
        )


def test_a_rolling_restart_under_load_fails_no_request(
    sentinel: Start, tmp_path: Path, listeners: list[SharedListener]
) -> None:
    """4 instances of a real HTTP server under a steady stream of requests through their
    ports: `restart --rolling` replaces every one, no request fails, and never fewer than 3
    are ready."""
    daemon = sentinel(f"""
        [programs.web]
        command = {server(tmp_path)}
        instances = 4
        notify = true
        start_seconds = "notify"
        stop_timeout = "5s"
        rolling_timeout = "10s"
    """)
    said_ready(daemon, 4)
    before = {p["name"]: p["pid"] for p in daemon.api("GET", "/api/v1/programs").json()}
    load = Load([listener.port for listener in listeners])
    sampler = ReadySampler(daemon)
    try:
        result = daemon.cli("restart", "--rolling", "web", timeout=120)
    finally:
        sampler.stop()
        load.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("restarted") == 4
    after = {p["name"]: p["pid"] for p in daemon.api("GET", "/api/v1/programs").json()}
    assert all(after[name] != before[name] for name in before)
    print(f"rolling restart: {load.done} requests, ready counts {min(sampler.counts)}..4")
    assert load.failures == []
    assert load.done > 100
    assert min(sampler.counts) >= 3
    assert 3 in sampler.counts  # it did take one out at a time
    daemon.wait_event(lambda e: e["event"] == "rolling" and e["phase"] == "completed")
    steps = [e for e in daemon.events if e["event"] == "rolling"]
    assert [e["process"] for e in steps if e["phase"] == "restarting"] == [
        "web_0",
        "web_1",
        "web_2",
        "web_3",
    ]


def test_a_roll_stops_at_an_instance_that_never_becomes_ready(
    sentinel: Start, tmp_path: Path, listeners: list[SharedListener]
) -> None:
    """An instance that is not ready within rolling_timeout stops the roll: the ones after it
    keep running as they were, the command says which and exits 1, and it is on the metrics."""
    daemon = sentinel(f"""
        [programs.web]
        command = {server(tmp_path)}
        instances = 3
        notify = true
        start_seconds = 0
        stop_timeout = "5s"
        rolling_timeout = "1s"
    """)
    said_ready(daemon, 3)
    before = {p["name"]: p["pid"] for p in daemon.api("GET", "/api/v1/programs").json()}
    (tmp_path / "broken.1").touch()  # the new web_1 will never say READY=1
    result = daemon.cli("restart", "--rolling", "web", timeout=60)
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert lines[0] == "web_0: restarted"
    assert lines[1].startswith("web_1: ERROR (the rolling restart stopped here: web_1 not ready")
    assert "web_2 not restarted" in lines[1]
    assert lines[2] == "web_2: not restarted (the rolling restart stopped at web_1)"
    after = {p["name"]: p["pid"] for p in daemon.api("GET", "/api/v1/programs").json()}
    assert after["web_0"] != before["web_0"]
    assert after["web_2"] == before["web_2"]
    stopped = daemon.wait_event(lambda e: e["event"] == "rolling" and e["phase"] == "stopped")
    assert (stopped["process"], stopped["done"], stopped["total"]) == ("web_1", 1, 3)
    metrics = daemon.api("GET", "/metrics").text
    assert 'sentinel_rolling_restart_stopped{program="web",group="web"} 1.0' in metrics
    assert (
        'sentinel_rolling_restarts_total{program="web",group="web",result="stopped"} 1.0' in metrics
    )


def test_reload_rolls_a_changed_program(
    sentinel: Start, tmp_path: Path, listeners: list[SharedListener]
) -> None:
    """With reload = "rolling", a reload that changes the program restarts its instances one
    at a time (reason reload), and answers once the roll is over."""
    config = f"""
        [programs.web]
        command = {server(tmp_path)}
        instances = 2
        notify = true
        start_seconds = "notify"
        reload = "rolling"
        environment = {{ RELEASE = "%s" }}
    """
    daemon = sentinel(config % "1")
    for instance in range(2):
        daemon.wait_event(state_is(f"web_{instance}", "RUNNING"))
    daemon.config_path.write_text(config.replace("\n        ", "\n") % "2")
    result = daemon.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "changed: web_0, web_1" in result.stdout
    daemon.wait_event(lambda e: e["event"] == "rolling" and e["phase"] == "completed")
    restarts = [e for e in daemon.events if e["event"] == "restart"]
    assert {e["reason"] for e in restarts} == {"reload"}
    first_ready = next(
        e for e in daemon.events if e["event"] == "rolling" and e["phase"] == "ready"
    )
    assert first_ready["process"] == "web_0"
    second_start = [e for e in daemon.events if state_is("web_1", "STARTING")(e)][-1]
    assert second_start["timestamp"] >= first_ready["timestamp"]


def test_a_roll_takes_the_instances_that_are_not_ready_first(
    sentinel: Start, tmp_path: Path, listeners: list[SharedListener]
) -> None:
    """An instance that is not ready when the roll begins is restarted first (it serves
    nothing); if it is still not ready, the roll stops there and the ready ones are untouched."""
    (tmp_path / "broken.2").touch()  # web_2 never says READY=1
    daemon = sentinel(f"""
        [programs.web]
        command = {server(tmp_path)}
        instances = 3
        notify = true
        start_seconds = 0
        rolling_timeout = "1s"
    """)
    said_ready(daemon, 2)
    before = {p["name"]: p["pid"] for p in daemon.api("GET", "/api/v1/programs").json()}
    result = daemon.cli("restart", "--rolling", "web", timeout=60)
    assert result.returncode == 1
    assert result.stdout.splitlines()[0].startswith("web_0: not restarted")
    first = daemon.wait_event(lambda e: e["event"] == "rolling" and e["phase"] == "restarting")
    assert first["process"] == "web_2"
    after = {p["name"]: p["pid"] for p in daemon.api("GET", "/api/v1/programs").json()}
    assert (after["web_0"], after["web_1"]) == (before["web_0"], before["web_1"])
    assert after["web_2"] != before["web_2"]
