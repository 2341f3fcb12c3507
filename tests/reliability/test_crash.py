"""A crash of sentinel leaves nothing behind: the next start stops what the dead one left,
and one config has one daemon."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import SentinelProcess, StartSentinel, child, wait_until
from tests.reliability.conftest import kill_9, kill_and_reap, read_pids, reap, running

# A program with a grandchild in its group, and one that escaped the group with setsid.
FAMILY = """
    import os, sys, time
    out = sys.argv[1]
    kids = []
    pid = os.fork()
    if pid == 0:
        time.sleep(3600)
    kids.append(pid)
    pid = os.fork()
    if pid == 0:
        os.setsid()
        time.sleep(3600)
    kids.append(pid)
    with open(out, "w") as f:
        f.write(f"{os.getpid()} {kids[0]} {kids[1]}\\n")
    time.sleep(3600)
"""


def config(tmp_path: Path, socket: str = "sentinel.sock") -> str:
    family = [*child(FAMILY), str(tmp_path / "family.pids")]
    plain = child("import time; time.sleep(3600)")
    return f"""
        [control]
        socket = "{socket}"
        [programs.family]
        command = {json.dumps(family)}
        start_seconds = 0
        [programs.plain]
        command = {json.dumps(plain)}
        start_seconds = 0
    """


def test_a_restart_after_kill_9_stops_what_the_dead_daemon_left(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """kill -9 of sentinel, then a new start: every child and grandchild of the first one is
    stopped before the second starts its own."""
    first = sentinel(config(tmp_path))
    first.wait_event(lambda e: e["event"] == "state_changed" and e["new"] == "RUNNING")
    left = read_pids(tmp_path / "family.pids", 3)
    plain = first.status("plain")["pid"]
    kill_9(first)
    left.append(plain)
    assert all(running(pid) for pid in left), "the processes outlive a killed daemon"
    (tmp_path / "family.pids").unlink()

    second = SentinelProcess(tmp_path, config(tmp_path)).start()
    try:
        # Stopped before the second daemon answers: nothing runs twice, even for a moment.
        assert not [pid for pid in left if running(pid)], second.log()
        reap(left)
        assert "outlived the sentinel that started it" in second.log()
        fresh = read_pids(tmp_path / "family.pids", 3)
        assert not set(fresh) & set(left)
        assert second.status("plain")["state"] in ("STARTING", "RUNNING")
    finally:
        assert second.terminate() == 0, second.log()
    assert not [pid for pid in fresh if running(pid)]


def test_a_second_daemon_on_the_same_config_is_refused(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """Another socket, the same config (so the same state_dir): the lock refuses the second
    daemon before it starts anything."""
    first = sentinel(config(tmp_path))
    pids = read_pids(tmp_path / "family.pids", 3)
    other = tmp_path / "other.toml"
    other.write_text(
        (tmp_path / "sentinel.toml").read_text().replace("sentinel.sock", "other.sock")
    )
    second = subprocess.run(
        [sys.executable, "-m", "sentinel", "run", "-c", str(other)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert second.returncode == 2, second.stderr
    assert f"another sentinel (pid {first.proc.pid if first.proc else 0})" in second.stderr
    assert "Traceback" not in second.stderr
    assert read_pids(tmp_path / "family.pids", 3) == pids  # nothing started twice
    assert not (tmp_path / "other.sock").exists()


def test_a_pid_reused_since_the_crash_is_left_alone(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """The record names processes by pid and start time: a recorded pid that now belongs to
    another process (same number, later start) is not signalled."""
    first = sentinel(config(tmp_path))
    first.wait_event(lambda e: e["event"] == "state_changed" and e["new"] == "RUNNING")
    read_pids(tmp_path / "family.pids", 3)
    plain = first.status("plain")["pid"]
    record = tmp_path / "state" / "processes.json"
    wait_until(lambda: record.exists() and f'"pid": {plain}' in record.read_text())
    kill_9(first)
    # Stop everything by hand, then give the plain process's number to a stranger.
    leftovers = [plain, *read_pids(tmp_path / "family.pids", 3)]
    kill_and_reap(leftovers)
    stranger = _process_with_pid(plain)
    try:
        second = SentinelProcess(tmp_path, config(tmp_path)).start()
        second.wait_event(lambda e: e["event"] == "state_changed")  # its stream is connected
        assert second.terminate() == 0, second.log()
        assert stranger.poll() is None, "a stranger with a recorded pid was signalled"
    finally:
        stranger.kill()
        stranger.wait()


def _process_with_pid(pid: int) -> subprocess.Popen[bytes]:
    """A process that gets `pid` (the kernel's next pid is set through ns_last_pid)."""
    for _ in range(50):
        Path("/proc/sys/kernel/ns_last_pid").write_text(str(pid - 1))
        proc = subprocess.Popen(["sleep", "3600"])
        if proc.pid == pid:
            return proc
        proc.kill()
        proc.wait()
    raise AssertionError(f"could not get pid {pid}")
