"""`sentinel reexec` (and SIGUSR2): the daemon re-executes in place and every program keeps
running, with its pipes, its state and its counters."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import httpx

from tests.integration.conftest import StartSentinel, child, state_is, wait_until

COUNTER = """
    import itertools, time
    for n in itertools.count():
        print(n, flush=True)
        time.sleep(0.01)
"""


def answers(daemon: object) -> bool:
    try:
        return daemon.api("GET", "/healthz").status_code == 200  # type: ignore[attr-defined]
    except httpx.TransportError:
        return False


def restarts_metric(text: str, process: str, reason: str) -> float:
    pattern = (
        rf'sentinel_program_restarts_total{{process="{process}",[^}}]*reason="{reason}"}} (\S+)'
    )
    found = re.search(pattern, text)
    assert found, text
    return float(found[1])


def test_reexec_keeps_every_program_its_pipes_and_its_counters(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    daemon = sentinel(f"""
        [programs.counter]
        command = {json.dumps(child(COUNTER))}
        start_seconds = 0
        [programs.idle]
        command = ["sleep", "3600"]
        start_seconds = 0
    """)
    daemon.wait_event(state_is("counter", "RUNNING"))
    assert daemon.cli("restart", "counter").returncode == 0
    assert daemon.cli("stop", "idle").returncode == 0
    before = daemon.status("counter")
    assert before["restarts"] == 1
    assert daemon.proc is not None
    sentinel_pid = daemon.proc.pid

    result = daemon.cli("reexec")
    assert result.returncode == 0, result.stderr
    wait_until(lambda: "re-executed: adopted 2 processes" in daemon.log(), 20, "the re-exec")
    wait_until(lambda: answers(daemon), 20, "the control socket again")

    assert daemon.proc.poll() is None and daemon.proc.pid == sentinel_pid
    after = daemon.status("counter")
    assert after["pid"] == before["pid"] and after["state"] == "RUNNING"
    assert after["restarts"] == 1 and after["start_time"] == before["start_time"]
    assert daemon.status("idle")["state"] == "STOPPED"  # a user's stop is kept
    metrics = daemon.api("GET", "/metrics").text
    assert restarts_metric(metrics, "counter", "manual") == 1.0
    # The same pipe is drained into the same file: not one line lost or doubled.
    log = tmp_path / "logs" / "counter.stdout.log"
    seen = len(log.read_text().splitlines())
    wait_until(lambda: len(log.read_text().splitlines()) > seen + 20, 10, "more output")

    # The adopted process is still watched: its crash is seen and it is restarted.
    os.kill(after["pid"], signal.SIGKILL)
    wait_until(
        lambda: (
            daemon.status("counter")["restarts"] == 2
            and daemon.status("counter")["state"] == "RUNNING"
        ),
        10,
        "the restart of the adopted process",
    )

    # SIGUSR2 does the same, and counters survive a second exec too.
    daemon.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: daemon.log().count("re-executed: adopted") == 2, 20, "the second re-exec")
    wait_until(lambda: answers(daemon), 20, "the control socket again")
    assert daemon.status("counter")["restarts"] == 2
    metrics = daemon.api("GET", "/metrics").text
    assert restarts_metric(metrics, "counter", "exited") == 1.0
    assert daemon.terminate() == 0, daemon.log()

    lines = [int(x) for x in log.read_text().split()]
    runs = _runs(lines)
    assert len(runs) == 3  # the first run, the manual restart, the restart after the kill
    for run in runs:
        assert run == list(range(len(run))), "a line was lost or doubled"


def _runs(lines: list[int]) -> list[list[int]]:
    """The counter's output, one list per run (each run counts from 0)."""
    runs: list[list[int]] = []
    for n in lines:
        if n == 0:
            runs.append([])
        runs[-1].append(n)
    return runs


def test_reexec_is_refused_when_the_config_is_broken(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    daemon = sentinel('[programs.a]\ncommand = ["sleep", "3600"]\nstart_seconds = 0\n')
    daemon.wait_event(state_is("a", "RUNNING"))
    daemon.config_path.write_text("[programs.a]\ncommand = 3\n")
    result = daemon.cli("reexec")
    assert result.returncode == 1
    assert "programs.a.command" in result.stderr
    assert daemon.status("a")["state"] == "RUNNING"


# Pings the watchdog every 20 ms and counts the datagrams the socket refused.
PINGER = """
    import os, socket, time
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sent = failed = 0
    while True:
        try:
            sock.sendto(f"READY=1\\nWATCHDOG=1\\nSTATUS={sent} sent, {failed} refused".encode(),
                        os.environ["NOTIFY_SOCKET"])
            sent += 1
        except OSError:
            failed += 1
        time.sleep(0.02)
"""


def test_reexec_keeps_the_sd_notify_socket_and_the_watchdog(sentinel: StartSentinel) -> None:
    """A program pinging its watchdog through a re-exec: its socket is handed over, so not one
    datagram is refused, the watchdog is not missed, and its READY=1 and STATUS= are kept."""
    daemon = sentinel(f"""
        [programs.pinger]
        command = {json.dumps(child(PINGER))}
        notify = true
        watchdog = "1s"
        start_seconds = "notify"
    """)
    daemon.wait_event(state_is("pinger", "RUNNING"))
    before = daemon.status("pinger")

    for round_ in (1, 2):
        assert daemon.cli("reexec").returncode == 0
        wait_until(lambda n=round_: daemon.log().count("re-executed: adopted") == n, 20, "re-exec")
        wait_until(lambda: answers(daemon), 20, "the control socket again")

    def sent() -> int:
        return int(daemon.status("pinger")["notify_status"].split()[0])

    count = sent()
    wait_until(lambda: sent() > count + 10, 10, "pings heard after the re-execs")
    after = daemon.status("pinger")
    assert (after["pid"], after["restarts"], after["ready"]) == (before["pid"], 0, True)
    assert after["notify_status"].endswith(", 0 refused"), after["notify_status"]
    assert not [e for e in daemon.events if e["event"] == "restart"]
    assert daemon.terminate() == 0, daemon.log()
