"""Liveness, readiness and startup probes against real servers, sockets and commands."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from tests.conftest import require_binary
from tests.integration.conftest import (
    SentinelProcess,
    SharedListener,
    child,
    pid_alive,
    wait_until,
)

Start = Callable[[str], SentinelProcess]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))
PLUGINS = "/usr/lib/nagios/plugins"


def probe_results(daemon: SentinelProcess, probe: str) -> list[dict[str, object]]:
    return [e for e in daemon.events if e["event"] == "probe_result" and e["probe"] == probe]


def test_sigstopped_http_service_is_restarted(
    sentinel: Start, shared_listener: SharedListener
) -> None:
    """A server that is alive but stopped fails liveness and is restarted within the bound."""
    period, timeout, threshold = 0.5, 0.3, 3
    daemon = sentinel(f"""
        [programs.web]
        command = {json.dumps(child(shared_listener.server_code()))}
        start_seconds = 0
        backoff = {{ initial = "0s" }}
        stop_timeout = "2s"
        [programs.web.liveness]
        http = {{ url = "http://127.0.0.1:{shared_listener.port}/healthz", body_contains = "ok" }}
        period = "{period}s"
        timeout = "{timeout}s"
        failure_threshold = {threshold}
    """)
    daemon.wait_event(lambda e: e["event"] == "healthy", timeout=10)
    old = daemon.status("web")["pid"]
    os.kill(old, signal.SIGSTOP)
    stopped_at = time.time()
    restart = daemon.next_event(
        lambda e: e["event"] == "restart" and e["process"] == "web", timeout=15
    )
    took = restart["timestamp"] - stopped_at
    assert restart["reason"] == "liveness" and "liveness failed 3x" in restart["detail"]
    assert took <= threshold * period + timeout + 0.5, took
    daemon.next_event(lambda e: e["event"] == "healthy", timeout=10)
    assert not pid_alive(old)
    status = daemon.status("web")
    assert status["pid"] != old and status["health"] == "healthy" and status["restarts"] == 1


def test_tcp_probe_on_a_closed_port_fails(sentinel: Start, closed_port: int) -> None:
    """A TCP liveness probe on a port nobody listens on fails and restarts the process."""
    daemon = sentinel(f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "5s" }}
        [programs.app.liveness]
        tcp = {{ port = {closed_port} }}
        period = "100ms"
        failure_threshold = 2
    """)
    unhealthy = daemon.wait_event(lambda e: e["event"] == "unhealthy")
    assert "connection refused" in unhealthy["detail"]
    # The first restart is at once; the next failure waits out the backoff.
    restart = daemon.wait_event(lambda e: e["event"] == "restart")
    assert restart["reason"] == "liveness"
    backoff = daemon.wait_event(lambda e: e["event"] == "backoff")
    assert backoff["attempt"] == 2
    assert daemon.status("app")["state"] == "BACKOFF"


