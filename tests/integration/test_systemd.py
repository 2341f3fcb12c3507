"""Running under systemd: sd_notify datagrams, the watchdog, the journal's priorities, the
shipped unit, and file descriptor limits."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import SentinelProcess, child, state_is, wait_until

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "conf" / "systemd" / "sentinel.service"
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))


class NotifySocket:
    """A datagram socket standing in for systemd's $NOTIFY_SOCKET."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / "notify.sock"
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(self.path))
        self.seen: list[dict[str, str]] = []

    def next(self, timeout: float = 10.0) -> dict[str, str]:
        self.sock.settimeout(timeout)
        data = self.sock.recv(4096).decode()
        message = dict(line.split("=", 1) for line in data.split("\n") if line)
        self.seen.append(message)
        return message

    def next_with(self, key: str, timeout: float = 10.0) -> dict[str, str]:
        """The next datagram that sets `key`, skipping others (watchdog pings)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.next(left)
            if key in message:
                return message
        raise AssertionError(f"no {key}= within {timeout}s; seen {self.seen[-5:]}")


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    receiver = NotifySocket(tmp_path)
    yield receiver
    receiver.sock.close()


def test_notify_ready_status_watchdog_reloading_stopping(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    """READY=1 with counts by state once programs are spawned, WATCHDOG=1 from the loop at half
    WATCHDOG_USEC, RELOADING=1 with MONOTONIC_USEC then READY=1 on a reload (also a refused
    one, which `sentinel reload` reports with exit 1 and the metric with 0), STOPPING=1."""
    config = f"""
        [programs.app]
        command = {SLEEPER}
        start_seconds = 0
        [programs.off]
        command = {SLEEPER}
        autostart = false
    """
    env = {"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "200000"}
    daemon = SentinelProcess(tmp_path, config, env=env).start()
    try:
        ready = notify_socket.next_with("READY")
        assert ready["READY"] == "1"
        status = ready["STATUS"]
        assert re.fullmatch(r"1 (RUNNING|STARTING), 1 STOPPED", status), ready
        if "STARTING" in status:  # then the counts follow the change
            assert notify_socket.next_with("STATUS")["STATUS"] == "1 RUNNING, 1 STOPPED"
        pings = [notify_socket.next_with("WATCHDOG") for _ in range(3)]
        assert all(p == {"WATCHDOG": "1"} for p in pings)

        assert daemon.cli("reload").returncode == 0
        reloading = notify_socket.next_with("RELOADING")
        usec = int(reloading["MONOTONIC_USEC"])
        assert abs(usec / 1e6 - _monotonic()) < 10
        assert notify_socket.next_with("READY")["READY"] == "1"

        daemon.config_path.write_text(config + "\n[programs.bad]\ncommand = 3\n")
        refused = daemon.cli("reload")
        assert refused.returncode == 1 and "programs.bad.command" in refused.stderr
        notify_socket.next_with("RELOADING")
        assert notify_socket.next_with("READY")["READY"] == "1"
        metrics = daemon.api("GET", "/metrics").text
        assert "sentinel_config_last_reload_successful 0.0\n" in metrics
        assert daemon.status("app")["state"] == "RUNNING"
    finally:
        daemon.terminate()
    assert notify_socket.next_with("STOPPING")["STOPPING"] == "1"


def _monotonic() -> float:
    return time.clock_gettime(time.CLOCK_MONOTONIC)


def test_journal_lines_carry_priorities_and_no_timestamp(tmp_path: Path) -> None:
    """With stderr on the journal ($JOURNAL_STREAM names it), each line starts with its syslog
    priority and journald's timestamp is the only one."""
    stderr = tmp_path / "sentinel.stderr"
    stderr.touch()
    info = stderr.stat()
    env = {"JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}"}
    daemon = SentinelProcess(tmp_path, f"[programs.app]\ncommand = {SLEEPER}\n", env=env).start()
    daemon.wait_event(state_is("app", "RUNNING"))
    assert daemon.terminate() == 0
    lines = daemon.log().splitlines()
    assert lines and all(re.match(r"<[2-7]>[A-Z]+ +", line) for line in lines), lines[:5]
    assert any(line.startswith("<6>INFO    app: STARTING -> RUNNING") for line in lines)
    assert not any(re.search(r"\d\d:\d\d:\d\d", line) for line in lines)


