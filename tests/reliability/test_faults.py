"""Hostile programs and faults: pid reuse, escapes, crash loops, resource exhaustion,
hostile bytes, and a reload that cannot be applied."""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

from tests.integration.conftest import StartSentinel, WebhookReceiver, child, state_is, wait_until
from tests.reliability.conftest import kill_and_reap, read_pids, running

ESCAPING_PROBE = """
    import os, sys, time
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            with open(sys.argv[1], "a") as f:
                f.write(f"{os.getpid()}\\n")
            time.sleep(3600)
        os._exit(0)
    os.wait()
"""


def test_what_an_exec_probe_leaves_behind_is_killed(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """Each run of the probe leaves a setsid'd grandchild: each is killed, not kept until
    shutdown."""
    pids = tmp_path / "escaped.pids"
    probe = [*child(ESCAPING_PROBE), str(pids)]
    daemon = sentinel(f"""
        [programs.app]
        command = ["sleep", "3600"]
        start_seconds = 0
        [programs.app.liveness]
        exec = {{ command = {json.dumps(probe)} }}
        period = "0.2s"
    """)
    daemon.wait_event(state_is("app", "RUNNING"))
    escaped = read_pids(pids, 8, timeout=20)
    wait_until(lambda: sum(running(p) for p in escaped) <= 1, 5, "the escaped probes killed")


def test_a_stranger_given_a_reaped_groups_number_is_never_signalled(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """The main process exits, leaving a member of its group (put there by a process of
    another group, which reaps it: sentinel never sees it die). Its group's number is then
    given to a stranger's group: sentinel's SIGKILL at the stop timeout must not reach it."""
    code = """
        import os, signal, sys, time
        main = os.getpid()
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        if os.fork() == 0:            # W: its own group, ignores TERM, reaps C
            os.setpgid(0, 0)
            c = os.fork()
            if c == 0:                # C: back into the main's group, then leaves
                os.setpgid(0, main)
                with open(sys.argv[1], "w") as f:
                    f.write(f"{main} {os.getpid()}\\n")
                while not os.path.exists(sys.argv[2]):
                    time.sleep(0.02)
                os._exit(0)
            os.waitpid(c, 0)
            time.sleep(3600)
        time.sleep(0.5)
        os._exit(1)
    """
    ready, leave = tmp_path / "pids", tmp_path / "leave"
    daemon = sentinel(f"""
        [programs.app]
        command = {json.dumps([*child(code), str(ready), str(leave)])}
        start_seconds = 0
        autorestart = "never"
        stop_timeout = "3s"
    """)
    main, _ = read_pids(ready, 2)
    daemon.next_event(lambda e: e["event"] == "state_changed" and e["new"] == "STOPPING")
    leave.touch()
    wait_until(lambda: not _group_exists(main), 5, "the group to empty")
    stranger = _group_leader_with_pid(main)
    try:
        daemon.wait_state("app", "EXITED", timeout=15)
        assert stranger.poll() is None, "sentinel signalled a stranger's group"
    finally:
        stranger.kill()
        stranger.wait()


def _group_exists(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _group_leader_with_pid(pid: int) -> subprocess.Popen[bytes]:
    for _ in range(50):
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        proc = subprocess.Popen(["sleep", "3600"], start_new_session=True)
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    raise AssertionError(f"could not get pid {pid}")


def test_a_crash_loop_with_no_backoff_is_held_to_ten_starts_a_second(
    sentinel: StartSentinel,
) -> None:
    daemon = sentinel("""
        [programs.crash]
        command = ["false"]
        start_seconds = 0
        autorestart = "always"
        backoff = { initial = "0s", max = "0s", jitter = 0.0 }
        flapping = { restarts = 1000000 }
    """)
    daemon.wait_event(state_is("crash", "RUNNING"))
    time.sleep(2.0)  # a measured span, not a synchronisation
    restarts = daemon.status("crash")["restarts"]
    assert 5 <= restarts <= 25, restarts


def test_running_out_of_descriptors_is_one_warning_and_supervision_goes_on(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """The daemon's fd limit is cut at run time: exec probes and spawns fail with one warning
    event, no traceback flood; raised again, everything works."""
    daemon = sentinel("""
        [programs.app]
        command = ["sleep", "3600"]
        start_seconds = 0
        [programs.app.liveness]
        exec = { command = ["true"] }
        period = "0.05s"
        failure_threshold = 1000000
    """)
    daemon.wait_event(state_is("app", "RUNNING"))
    assert daemon.proc is not None
    pid = daemon.proc.pid
    used = len(os.listdir(f"/proc/{pid}/fd"))
    soft = next(
        line.split()[3]
        for line in Path(f"/proc/{pid}/limits").read_text().splitlines()
        if line.startswith("Max open files")
    )
    # Below what is open now: an exec probe's pipe may be open at this instant and closed
    # the next, and with the limit at the count it could be opened again.
    subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={used - 4}:"], check=True)
    try:
        warning = daemon.next_event(lambda e: e["event"] == "warning", timeout=10)
        assert "supervision goes on" in warning["detail"]
        size = len(daemon.log())
        time.sleep(2.0)  # a measured span: the log must not grow per probe
        assert len(daemon.log()) - size < 2000, daemon.log()[size:]
    finally:
        subprocess.run(["prlimit", f"--pid={pid}", f"--nofile={soft}:"], check=True)
    assert "Traceback" not in daemon.log()
    daemon.next_event(lambda e: e["event"] == "probe_result" and e["ok"], timeout=10)
    assert daemon.cli("restart", "app").returncode == 0


def test_hostile_bytes_are_escaped_and_bounded(
    tmp_path: Path, sentinel: StartSentinel, webhook: WebhookReceiver
) -> None:
    """A probe's output with terminal escapes, a bidi override and 100 KB: status, events and
    the alert carry it escaped and cut."""
    evil = "\x1b]0;pwned\x07\x1b[2J\u202eevil\r" + "A" * 100_000
    probe = child(f"import sys; sys.stdout.write({evil!r}); sys.exit(1)")
    daemon = sentinel(f"""
        [notify]
        urls = ["{webhook.url()}"]
        batch = "0s"
        events = ["unhealthy"]
        [programs.app]
        command = ["sleep", "3600"]
        start_seconds = 0
        [programs.app.liveness]
        exec = {{ command = {json.dumps(probe)} }}
        period = "0.2s"
        failure_threshold = 1
    """)
    event = daemon.wait_event(lambda e: e["event"] == "unhealthy", timeout=20)
    for text in (event["detail"], json.dumps(daemon.status("app"))):
        assert "\x1b" not in text and "\u202e" not in text and "\r" not in text
    assert len(event["detail"]) < 1200 and "\\x1b]0;pwned" in event["detail"]
    message = webhook.next(timeout=20)
    assert "\x1b" not in message["title"] + message["message"]
    assert "\u202e" not in message["title"] + message["message"]
    assert len(message["title"]) < 300 and len(message["message"]) < 9000


def test_a_reload_that_cannot_be_applied_changes_nothing(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """A valid config whose new log directory cannot be made: refused before anything
    changes (the removed program still runs), counted in the metric, told to the caller."""
    daemon = sentinel("""
        [programs.a]
        command = ["sleep", "3600"]
        start_seconds = 0
        [programs.b]
        command = ["sleep", "3600"]
        start_seconds = 0
    """)
    daemon.wait_event(state_is("b", "RUNNING"))
    pids = {n: daemon.status(n)["pid"] for n in "ab"}
    (tmp_path / "blocked").write_text("a file\n")
    daemon.config_path.write_text("""
        [programs.a]
        command = ["sleep", "3600"]
        start_seconds = 0
        [programs.c]
        command = ["sleep", "3600"]
        stdout = { path = "blocked/c.log" }
    """)
    answer = daemon.api("POST", "/api/v1/reload")
    assert answer.status_code == 400 and "is not a directory" in answer.json()["error"]
    assert {n: daemon.status(n)["pid"] for n in "ab"} == pids
    assert "sentinel_config_last_reload_successful 0.0" in daemon.api("GET", "/metrics").text
    kill_and_reap([])
