"""depends_on with real processes: start in order once ready, stop in reverse, wait with a
reason instead of crash looping."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.conftest import require_binary
from tests.integration.conftest import SentinelProcess, child, state_is

Start = Callable[[str], SentinelProcess]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))


def tier(marker: Path) -> str:
    """A program that is ready half a second after it starts (it writes `marker` then), and
    removes the marker when it stops."""
    return json.dumps(
        child(f"""
            import os, signal, sys, time
            def stop(*_):
                if os.path.exists({str(marker)!r}):
                    os.unlink({str(marker)!r})
                sys.exit(0)
            signal.signal(signal.SIGTERM, stop)
            time.sleep(0.5)
            open({str(marker)!r}, "w").close()
            while True:
                time.sleep(1)
        """)
    )


def readiness(marker: Path) -> str:
    return f"""
        readiness = {{ exec = {{ command = ["test", "-f", "{marker}"] }}, period = "100ms", failure_threshold = 1 }}
    """


def test_a_three_tier_chain_starts_in_order_and_stops_in_reverse(
    sentinel: Start, tmp_path: Path
) -> None:
    """db -> api -> web, each with a readiness probe: each starts only once the one it depends
    on is ready (whatever the priorities say), and they stop in reverse."""
    markers = {name: tmp_path / f"{name}.ready" for name in ("db", "api", "web")}
    daemon = sentinel(f"""
        [programs.web]
        command = {tier(markers["web"])}
        start_seconds = 0
        priority = 1
        depends_on = ["api"]
        {readiness(markers["web"])}
        [programs.api]
        command = {tier(markers["api"])}
        start_seconds = 0
        priority = 2
        depends_on = ["db"]
        {readiness(markers["api"])}
        [programs.db]
        command = {tier(markers["db"])}
        start_seconds = 0
        priority = 3
        {readiness(markers["db"])}
    """)
    for name in ("db", "api", "web"):
        daemon.wait_event(
            lambda e, n=name: e["event"] == "readiness" and e["process"] == n and e["ready"],
            timeout=15,
        )
    events = daemon.events

    def first(match: Callable[[dict[str, object]], bool]) -> float:
        return float(next(e["timestamp"] for e in events if match(e)))

    def became_ready(name: str) -> float:
        return first(lambda e: e["event"] == "readiness" and e["process"] == name and e["ready"])

    assert first(state_is("api", "STARTING")) >= became_ready("db")
    assert first(state_is("web", "STARTING")) >= became_ready("api")
    waiting = [e for e in events if e["event"] == "waiting" and e["process"] == "web"]
    assert waiting and waiting[0]["waiting_for"] == ["api"]
    assert [p["name"] for p in daemon.api("GET", "/api/v1/programs").json()][:3] == [
        "web",
        "api",
        "db",
    ]  # status keeps priority order
    assert daemon.status("web")["depends_on"] == ["api"]

    assert daemon.cli("stop", "all").returncode == 0
    stopped = [
        daemon.next_event(lambda e: e["event"] == "state_changed" and e["new"] == "STOPPED")
        for _ in range(3)
    ]
    assert [e["process"] for e in stopped] == ["web", "api", "db"]


def test_a_fatal_dependency_leaves_its_dependent_waiting(sentinel: Start) -> None:
    """A dependency that gives up (FATAL) leaves the dependent STOPPED and waiting, with that
    reason: it never starts, so it cannot crash loop; `start` says why and exits 1."""
    daemon = sentinel(f"""
        [programs.db]
        command = {json.dumps(child("raise SystemExit(1)"))}
        start_seconds = "1s"
        start_retries = 1
        backoff = {{ initial = "10ms" }}
        [programs.api]
        command = {SLEEPER}
        start_seconds = 0
        depends_on = ["db"]
    """)
    daemon.wait_event(lambda e: e["event"] == "fatal" and e["process"] == "db")
    daemon.wait_event(
        lambda e: e["event"] == "waiting" and e["detail"] == "waiting for db: FATAL", timeout=5
    )
    status = daemon.status("api")
    assert (status["state"], status["restarts"], status["waiting_for"]) == ("STOPPED", 0, ["db"])
    assert status["detail"] == "waiting for db: FATAL"
    assert "waiting for db: FATAL" in daemon.cli("status").stdout
    supervisorctl = require_binary("supervisorctl", str(Path(sys.executable).parent))
    shown = subprocess.run(
        [supervisorctl, "-s", f"unix://{daemon.socket}", "status", "api"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    ).stdout
    assert shown.split(None, 2)[1:] == ["STOPPED", "waiting for db: FATAL\n"], shown
    result = daemon.cli("start", "api")
    assert result.returncode == 1
    assert "waiting for db: FATAL" in result.stdout
    assert not any(state_is("api", "STARTING")(e) for e in daemon.events)
    metrics = daemon.api("GET", "/metrics").text
    assert 'sentinel_program_waiting{process="api",program="api",group="api"} 1.0' in metrics


def test_a_dependency_restart_leaves_dependents_alone_and_a_crash_waits(
    sentinel: Start,
) -> None:
    """Restarting a dependency does not restart what depends on it; a dependent that crashes
    while its dependency is stopped waits for it, and starts once it is back."""
    daemon = sentinel(f"""
        [programs.db]
        command = {SLEEPER}
        start_seconds = 0
        [programs.api]
        command = {SLEEPER}
        start_seconds = 0
        depends_on = ["db"]
    """)
    running = daemon.wait_event(state_is("api", "RUNNING"))
    assert daemon.cli("restart", "db").returncode == 0
    assert daemon.status("api")["pid"] == running["pid"]
    assert daemon.cli("stop", "db").returncode == 0
    assert daemon.status("api")["state"] == "RUNNING"  # a stop does not carry over either

    os.kill(running["pid"], signal.SIGKILL)
    waiting = daemon.next_event(lambda e: e["event"] == "waiting" and e["process"] == "api")
    assert waiting["detail"] == "waiting for db: STOPPED"
    assert daemon.status("api")["state"] == "STOPPED"
    assert daemon.cli("start", "db").returncode == 0
    again = daemon.wait_state("api", "RUNNING")
    assert again["pid"] != running["pid"]
    restart = daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "api")
    assert restart["reason"] == "exited"


def test_a_cycle_is_a_config_error(tmp_path: Path) -> None:
    """A cycle in depends_on is refused before anything runs, naming the key."""
    config = tmp_path / "sentinel.toml"
    config.write_text(
        '[programs.a]\ncommand = "true"\ndepends_on = ["b"]\n'
        '[programs.b]\ncommand = "true"\ndepends_on = ["a"]\n'
    )
    for command in ("check-config", "run"):
        result = subprocess.run(
            [sys.executable, "-m", "sentinel", command, "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert result.returncode != 0
        assert "programs.a.depends_on: a dependency cycle: a -> b -> a" in result.stderr
