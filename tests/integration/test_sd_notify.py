"""The sd_notify protocol, spoken by real programs written by others: the `systemd-notify`
command and the `sdnotify` package from PyPI, started by a real sentinel."""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import SentinelProcess, child, state_is, wait_until

Start = Callable[[str], SentinelProcess]


def cmd(code: str) -> str:
    return json.dumps(child(code))


def notified(process: str, **fields: object) -> Callable[[dict[str, object]], bool]:
    return lambda e: (
        e["event"] == "notify"
        and e["process"] == process
        and all(e[k] == v for k, v in fields.items())
    )


@pytest.fixture
def systemd_notify() -> str:
    return require_binary("systemd-notify")


@pytest.fixture
def open_state_dir() -> Iterator[Path]:
    """A state_dir another user can reach (pytest's own temporary directories are 0700)."""
    path = Path(tempfile.mkdtemp(prefix="sentinel-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_systemd_notify_ready_after_a_second(sentinel: Start, systemd_notify: str) -> None:
    """A shell that runs `systemd-notify --ready --status=...` after 1 s is STARTING and not
    ready until then (start_seconds = "notify"), then RUNNING, ready, with its STATUS."""
    daemon = sentinel(f"""
        [programs.warm]
        command = ["/bin/sh", "-c", "sleep 1; {systemd_notify} --ready --status='warmed up'; exec sleep 3600"]
        notify = true
        start_seconds = "notify"
    """)
    starting = daemon.wait_event(state_is("warm", "STARTING"))
    early = daemon.status("warm")
    assert (early["state"], early["ready"]) == ("STARTING", False)
    running = daemon.wait_event(state_is("warm", "RUNNING"))
    assert running["timestamp"] - starting["timestamp"] >= 1.0
    assert running["reason"] == "READY=1"
    status = daemon.status("warm")
    assert (status["ready"], status["notify_status"]) == (True, "warmed up")
    assert "warmed up" in daemon.cli("status").stdout


def test_sdnotify_package_readiness_is_not_ready_before(sentinel: Start, tmp_path: Path) -> None:
    """A Python program using the sdnotify package, RUNNING at once (start_seconds = 0), is not
    ready until it sends READY=1 a second later."""
    program = cmd("""
        import time, sdnotify
        notifier = sdnotify.SystemdNotifier(debug=True)
        notifier.notify("STATUS=loading the cache")
        time.sleep(1)
        notifier.notify("READY=1\\nSTATUS=serving")
        time.sleep(3600)
    """)
    daemon = sentinel(f"""
        [programs.api]
        command = {program}
        notify = true
        start_seconds = 0
    """)
    running = daemon.wait_event(state_is("api", "RUNNING"))
    assert daemon.status("api")["ready"] is False
    daemon.wait_event(notified("api", status="loading the cache"))
    assert daemon.status("api")["ready"] is False
    ready = daemon.wait_event(notified("api", ready=True), timeout=10)
    assert ready["timestamp"] - running["timestamp"] >= 0.9
    status = daemon.status("api")
    assert (status["ready"], status["notify_status"]) == (True, "serving")


def test_systemd_notify_from_a_descendant_as_another_user(
    sentinel: Start, systemd_notify: str, open_state_dir: Path
) -> None:
    """As an unprivileged user, systemd-notify sends from its own pid, a child of the program:
    a descendant is heard."""
    worker = json.dumps(
        [
            "/bin/sh",
            "-c",
            f'{systemd_notify} --ready --status="pid $$$$"; exec sleep 3600',
        ]  # $$: a $ in TOML
    )
    daemon = sentinel(f"""
        [sentinel]
        state_dir = "{open_state_dir}"
        [programs.worker]
        command = {worker}
        user = "nobody"
        notify = true
        start_seconds = "notify"
    """)
    running = daemon.wait_event(state_is("worker", "RUNNING"))
    said = daemon.wait_event(notified("worker", ready=True))
    assert said["sender"] != running["pid"]  # systemd-notify's own pid
    assert said["status"] == f"pid {running['pid']}"


def test_a_datagram_from_outside_the_tree_is_ignored(sentinel: Start, tmp_path: Path) -> None:
    """READY=1 from a process that is not the program's (here: the test itself) changes
    nothing; the program's own READY=1 then does."""
    go = tmp_path / "go"
    daemon = sentinel(f"""
        [programs.guarded]
        command = {
        cmd(f'''
            import os, time, sdnotify
            while not os.path.exists({str(go)!r}):
                time.sleep(0.01)
            sdnotify.SystemdNotifier().notify("READY=1")
            time.sleep(3600)
        ''')
    }
        notify = true
        start_seconds = "notify"
    """)
    daemon.wait_event(state_is("guarded", "STARTING"))
    path = daemon.directory / "state" / "notify" / "guarded.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as intruder:
        intruder.sendto(b"READY=1\nSTATUS=I am not guarded", str(path))
    wait_until(
        lambda: (
            f"datagram from pid {os.getpid()} dropped: from outside its process tree"
            in daemon.log()
        ),
        what="the intruder's datagram to be dropped",
    )
    status = daemon.status("guarded")
    assert (status["state"], status["ready"], status["notify_status"]) == ("STARTING", False, "")
    go.touch()
    daemon.wait_event(state_is("guarded", "RUNNING"))
    assert daemon.status("guarded")["ready"] is True


def test_a_missed_watchdog_restarts_within_the_period(sentinel: Start, tmp_path: Path) -> None:
    """A program that stops sending WATCHDOG=1 is restarted (reason watchdog) within
    `watchdog` + 100 ms of its last ping; it got WATCHDOG_USEC and its own WATCHDOG_PID."""
    pings = tmp_path / "pings"
    daemon = sentinel(f"""
        [programs.beat]
        command = {
        cmd(f'''
            import json, os, time, sdnotify
            notifier = sdnotify.SystemdNotifier()
            notifier.notify("READY=1")
            for _ in range(5):
                time.sleep(0.1)
                notifier.notify("WATCHDOG=1")
                last = time.time()
            with open({str(pings)!r} + ".tmp", "w") as f:
                json.dump({{"last": last, "usec": os.environ["WATCHDOG_USEC"],
                           "pid": os.environ["WATCHDOG_PID"], "me": os.getpid()}}, f)
            os.rename({str(pings)!r} + ".tmp", {str(pings)!r})
            time.sleep(3600)  # hung: no more pings
        ''')
    }
        notify = true
        start_seconds = "notify"
        watchdog = "500ms"
        backoff = {{ initial = "10s" }}
    """)
    daemon.wait_event(state_is("beat", "RUNNING"))
    stopping = daemon.wait_event(
        lambda e: state_is("beat", "STOPPING")(e) and "watchdog" in e["reason"], timeout=10
    )
    wait_until(pings.exists, what="the program to write when it pinged last")
    told = json.loads(pings.read_text())
    assert (told["usec"], told["pid"]) == ("500000", str(told["me"]))
    delay = stopping["timestamp"] - told["last"]
    print(f"watchdog: restart began {delay * 1000:.0f} ms after the last ping (period 500 ms)")
    assert 0.5 <= delay <= 0.6, delay
    restart = daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "beat")
    assert (restart["reason"], restart["detail"]) == ("watchdog", "no WATCHDOG=1 within 0.5s")
    metrics = daemon.api("GET", "/metrics").text
    assert (
        'sentinel_program_restarts_total{process="beat",program="beat",group="beat",'
        'reason="watchdog"} 1.0' in metrics
    )


def test_a_forking_daemon_is_followed_by_mainpid(sentinel: Start, systemd_notify: str) -> None:
    """A program that starts its daemon in the background, names it with MAINPID= and exits
    is RUNNING with the daemon's pid; the daemon's death is that process's exit."""
    daemon = sentinel(f"""
        [programs.forker]
        command = ["/bin/sh", "-c", "sleep 3600 & {systemd_notify} --ready --pid=$!; exit 0"]
        notify = true
        start_seconds = "notify"
        backoff = {{ initial = "0s" }}
    """)
    running = daemon.wait_event(state_is("forker", "RUNNING"))
    said = daemon.wait_event(notified("forker", ready=True))
    followed = said["mainpid"]
    assert Path(f"/proc/{followed}/cmdline").read_bytes().startswith(b"sleep\0")
    assert running["pid"] == followed  # MAINPID= is taken before READY=1
    wait_until(lambda: "following pid" in daemon.log(), what="the daemon to be followed")
    status = daemon.status("forker")
    assert (status["state"], status["pid"]) == ("RUNNING", followed)
    os.kill(followed, 9)
    exited = daemon.next_event(lambda e: e["event"] == "restart" and e["process"] == "forker")
    assert exited["exit_code"] == -9
    daemon.wait_state("forker", "RUNNING")
    assert daemon.cli("stop", "forker").returncode == 0
    assert daemon.status("forker")["state"] == "STOPPED"


def test_a_bad_mainpid_is_ignored(sentinel: Start) -> None:
    """MAINPID= naming a process outside the program's tree (sentinel itself) is ignored."""
    program = cmd("""
        import os, time, sdnotify
        sdnotify.SystemdNotifier().notify(f"MAINPID={os.getppid()}\\nREADY=1")
        time.sleep(3600)
    """)
    daemon = sentinel(f"""
        [programs.liar]
        command = {program}
        notify = true
        start_seconds = "notify"
    """)
    running = daemon.wait_event(state_is("liar", "RUNNING"))
    assert daemon.status("liar")["pid"] == running["pid"]
    assert "ignored: not in its process tree" in daemon.log()


def test_a_followed_daemon_that_dies_before_its_starter(
    sentinel: Start, systemd_notify: str, tmp_path: Path
) -> None:
    """The daemon named by MAINPID= dies while the process that started it still runs: that
    is the program's exit; what it left (the starter) is stopped, and the program restarts
    as soon as it is gone, not after stop_timeout."""
    pidfile = tmp_path / "daemon.pid"
    script = (
        f"(sleep 3600 & echo $! > {pidfile}); "  # the subshell exits: sleep is re-parented
        f'{systemd_notify} --ready --pid="$(cat {pidfile})"; exec sleep 3600'
    )
    daemon = sentinel(f"""
        [programs.starter]
        command = {json.dumps(["/bin/sh", "-c", script])}
        notify = true
        start_seconds = "notify"
        stop_timeout = "30s"
        backoff = {{ initial = "0s" }}
    """)
    running = daemon.wait_event(state_is("starter", "RUNNING"))
    followed = int(pidfile.read_text())
    assert running["pid"] == followed
    os.kill(followed, 9)
    stopping = daemon.next_event(state_is("starter", "STOPPING"))
    restart = daemon.next_event(
        lambda e: e["event"] == "restart" and e["process"] == "starter", timeout=10
    )
    assert restart["exit_code"] == -9
    assert restart["timestamp"] - stopping["timestamp"] < 5  # not stop_timeout (30 s)
    daemon.wait_state("starter", "RUNNING")
