"""GET /metrics of a real sentinel: the exposition, the counters against the event stream, the
process-tree gauges, and a real Prometheus scraping it with the shipped rules and dashboard
(tests/integration/monitoring.py runs it).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import math
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from sentinel import __version__
from tests.conftest import require_binary
from tests.integration.conftest import (
    Event,
    SentinelProcess,
    child,
    pid_alive,
    state_is,
    wait_until,
)
from tests.integration.monitoring import (
    ALERT_RULES,
    GRAFANA,
    ROOT,
    RUNBOOKS,
    Prometheus,
    rules_firing_at_once,
    scrape_config,
)

Start = Callable[[str], SentinelProcess]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))
DASHBOARD = ROOT / "dashboards" / "sentinel.json"
REASONS = {"exited", "liveness", "manual", "reload", "watchdog"}
STATES = {"STOPPED", "STARTING", "RUNNING", "BACKOFF", "STOPPING", "EXITED", "FATAL", "UNKNOWN"}
PER_PROCESS = {
    "sentinel_program_up",
    "sentinel_program_state",
    "sentinel_program_restarts_total",
    "sentinel_program_backoffs_total",
    "sentinel_program_backoff_delay_seconds",
    "sentinel_program_flapping",
    "sentinel_program_start_time_seconds",
    "sentinel_program_last_exit_code",
    "sentinel_program_cpu_seconds_total",
    "sentinel_program_resident_memory_bytes",
    "sentinel_program_ready",
    "sentinel_program_waiting",
}
PER_PROGRAM = {
    "sentinel_rolling_restart_remaining",
    "sentinel_rolling_restarts_total",
    "sentinel_rolling_restart_stopped",
}
PER_PROBE = {
    "sentinel_probe_success",
    "sentinel_probe_failures_total",
    "sentinel_probe_duration_seconds_bucket",
    "sentinel_probe_duration_seconds_count",
    "sentinel_probe_duration_seconds_sum",
}


# --- scraping sentinel ------------------------------------------------------------------------


def scrape(daemon: SentinelProcess) -> list[Sample]:
    """Every sample of one GET /metrics (over the control socket)."""
    response = daemon.api("GET", "/metrics")
    assert response.status_code == 200, response.text
    families = text_string_to_metric_families(response.text)
    return [sample for family in families for sample in family.samples]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The value of the one sample called `name` whose labels include `labels`."""
    found = [
        s.value
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def of_process(samples: list[Sample], process: str) -> list[Sample]:
    return [s for s in samples if s.labels.get("process") == process]


def not_zero(samples: list[Sample]) -> list[tuple[str, dict[str, str]]]:
    """The samples that are not 0, as (name, labels other than process, program and group)."""
    return [
        (s.name, {k: v for k, v in s.labels.items() if k not in ("process", "program", "group")})
        for s in samples
        if s.value != 0
    ]


def unique(events: list[Event], kind: str, process: str) -> list[Event]:
    """Events of one kind for one process, once each (the stream's replay can repeat one)."""
    seen: dict[str, Event] = {}
    for event in events:
        if event["event"] == kind and event["process"] == process:
            seen.setdefault(json.dumps(event, sort_keys=True), event)
    return list(seen.values())


def http_address(daemon: SentinelProcess) -> str:
    address = daemon.api("GET", "/healthz").json()["http"]
    assert address and address.startswith("127.0.0.1:"), address
    return str(address)


class Listener:
    """A loopback port bound in the test process: refused until `open()`, accepted after."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]

    def open(self) -> None:
        self.sock.listen(16)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        # Accept and drop each probe connection, so the backlog never fills.
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() above
        self.sock.close()


@pytest.fixture
def listener() -> Iterator[Listener]:
    port = Listener()
    yield port
    port.close()


# --- 1. the exposition ------------------------------------------------------------------------


def test_exposition_passes_promtool_and_has_every_series_from_start_up(sentinel: Start) -> None:
    """A real scrape passes `promtool check metrics` and has zeroed series for an unstarted program."""
    promtool = require_binary("promtool")
    daemon = sentinel(f"""
        [control]
        http = "127.0.0.1:0"
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        [programs.app.liveness]
        exec = {{ command = ["true"] }}
        period = "100ms"
        [programs.off]
        command = {SLEEPER}
        autostart = false
        group = "idle"
        [programs.off.liveness]
        tcp = {{ port = 9 }}
        [programs.off.readiness]
        tcp = {{ port = 9 }}
        [programs.pool]
        command = {SLEEPER}
        autostart = false
        instances = 2
        group = "idle"
    """)
    daemon.wait_event(lambda e: e["event"] == "probe_result" and e["process"] == "app")
    response = httpx.get(f"http://{http_address(daemon)}/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain;")  # the text format
    body = response.text
    check = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert (check.stdout + check.stderr).strip() == "", check.stdout + check.stderr

    samples = [s for f in text_string_to_metric_families(body) for s in f.samples]
    assert not [s.name for s in samples if s.name.endswith("_created")]
    assert "_created" not in body
    assert value(samples, "sentinel_build_info", version=__version__) == 1
    assert value(samples, "sentinel_config_last_reload_successful") == 1
    for result in ("sent", "failed", "suppressed"):
        assert value(samples, "sentinel_notifications_total", result=result) == 0
    # app ran a probe: its histogram is there and has counted it.
    assert value(samples, "sentinel_program_up", process="app") == 1
    assert value(samples, "sentinel_probe_duration_seconds_count", process="app") >= 1
    assert value(samples, "sentinel_probe_success", process="app", probe="liveness") == 1

    off = of_process(samples, "off")
    assert {s.name for s in off} == PER_PROCESS | PER_PROBE
    assert {s.labels["group"] for s in off} == {"idle"}
    assert {s.labels["state"] for s in off if s.name == "sentinel_program_state"} == STATES
    assert {
        s.labels["reason"] for s in off if s.name == "sentinel_program_restarts_total"
    } == REASONS
    assert {s.labels["probe"] for s in off if s.name == "sentinel_probe_success"} == {
        "liveness",
        "readiness",
    }
    assert not_zero(off) == [("sentinel_program_state", {"state": "STOPPED"})]
    # Each program has its rolling restart series from start-up, zeros.
    for program in ("app", "off", "pool"):
        series = [
            s for s in samples if s.labels.get("program") == program and s.name in PER_PROGRAM
        ]
        assert {s.name for s in series} == PER_PROGRAM
        assert all(s.value == 0 for s in series)
    assert value(off, "sentinel_program_state", state="STOPPED") == 1
    # Instances share their program; programs share their group (the group defaults to the
    # program's name).
    assert {
        (s.labels["process"], s.labels["program"], s.labels["group"])
        for s in samples
        if s.name in PER_PROCESS | PER_PROBE
    } == {
        ("app", "app", "app"),
        ("off", "off", "idle"),
        ("pool_0", "pool", "idle"),
        ("pool_1", "pool", "idle"),
    }


# --- 2. counters against the event stream -----------------------------------------------------


def test_restart_counters_match_the_restart_events_per_reason(
    sentinel: Start, listener: Listener
) -> None:
    """restarts_total per reason and backoffs_total equal the restart and backoff events."""
    kills = 3
    config = f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        stop_timeout = "2s"
        backoff = {{ initial = "20ms", max = "20ms" }}
        [programs.app.liveness]
        tcp = {{ port = {listener.port} }}
        period = "100ms"
        failure_threshold = 1
    """
    daemon = sentinel(config)
    # The port refuses: liveness restarts; once it listens, the next probe makes app healthy.
    daemon.wait_event(
        lambda e: e["event"] == "restart" and e["process"] == "app" and e["reason"] == "liveness"
    )
    listener.open()
    daemon.next_event(lambda e: e["event"] == "healthy" and e["process"] == "app")
    pid = daemon.status("app")["pid"]

    for _ in range(kills):
        os.kill(pid, signal.SIGKILL)
        restart = daemon.next_event(lambda e: e["event"] == "restart" and e["process"] == "app")
        assert restart["reason"] == "exited", restart
        pid = daemon.next_event(state_is("app", "RUNNING"))["pid"]

    done = daemon.cli("restart", "app")
    assert done.returncode == 0, done.stdout + done.stderr
    restart = daemon.next_event(lambda e: e["event"] == "restart" and e["process"] == "app")
    assert restart["reason"] == "manual", restart
    daemon.next_event(state_is("app", "RUNNING"))

    daemon.config_path.write_text(
        daemon.config_path.read_text().replace('stop_timeout = "2s"', 'stop_timeout = "3s"')
    )
    done = daemon.cli("reload")
    assert done.returncode == 0, done.stdout + done.stderr
    restart = daemon.next_event(lambda e: e["event"] == "restart" and e["process"] == "app")
    assert restart["reason"] == "reload", restart
    daemon.next_event(state_is("app", "RUNNING"))

    samples = scrape(daemon)
    restarts = unique(daemon.events, "restart", "app")
    by_reason = Counter(e["reason"] for e in restarts)
    assert by_reason["exited"] == kills and by_reason["manual"] == by_reason["reload"] == 1
    assert by_reason["liveness"] >= 1
    for reason in REASONS:
        assert (
            value(samples, "sentinel_program_restarts_total", process="app", reason=reason)
            == by_reason[reason]
        ), reason
    backoffs = unique(daemon.events, "backoff", "app")
    # The first automatic restart is immediate, and no run lasted reset_after (one series);
    # manual and reload restarts skip the backoff. A kill within 100 ms of its spawn waits out
    # the floor on the restart rate (machine.MIN_SPAWN_INTERVAL): a backoff more, at most one
    # a kill.
    automatic = kills + by_reason["liveness"]
    assert automatic - 1 <= len(backoffs) <= automatic + kills
    assert value(samples, "sentinel_program_backoffs_total", process="app") == len(backoffs)
    assert daemon.status("app")["restarts"] == len(restarts)
    assert value(samples, "sentinel_program_up", process="app") == 1
    assert value(samples, "sentinel_program_backoff_delay_seconds", process="app") == 0
    assert value(samples, "sentinel_program_last_exit_code", process="app") == -signal.SIGTERM
    assert value(samples, "sentinel_probe_success", process="app", probe="liveness") == 1
    failures = value(samples, "sentinel_probe_failures_total", process="app", probe="liveness")
    assert failures >= by_reason["liveness"]


# --- 3. reload adds and removes series --------------------------------------------------------


def test_reload_removes_and_adds_series(sentinel: Start) -> None:
    """A program removed by a reload loses its series; one added (or added back) starts at zero."""
    program = """
        [programs.{name}]
        command = {command}
        start_seconds = 0
        autostart = {autostart}
    """

    def config(*programs: tuple[str, bool]) -> str:
        return "".join(
            program.format(name=name, command=SLEEPER, autostart=str(autostart).lower())
            for name, autostart in programs
        )

    daemon = sentinel(config(("keep", True), ("gone", True)))
    daemon.wait_event(state_is("gone", "RUNNING"))
    done = daemon.cli("restart", "gone")
    assert done.returncode == 0, done.stdout + done.stderr
    daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "gone")
    before = scrape(daemon)
    assert value(before, "sentinel_program_restarts_total", process="gone", reason="manual") == 1
    assert not of_process(before, "new")

    def reload(text: str) -> Event:
        daemon.config_path.write_text(text)
        done = daemon.cli("reload")
        assert done.returncode == 0, done.stdout + done.stderr
        return daemon.next_event(lambda e: e["event"] == "config_reloaded")

    reloaded = reload(config(("keep", True), ("new", False)))
    assert (reloaded["ok"], reloaded["added"], reloaded["removed"]) == (True, ["new"], ["gone"])
    after = scrape(daemon)
    assert not of_process(after, "gone")
    new = of_process(after, "new")
    assert {s.name for s in new} == PER_PROCESS
    assert not_zero(new) == [("sentinel_program_state", {"state": "STOPPED"})]
    assert {s.name for s in of_process(after, "keep")} == PER_PROCESS
    assert value(after, "sentinel_program_up", process="keep") == 1

    reload(config(("keep", True), ("new", False), ("gone", False)))
    back = of_process(scrape(daemon), "gone")
    assert {s.name for s in back} == PER_PROCESS
    assert not_zero(back) == [("sentinel_program_state", {"state": "STOPPED"})]