def test_hanging_exec_probe_is_killed_with_its_children(sentinel: Start, tmp_path: Path) -> None:
    """An exec probe that hangs is killed at its timeout, grandchildren included."""
    pids = tmp_path / "probe-pids"
    hang = child(f"""
        import os, subprocess, sys, time
        grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)"])
        with open({str(pids)!r}, "a") as f:
            f.write(f"{{os.getpid()}} {{grandchild.pid}}\\n")
        time.sleep(3600)
    """)
    daemon = sentinel(f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        [programs.app.readiness]
        exec = {{ command = {json.dumps(hang)} }}
        period = "1s"
        timeout = "500ms"
    """)
    result = daemon.wait_event(lambda e: e["event"] == "probe_result", timeout=10)
    assert not result["ok"] and result["detail"] == "timed out after 0.5s (killed)"
    assert 0.5 <= result["latency"] < 1.5
    first = [int(p) for p in pids.read_text().split("\n")[0].split()]
    wait_until(
        lambda: not any(pid_alive(p) for p in first), timeout=5, what="the probe's processes to die"
    )
    assert daemon.status("app")["state"] == "RUNNING"


def test_startup_probe_holds_liveness_off(
    sentinel: Start, tmp_path: Path, closed_port: int
) -> None:
    """Liveness does not run until the startup probe has passed once."""
    marker = tmp_path / "started"
    daemon = sentinel(f"""
        [programs.slow]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "10s" }}
        [programs.slow.startup]
        exec = {{ command = ["test", "-e", "{marker}"] }}
        period = "100ms"
        failure_threshold = 1000
        [programs.slow.liveness]
        tcp = {{ port = {closed_port} }}
        period = "100ms"
        failure_threshold = 1
    """)
    for _ in range(5):
        daemon.next_event(lambda e: e["event"] == "probe_result" and e["probe"] == "startup")
    assert not probe_results(daemon, "liveness")
    assert daemon.status("slow")["state"] == "RUNNING"
    marker.touch()
    daemon.wait_event(lambda e: e["event"] == "unhealthy" and e["probe"] == "liveness")
    passed = next(
        i for i, e in enumerate(daemon.events) if e["event"] == "probe_result" and e["ok"]
    )
    first_liveness = next(i for i, e in enumerate(daemon.events) if e.get("probe") == "liveness")
    assert passed < first_liveness


def test_failing_readiness_never_restarts(sentinel: Start, closed_port: int) -> None:
    """Readiness failing only makes the process not ready."""
    daemon = sentinel(f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        [programs.app.readiness]
        tcp = {{ port = {closed_port} }}
        period = "50ms"
        failure_threshold = 1
    """)
    for _ in range(20):
        daemon.next_event(lambda e: e["event"] == "probe_result" and e["probe"] == "readiness")
    assert not [e for e in daemon.events if e["event"] in ("restart", "unhealthy", "backoff")]
    status = daemon.status("app")
    assert (status["state"], status["ready"], status["health"], status["restarts"]) == (
        "RUNNING",
        False,
        "unknown",
        0,
    )
    assert "refused" in status["probes"]["readiness"]["detail"]
    header, row = daemon.cli("status", "app").stdout.splitlines()
    assert header.split()[5:7] == ["HEALTH", "READY"]
    assert row.split()[5:7] == ["unknown", "no"] and "readiness: " in row and "refused" in row
    assert daemon.log().count("app: readiness probe failed") == 1  # logged once, not 20 times


def test_status_keeps_why_a_process_was_restarted(sentinel: Start, closed_port: int) -> None:
    """Through the BACKOFF after a liveness restart, status says it was the probe, and which."""
    daemon = sentinel(f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "1h" }}
        [programs.app.liveness]
        tcp = {{ port = {closed_port} }}
        period = "100ms"
        failure_threshold = 2
    """)
    daemon.wait_event(lambda e: e["event"] == "backoff" and e["process"] == "app")
    status = daemon.status("app")
    assert (status["state"], status["health"]) == ("BACKOFF", "unhealthy")
    assert status["detail"].startswith("liveness failed 2x: ")
    assert "refused" in status["detail"] and "SIGTERM" in status["detail"]
    assert "refused" in status["probes"]["liveness"]["detail"]
    assert "liveness failed 2x" in daemon.cli("status", "app").stdout


def test_passing_probe_never_restarts(sentinel: Start, shared_listener: SharedListener) -> None:
    """A liveness probe that keeps passing leaves the process alone; status says healthy."""
    daemon = sentinel(f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        [programs.app.liveness]
        tcp = {{ port = {shared_listener.port} }}
        period = "50ms"
        [programs.app.readiness]
        tcp = {{ port = {shared_listener.port} }}
        period = "50ms"
    """)
    for _ in range(20):
        daemon.next_event(lambda e: e["event"] == "probe_result" and e["probe"] == "liveness")
    assert all(e["ok"] for e in probe_results(daemon, "liveness"))
    status = daemon.status("app")
    assert (status["health"], status["ready"], status["restarts"]) == ("healthy", True, 0)