def test_the_shipped_unit_verifies_and_is_hardened() -> None:
    """systemd-analyze verify accepts the unit, and its offline security review scores it OK
    while it keeps what switching users takes."""
    analyze = require_binary("systemd-analyze")
    sentinel = Path(sys.executable).parent / "sentinel"
    unit = UNIT.read_text()
    assert "Type=notify" in unit and "ExecReload=/usr/local/bin/sentinel reload" in unit
    capabilities = re.search(r"^CapabilityBoundingSet=(.*)$", unit, re.MULTILINE)
    assert capabilities is not None
    assert {"CAP_SETUID", "CAP_SETGID", "CAP_KILL"} <= set(capabilities[1].split())
    with _unit_copy(unit.replace("/usr/local/bin/sentinel", str(sentinel))) as path:
        verify = subprocess.run(
            [analyze, "verify", str(path)], capture_output=True, text=True, check=False
        )
        assert verify.returncode == 0, verify.stdout + verify.stderr
        security = subprocess.run(
            [analyze, "security", "--offline=true", str(path)],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
    score = re.search(r"Overall exposure level for \S+: ([\d.]+)", security.stdout)
    assert score is not None, security.stdout + security.stderr
    assert float(score[1]) <= 4.0, security.stdout


class _unit_copy:
    """The unit under its own name in a temp dir (systemd-analyze names units by file name)."""

    def __init__(self, text: str) -> None:
        self._dir = tempfile.TemporaryDirectory()
        self._path = Path(self._dir.name) / "sentinel.service"
        self._path.write_text(text)

    def __enter__(self) -> Path:
        return self._path

    def __exit__(self, *_: object) -> None:
        self._dir.cleanup()


PROGRAMS = 400


def many(n: int) -> str:
    """n programs that sleep (the sleep binary: cheap to start by the hundred)."""
    return f'[programs.s]\ncommand = ["sleep", "3600"]\ninstances = {n}\nstart_seconds = 0\n'


def test_hundreds_of_programs_fit_under_a_soft_limit_of_1024(tmp_path: Path) -> None:
    """systemd's default soft limit (1024, hard 524288 there): sentinel raises it to the hard
    one and runs 400 programs, where it used to die of EMFILE at about 170."""
    daemon = SentinelProcess(tmp_path, many(PROGRAMS), nofile=(1024, 8192)).start()

    def all_running() -> bool:
        states = [p["state"] for p in daemon.api("GET", "/api/v1/programs").json()]
        return len(states) == PROGRAMS and set(states) == {"RUNNING"}

    wait_until(all_running, timeout=60, what=f"{PROGRAMS} programs RUNNING")
    assert daemon.proc is not None
    limits = Path(f"/proc/{daemon.proc.pid}/limits").read_text()
    assert re.search(r"Max open files\s+8192\s+8192", limits), limits
    assert daemon.terminate(timeout=60) == 0
    assert "Too many open files" not in daemon.log()


def test_a_config_that_cannot_fit_is_refused_with_what_to_raise(tmp_path: Path) -> None:
    """With a hard limit of 1024, 400 programs cannot fit: a one-line error that gives the
    limit and what to raise, before anything starts; no traceback."""
    config = tmp_path / "sentinel.toml"
    config.write_text(many(PROGRAMS))
    result = subprocess.run(
        ["prlimit", "--nofile=1024:1024", "--", sys.executable, "-m", "sentinel", "run", "-c",
         str(config)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 2
    assert f"{config}: programs: {PROGRAMS} processes need about" in result.stderr
    assert "the limit is 1024: raise it (systemd: LimitNOFILE=" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "logs").exists() or not os.listdir(tmp_path / "logs")