# --- 4. the process tree ----------------------------------------------------------------------


def own_usage(pid: int) -> tuple[float, int]:
    """CPU seconds (utime + stime) and RSS bytes of one process alone."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    ticks = int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK"), pages * os.sysconf("SC_PAGE_SIZE")


def test_cpu_and_memory_cover_the_whole_process_tree(sentinel: Start, tmp_path: Path) -> None:
    """A grandchild's 60 MB and its busy loop count in the program's memory and CPU."""
    marker = tmp_path / "allocated"
    grandchild = f"""
        from pathlib import Path
        data = b"x" * (60 * 2**20)  # filled, so every page is resident
        Path({str(marker)!r}).touch()
        while True:
            pass
    """
    middle = f"""
        import subprocess, time
        subprocess.Popen({child(grandchild)!r})
        time.sleep(3600)
    """
    main = f"""
        import subprocess, time
        subprocess.Popen({child(middle)!r})
        time.sleep(3600)
    """
    daemon = sentinel(f"""
        [programs.tree]
        command = {json.dumps(child(main))}
        start_seconds = 0
        stop_timeout = "5s"
        [programs.tree.readiness]
        exec = {{ command = ["sh", "-c", "test -e {marker} || exit 2"] }}
        period = "100ms"
    """)
    daemon.wait_event(lambda e: e["event"] == "probe_result" and e["ok"], timeout=20)
    pid = daemon.status("tree")["pid"]

    def tree(name: str) -> float:
        return value(scrape(daemon), name, process="tree")

    assert tree("sentinel_program_resident_memory_bytes") >= 60 * 2**20
    own_cpu, own_rss = own_usage(pid)
    assert own_rss < 60 * 2**20  # the main process alone is far from it: the tree is summed
    first = tree("sentinel_program_cpu_seconds_total")
    # Nothing emits an event as CPU time accrues: poll, bounded.
    wait_until(
        lambda: tree("sentinel_program_cpu_seconds_total") >= first + 0.5,
        timeout=20,
        what="the busy grandchild's CPU to show in the program's counter",
    )
    assert own_usage(pid)[0] - own_cpu < 0.1  # and not from the main process


def test_cpu_counter_does_not_go_back_when_a_descendant_is_orphaned(
    sentinel: Start, tmp_path: Path
) -> None:
    """A busy grandchild whose parent exits still counts, so the CPU counter never decreases."""
    marker = tmp_path / "middle.pid"
    busy = """
        data = b"x" * (60 * 2**20)
        while True:
            pass
    """
    middle = f"""
        import os, signal, subprocess
        from pathlib import Path
        signal.pthread_sigmask(signal.SIG_BLOCK, {{signal.SIGUSR1}})
        subprocess.Popen({child(busy)!r})
        Path({str(marker)!r}).write_text(str(os.getpid()))
        signal.sigwait({{signal.SIGUSR1}})  # then exit: the busy grandchild is orphaned
    """
    main = f"""
        import subprocess, time
        subprocess.Popen({child(middle)!r})
        time.sleep(3600)
    """
    daemon = sentinel(f"""
        [programs.tree]
        command = {json.dumps(child(main))}
        start_seconds = 0
        stop_timeout = "5s"
        [programs.tree.readiness]
        exec = {{ command = ["sh", "-c", "test -s {marker} || exit 2"] }}
        period = "100ms"
    """)
    daemon.wait_event(lambda e: e["event"] == "probe_result" and e["ok"], timeout=20)

    def tree(name: str) -> float:
        return value(scrape(daemon), name, process="tree")

    wait_until(
        lambda: tree("sentinel_program_cpu_seconds_total") >= 1.0,
        timeout=20,
        what="the busy grandchild's CPU to show in the program's counter",
    )
    before = tree("sentinel_program_cpu_seconds_total")
    middle_pid = int(marker.read_text())
    os.kill(middle_pid, signal.SIGUSR1)
    wait_until(lambda: not pid_alive(middle_pid), timeout=10, what="the middle process to exit")
    after = tree("sentinel_program_cpu_seconds_total")
    assert after >= before, f"the counter went back from {before:.2f}s to {after:.2f}s"
    assert tree("sentinel_program_resident_memory_bytes") >= 60 * 2**20


# --- 5. a real Prometheus ---------------------------------------------------------------------


def grafana_expr(expr: str, variables: dict[str, str]) -> str:
    """A dashboard query with its variables ($x, ${x}, ${x:format}) filled in as Grafana would."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        assert name in variables, f"unknown dashboard variable ${name} in {expr}"
        return variables[name]

    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", fill, expr)