def test_exec_probe_environment_and_nagios_codes(sentinel: Start, tmp_path: Path) -> None:
    """Exec probes see SENTINEL_PROGRAM/GROUP/PID; WARNING passes and is reported; {instance} expands."""
    seen = tmp_path / "env-{instance}"
    check = child(f"""
        import os, sys
        with open({str(seen)!r}, "w") as f:
            f.write(" ".join(os.environ[k] for k in ("SENTINEL_PROGRAM", "SENTINEL_GROUP", "SENTINEL_PID")))
        print("DISK WARNING - 91% used | used=91%")
        print("second line")
        sys.exit(1)
    """)
    daemon = sentinel(f"""
        [programs.w]
        command = {SLEEPER}
        instances = 2
        group = "pool"
        start_seconds = 0
        [programs.w.liveness]
        exec = {{ command = {json.dumps(check)}, codes = "nagios" }}
        period = "200ms"
    """)
    result = daemon.wait_event(lambda e: e["event"] == "probe_result" and e["process"] == "w_1")
    assert (
        result["ok"]
        and result["warning"]
        and result["detail"] == "DISK WARNING - 91% used | used=91%"
    )
    pid = daemon.status("w_1")["pid"]
    assert (tmp_path / "env-1").read_text() == f"w_1 pool {pid}"
    row = daemon.cli("status", "w_1").stdout.splitlines()[1]
    assert row.split()[5:7] == ["healthy", "yes"], row
    assert row.endswith("liveness: warning: DISK WARNING - 91% used | used=91%"), row


def test_exec_probes_read_exit_codes_as_kubernetes_does(sentinel: Start, tmp_path: Path) -> None:
    """By default any non-zero exit fails: `test -f` of a missing file (exit 1) restarts the
    process, as it would in a pod; with codes = "nagios" the same exit passes as a WARNING."""
    ready = tmp_path / "ready"
    daemon = sentinel(f"""
        [programs.k8s]
        command = {SLEEPER}
        start_seconds = 0
        [programs.k8s.liveness]
        exec = {{ command = ["test", "-f", "{ready}"] }}
        period = "100ms"
        failure_threshold = 2
        [programs.nagios]
        command = {SLEEPER}
        start_seconds = 0
        [programs.nagios.liveness]
        exec = {{ command = ["test", "-f", "{ready}"], codes = "nagios" }}
        period = "100ms"
        failure_threshold = 2
    """)
    unhealthy = daemon.wait_event(lambda e: e["event"] == "unhealthy" and e["process"] == "k8s")
    assert unhealthy["detail"] == "liveness failed 2x: exit 1"
    daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "k8s")
    nagios = daemon.wait_event(lambda e: e["event"] == "probe_result" and e["process"] == "nagios")
    assert nagios["ok"] and nagios["warning"] and nagios["detail"] == "exit 1"
    assert not [e for e in daemon.events if e["event"] == "unhealthy" and e["process"] == "nagios"]


def test_monitoring_plugins_as_exec_probes(
    sentinel: Start, shared_listener: SharedListener, closed_port: int
) -> None:
    """monitoring-plugins' check_http passes against a real server; check_tcp on a closed port fails."""
    check_http = require_binary("check_http", PLUGINS)
    check_tcp = require_binary("check_tcp", PLUGINS)
    daemon = sentinel(f"""
        [programs.web]
        command = {json.dumps(child(shared_listener.server_code()))}
        start_seconds = 0
        [programs.web.liveness]
        exec = {{ command = ["{check_http}", "-H", "127.0.0.1", "-p", "{shared_listener.port}", "-s", "ok"] }}
        period = "200ms"
        timeout = "5s"
        [programs.db]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "10s" }}
        [programs.db.liveness]
        exec = {{ command = ["{check_tcp}", "-H", "127.0.0.1", "-p", "{closed_port}"] }}
        period = "200ms"
        timeout = "5s"
        failure_threshold = 2
    """)
    healthy = daemon.wait_event(lambda e: e["event"] == "probe_result" and e["process"] == "web")
    assert healthy["ok"] and healthy["detail"].startswith("HTTP OK")
    unhealthy = daemon.wait_event(lambda e: e["event"] == "unhealthy" and e["process"] == "db")
    assert "Connection refused" in unhealthy["detail"]
    restart = daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "db")
    assert restart["reason"] == "liveness"


def test_bundled_check_by_name(sentinel: Start, tmp_path: Path) -> None:
    """A bundled check is used by name from an exec probe, without knowing its path."""
    beat = tmp_path / "worker.beat"
    beat.touch()
    daemon = sentinel(f"""
        [programs.worker]
        command = {SLEEPER}
        start_seconds = 0
        [programs.worker.liveness]
        exec = {{ check = "heartbeat", args = ["--file", "{beat}", "--max-age", "30s"] }}
        period = "200ms"
        timeout = "5s"
    """)
    result = daemon.wait_event(lambda e: e["event"] == "probe_result")
    assert result["ok"] and result["detail"].startswith("HEARTBEAT OK")
