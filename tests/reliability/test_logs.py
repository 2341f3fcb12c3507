"""Log files: never opened through a link or a directory a program controls; directory
problems are config errors at check time, warning events at run time, and capture resumes
when a removed directory comes back."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from tests.integration.conftest import StartSentinel, child, state_is, wait_until

TICKER = """
    import itertools, time
    for n in itertools.count():
        print(f"line {n}", flush=True)
        time.sleep(0.05)
"""


def sentinel_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_log_directory_the_programs_user_can_write_is_refused(tmp_path: Path) -> None:
    """nobody owns its log directory: it could swap its log file for a link to /etc/shadow.
    The config is refused, naming the key and the user."""
    logs = tmp_path / "public"
    logs.mkdir()
    os.chown(logs, 65534, 65534)
    tmp_path.chmod(0o755)
    config = tmp_path / "sentinel.toml"
    config.write_text(
        f'[programs.app]\ncommand = ["sleep", "1"]\nuser = "nobody"\n'
        f'stdout = {{ path = "{logs}/app.log" }}\n'
    )
    result = sentinel_cli("check-config", "-c", str(config))
    assert result.returncode == 1
    assert "programs.app.stdout" in result.stderr and "writable by nobody" in result.stderr
    run = sentinel_cli("run", "-c", str(config))
    assert run.returncode == 2 and "writable by nobody" in run.stderr
    assert "Traceback" not in run.stderr


def test_a_symlink_planted_as_the_log_file_is_not_followed(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """A link where the log file should be: refused (a warning event says so), never
    followed; the file it points to is untouched."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    (tmp_path / "logs").mkdir()
    (tmp_path / "logs" / "app.stdout.log").symlink_to(victim)
    daemon = sentinel(f"[programs.app]\ncommand = {json.dumps(child(TICKER))}\nstart_seconds = 0\n")
    warning = daemon.wait_event(lambda e: e["event"] == "warning" and e["process"] == "app")
    assert "symbolic link" in warning["detail"]
    daemon.wait_event(state_is("app", "RUNNING"))
    assert victim.read_text() == "precious\n"


def test_a_log_directory_that_cannot_be_made_is_a_config_error(tmp_path: Path) -> None:
    (tmp_path / "logs").write_text("a file where the directory should be\n")
    config = tmp_path / "sentinel.toml"
    config.write_text('[programs.app]\ncommand = ["sleep", "1"]\n')
    result = sentinel_cli("check-config", "-c", str(config))
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1 and "sentinel.log_dir" in result.stderr
    assert "is not a directory" in result.stderr
    run = sentinel_cli("run", "-c", str(config))
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert "is not a directory" in run.stderr


def test_capture_resumes_when_a_removed_log_directory_comes_back(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """The directory removed while the program writes: a warning event, output dropped; the
    directory made again: output goes on into the new file, without a restart, and after one."""
    daemon = sentinel(f"[programs.app]\ncommand = {json.dumps(child(TICKER))}\nstart_seconds = 0\n")
    daemon.wait_event(state_is("app", "RUNNING"))
    log = tmp_path / "logs" / "app.stdout.log"
    wait_until(lambda: log.exists() and "line 3" in log.read_text())
    shutil.rmtree(tmp_path / "logs")
    warning = daemon.next_event(lambda e: e["event"] == "warning" and e["process"] == "app")
    assert "removed or replaced" in warning["detail"] or "cannot open" in warning["detail"]
    (tmp_path / "logs").mkdir()
    wait_until(lambda: log.exists() and "line" in log.read_text(), 10, "output in the new file")
    daemon.next_event(lambda e: e["event"] == "warning" and "writing again" in e["detail"])
    assert daemon.cli("restart", "app").returncode == 0
    wait_until(lambda: "line 0" in log.read_text(), 10, "the restarted program's output")