def has_a_number(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(r["value"][1])) for r in result)


@contextlib.contextmanager
def not_sentinel() -> Iterator[str]:
    """A loopback HTTP server whose /metrics is valid and empty: a scrape target that is up
    but is not sentinel (what SentinelAbsent's second branch is for)."""

    class Empty(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Empty)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@contextlib.contextmanager
def alert_receiver() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback Alertmanager that records every alert Prometheus posts to it (API v2)."""
    received: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            if self.path == "/api/v2/alerts":
                received.extend(json.loads(body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def test_prometheus_scrapes_sentinel_and_the_rules_and_dashboard_work(
    sentinel: Start, prometheus: Callable[[dict[str, Any]], Prometheus], closed_port: int,
    tmp_path: Path,
) -> None:  # fmt: skip
    """Real Prometheus: every dashboard query has data, and every alert rule's expression is
    non-empty and its alert fires, for the right process, program and target only, with
    links built from the external labels; what reaches Alertmanager has the links but not
    those labels."""
    crash = json.dumps(child("import sys; sys.exit(1)"))
    config = f"""
        [control]
        http = "127.0.0.1:0"
        [notify]
        urls = ["json://127.0.0.1:{closed_port}/alerts"]
        events = ["restart"]
        batch = "0s"
        cooldown = "0s"
        retries = 0
        [programs.steady]
        command = {SLEEPER}
        start_seconds = 0
        alerts = false
        group = "svc"
        [programs.crashloop]
        command = {crash}
        instances = 2
        start_seconds = 0
        backoff = {{ initial = "100ms", max = "200ms" }}
        flapping = {{ restarts = 3, window = "10m" }}
        [programs.livefail]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "100ms", max = "200ms" }}
        alerts = false
        group = "svc"
        [programs.livefail.liveness]
        tcp = {{ port = {closed_port} }}
        period = "200ms"
        failure_threshold = 1
        [programs.fatal]
        command = {crash}
        start_seconds = "1s"
        start_retries = 1
        backoff = {{ initial = "100ms" }}
        alerts = false
        [programs.stuck]
        command = {crash}
        start_seconds = "10s"
        start_retries = 1000
        backoff = {{ initial = "100ms", max = "200ms" }}
        # never flapping, so that its restart alerts keep failing (a flapping program's
        # restarts are not sent)
        flapping = {{ restarts = 1000000, window = "1s" }}
        [programs.hung]
        command = {SLEEPER}
        start_seconds = 0
        notify = true
        watchdog = "300ms"  # and it never sends WATCHDOG=1
        backoff = {{ initial = "100ms", max = "200ms" }}
        alerts = false
        [programs.rolled]
        command = {SLEEPER}
        instances = 2
        start_seconds = 0
        notify = true  # and it never sends READY=1: a roll stops at its first instance
        rolling_timeout = "200ms"
        alerts = false
    """
    daemon = sentinel(config)
    target = http_address(daemon)
    dead = f"127.0.0.1:{closed_port}"
    daemon.wait_event(lambda e: e["event"] == "fatal" and e["process"] == "fatal")
    assert daemon.cli("restart", "--rolling", "rolled").returncode == 1
    good = daemon.config_path.read_text()
    daemon.config_path.write_text(
        good + '[programs.typo]\ncommand = "true"\nstop_timeout = "soon"\n'
    )
    rejected = daemon.cli("reload")
    assert rejected.returncode == 1 and "stop_timeout" in rejected.stderr, rejected.stderr
    daemon.wait_event(lambda e: e["event"] == "config_reloaded" and not e["ok"])
    assert daemon.proc is not None and daemon.proc.poll() is None
    assert daemon.status("steady")["state"] == "RUNNING"

    with not_sentinel() as foreign, alert_receiver() as (alertmanager, received):
        server = prometheus(
            scrape_config([target, dead, foreign], rules_firing_at_once(tmp_path), alertmanager)
        )
        check_dashboard_rules_and_alerts(server, target, dead, foreign, received)


def check_dashboard_rules_and_alerts(
    server: Prometheus, target: str, dead: str, foreign: str, received: list[dict[str, Any]]
) -> None:
    deadline = time.monotonic() + 60  # for everything below, together

    def left() -> float:
        return max(deadline - time.monotonic(), 0.1)

    wait_until(
        lambda: server.query(f'up{{job="sentinel", instance="{target}"}} == 1'),
        timeout=left(),
        what="a first scrape",
    )

    # (a) Every dashboard query returns data; the variables' label_values list what runs.
    variables = {"job": "sentinel", "instance": target, "program": ".*", "__rate_interval": "20s"}
    board = json.loads(DASHBOARD.read_text())
    pending = {
        f"{panel['title']} ({t['refId']})": grafana_expr(t["expr"], variables)
        for panel in board["panels"]
        for t in panel.get("targets", [])
    }
    assert len(pending) >= 17

    def dashboard_has_data() -> bool:
        for title, expr in list(pending.items()):
            if has_a_number(server.query(expr)):
                del pending[title]
        return not pending

    try:
        wait_until(dashboard_has_data, timeout=left(), what="every dashboard query to have data")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: no data for {json.dumps(pending, indent=2)}") from None
    label_values = {
        variable["name"]: re.fullmatch(r"label_values\((.*), (\w+)\)", variable["query"])
        for variable in board["templating"]["list"]
        if variable["type"] == "query"
    }
    listed = {}
    for name, match in label_values.items():
        assert match is not None, name
        selector = grafana_expr(match.group(1), variables)
        listed[name] = set(server.api(f"label/{match.group(2)}/values", **{"match[]": selector}))
    assert listed == {
        "job": {"sentinel"},
        "instance": {target},
        "program": {"steady", "crashloop", "livefail", "fatal", "stuck", "hung", "rolled"},
    }
    # The program variable lists programs (above); the per-program panels sum a program's
    # instances, and the Processes table has a row for each process.
    panels = {panel["title"]: panel for panel in board["panels"]}
    restarts = grafana_expr(
        panels["Restarts per program, by reason"]["targets"][0]["expr"], variables
    )
    assert {
        tuple(sorted(r["metric"].items()))
        for r in server.query(restarts)
        if r["metric"]["program"] == "crashloop"
    } == {(("program", "crashloop"), ("reason", reason)) for reason in REASONS}
    for table in panels["Processes"]["targets"]:
        rows = server.query(grafana_expr(table["expr"], variables))
        processes = [r["metric"]["process"] for r in rows]
        if table["refId"] == "B":  # uptime: RUNNING processes only
            assert "steady" in processes, processes
            continue
        assert sorted(processes) == sorted(
            ["steady", "crashloop_0", "crashloop_1", "livefail", "fatal", "stuck", "hung",
             "rolled_0", "rolled_1"]
        ), table["refId"]  # fmt: skip
        assert {(r["metric"]["process"], r["metric"]["program"]) for r in rows} >= {
            ("crashloop_0", "crashloop"),
            ("crashloop_1", "crashloop"),
        }

    # (b) Every rule evaluates without error, and every rule's expression has a result.
    rules = [rule for group in server.api("rules")["groups"] for rule in group["rules"]]
    assert len(rules) == sum(
        len(group["rules"]) for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]
    )
    empty = {rule["name"]: rule["query"] for rule in rules}

    def every_rule_has_a_result() -> bool:
        fresh = [r for g in server.api("rules")["groups"] for r in g["rules"]]
        assert all(r["health"] != "err" for r in fresh), fresh
        for name, query in list(empty.items()):
            if server.query(query):
                del empty[name]
        return not empty

    try:
        wait_until(every_rule_has_a_result, timeout=left(), what="every rule to have a result")
    except AssertionError as exc:
        raise AssertionError(f"{exc}: empty {json.dumps(empty, indent=2)}") from None

    # (c) Each alert fires for what the daemon went through, for the right process, program
    # and target: (alert, target, process, program). Crash loops and flapping are one alert
    # per program (no process label); the other program alerts are per process.
    wanted = {
        ("SentinelProgramDown", target, "crashloop_0", "crashloop"),
        ("SentinelProgramDown", target, "crashloop_1", "crashloop"),
        ("SentinelProgramDown", target, "stuck", "stuck"),
        ("SentinelProgramDown", target, "fatal", "fatal"),
        ("SentinelProgramFatal", target, "fatal", "fatal"),
        ("SentinelProgramCrashLooping", target, None, "crashloop"),
        ("SentinelProgramFlapping", target, None, "crashloop"),
        ("SentinelLivenessFailing", target, "livefail", "livefail"),
        ("SentinelProgramStuckInBackoff", target, "stuck", "stuck"),
        ("SentinelProgramWatchdogRestart", target, "hung", "hung"),
        ("SentinelRollingRestartStopped", target, None, "rolled"),
        ("SentinelConfigReloadFailed", target, None, None),
        ("SentinelNotificationsFailing", target, None, None),
        ("SentinelDown", dead, None, None),
        ("SentinelAbsent", foreign, None, None),
    }
    Key = tuple[str, str | None, str | None, str | None]

    def key(labels: dict[str, str]) -> Key:
        return (
            labels["alertname"],
            labels.get("instance"),
            labels.get("process"),
            labels.get("program"),
        )

    # Every alert seen firing since the start: with `for: 0s` a crash-looping process's alerts
    # come and go with its state at each evaluation.
    alerts: dict[Key, dict[str, Any]] = {}

    def all_fired() -> bool:
        for alert in server.api("alerts")["alerts"]:
            if alert["state"] == "firing":
                alerts[key(alert["labels"])] = alert
        return wanted <= alerts.keys()

    try:
        wait_until(all_fired, timeout=left(), what="the alerts to fire")
    except AssertionError as exc:
        missing = sorted(wanted - alerts.keys(), key=str)
        raise AssertionError(f"{exc}: missing {missing}") from None
    unexpected = {
        alert
        for alert in alerts.keys() - wanted
        if alert[3] == "steady" or alert[0] in ("SentinelDown", "SentinelAbsent")
    }
    assert not unexpected, unexpected

    # (d) Every alert names its process and program, and links to its runbook section and to
    # the dashboard, from the base URLs set as external labels.
    for (name, instance, process, program), alert in alerts.items():
        annotations = alert["annotations"]
        assert annotations["runbook_url"] == f"{RUNBOOKS}#{name.lower()}", alert
        dashboard = f"{GRAFANA.rstrip('/')}/d/sentinel-overview/sentinel?var-job=sentinel"
        if instance:
            dashboard += f"&var-instance={urllib.parse.quote_plus(instance)}"
        if program:
            dashboard += f"&var-program={program}"
        assert annotations["dashboard_url"] == dashboard, alert
        text = annotations["summary"] + annotations["description"]
        if program:
            assert program in annotations["summary"], alert
        if process:
            assert process in annotations["summary"], alert
            # and a command to run on it
            assert re.search(rf"`sentinel \w+ {re.escape(process)}`", text), alert
    for name in ("SentinelProgramCrashLooping", "SentinelProgramFlapping"):
        description = alerts[name, target, None, "crashloop"]["annotations"]["description"]
        assert description.startswith("2 of the 2 processes of crashloop "), description
        assert "crashloop_0" in description and "crashloop_1" in description, description

    # (e) Alertmanager gets the alerts with their links, without the link labels.
    wait_until(
        lambda: {a["labels"]["alertname"] for a in received} >= {w[0] for w in wanted},
        timeout=left(),
        what="the alerts to reach Alertmanager",
    )
    for alert in received:
        assert not {"sentinel_runbook_url", "sentinel_grafana_url"} & alert["labels"].keys()
        assert alert["annotations"]["runbook_url"].startswith(f"{RUNBOOKS}#"), alert
        assert alert["annotations"]["dashboard_url"].startswith(GRAFANA.rstrip("/")), alert


def test_liveness_alert_is_quiet_until_the_first_probe(
    sentinel: Start, prometheus: Callable[[dict[str, Any]], Prometheus], closed_port: int,
    tmp_path: Path,
) -> None:  # fmt: skip
    """SentinelLivenessFailing does not fire for a RUNNING program whose probe has not run yet."""
    crash = json.dumps(child("import sys; sys.exit(1)"))
    daemon = sentinel(f"""
        [control]
        http = "127.0.0.1:0"
        [programs.slow]
        command = {SLEEPER}
        start_seconds = 0
        [programs.slow.liveness]
        tcp = {{ port = {closed_port} }}
        initial_delay = "1h"
        [programs.fatal]
        command = {crash}
        start_seconds = "1s"
        start_retries = 0
    """)
    target = http_address(daemon)
    daemon.wait_event(lambda e: e["event"] == "fatal" and e["process"] == "fatal")
    server = prometheus(scrape_config([target], rules_firing_at_once(tmp_path)))

    def alerts() -> list[dict[str, str]]:
        return [alert["labels"] for alert in server.api("alerts")["alerts"]]

    # The FATAL alert shows that the rules have run on a scrape that had both programs.
    wait_until(
        lambda: any(a["alertname"] == "SentinelProgramFatal" for a in alerts()),
        timeout=30,
        what="SentinelProgramFatal",
    )
    assert not [a for a in alerts() if a.get("process") == "slow"], alerts()
    assert not [e for e in daemon.events if e["event"] == "probe_result"]
