"""Secrets stay sentinel's, errors never echo a value, malformed configs are one-line errors,
and a reload is all or nothing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.conftest import StartSentinel, child, state_is

SECRET = "hunter2-not-for-children"


def check_config(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", "check-config", "-c", str(path)],
        capture_output=True, text=True, timeout=60, check=False,
        env={"PATH": "/usr/bin:/bin", **(env or {})},
    )  # fmt: skip


def test_children_never_inherit_a_secret_of_sentinels_own_config(
    tmp_path: Path, sentinel: StartSentinel, webhook: object
) -> None:
    """SMTP_PASSWORD is in sentinel's environment for its [notify] URL: a program running as
    nobody does not get it, unless its own environment names it; an exec probe neither."""
    printenv = [
        "/usr/bin/python3",
        "-c",
        "import os, time; print(sorted(os.environ)); time.sleep(3600)",
    ]
    probe = tmp_path / "probe.env"
    daemon = sentinel(
        f"""
        [notify]
        urls = ["json://ops:${{SMTP_PASSWORD}}@127.0.0.1:9/hook"]
        [programs.stranger]
        command = {json.dumps(printenv)}
        user = "nobody"
        start_seconds = 0
        [programs.mailer]
        command = {json.dumps(printenv)}
        environment = {{ PASS = "${{SMTP_PASSWORD}}" }}
        start_seconds = 0
        [programs.mailer.liveness]
        exec = {{ command = {json.dumps(child(f"import os; open({str(probe)!r}, 'w').write(repr(sorted(os.environ)))"))} }}
        period = "0.2s"
        """,
        env={"SMTP_PASSWORD": SECRET},
    )
    daemon.wait_event(state_is("stranger", "RUNNING"))
    daemon.wait_event(
        lambda e: e["event"] == "probe_result" and e["process"] == "mailer", timeout=20
    )
    stranger = (tmp_path / "logs" / "stranger.stdout.log").read_text()
    mailer = (tmp_path / "logs" / "mailer.stdout.log").read_text()
    assert "SENTINEL_PROCESS_NAME" in stranger  # the environment was printed
    assert "SMTP_PASSWORD" not in stranger
    assert "SMTP_PASSWORD" not in mailer and "PASS" in mailer
    assert "SMTP_PASSWORD" not in probe.read_text()


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ('[notify]\ncooldown = "${SMTP_PASSWORD}"', "notify.cooldown"),
        ('[control]\nhttp = "${SMTP_PASSWORD}"', "control.http"),
        (
            '[programs.a]\ncommand = ["true"]\nstart_retries = "${SMTP_PASSWORD}"',
            "programs.a.start_retries",
        ),
        ('[notify]\nurls = [1, "${SMTP_PASSWORD}"]\nretries = "x"', "notify.retries"),
    ],
)
def test_a_config_error_names_the_key_never_the_value(tmp_path: Path, table: str, key: str) -> None:
    """A value from the environment that fails validation is named by its key; the value
    (it may be a password) is not in the error."""
    path = tmp_path / "sentinel.toml"
    path.write_text(table + "\n")
    result = check_config(path, {"SMTP_PASSWORD": SECRET})
    assert result.returncode == 1
    assert key in result.stderr
    assert SECRET not in result.stderr and SECRET not in result.stdout


def test_a_rejected_reload_keeps_the_secret_out_of_the_event_stream(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """The reload is refused with the key named; the event and the API answer carry no value."""
    daemon = sentinel(
        '[programs.a]\ncommand = ["sleep", "3600"]\nstart_seconds = 0\n',
        env={"SMTP_PASSWORD": SECRET},
    )
    daemon.wait_event(state_is("a", "RUNNING"))
    daemon.config_path.write_text(
        daemon.config_path.read_text() + '[notify]\ncooldown = "${SMTP_PASSWORD}"\n'
    )
    answer = daemon.api("POST", "/api/v1/reload")
    assert answer.status_code == 400
    assert "notify.cooldown" in answer.text and SECRET not in answer.text
    event = daemon.wait_event(lambda e: e["event"] == "config_reloaded")
    assert not event["ok"] and SECRET not in json.dumps(event)


MALFORMED = {
    "invalid UTF-8": b'[programs.a]\ncommand = ["caf\xe9"]\n',
    "deep nesting": b"a = " + b"[" * 5000 + b"]" * 5000 + b"\n",
    "deep tables": b"a = " + b"{b = " * 3000 + b"1" + b"}" * 3000 + b"\n",
    "NUL bytes": b"\x00\x01\x02\x7fELF",
    "a key with a newline": b'"a\\nb" = 1\n',
}


@pytest.mark.parametrize("content", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_malformed_config_is_a_one_line_error(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "sentinel.toml"
    path.write_bytes(content)
    result = check_config(path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert str(path) in result.stderr


def test_a_binary_include_is_an_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / "conf.d").mkdir()
    (tmp_path / "conf.d" / "app.toml").write_bytes(bytes(range(256)) * 4)
    path = tmp_path / "sentinel.toml"
    path.write_text('include = ["conf.d/*.toml"]\n')
    result = check_config(path)
    assert result.returncode == 1
    assert result.stderr.startswith(str(tmp_path / "conf.d" / "app.toml") + ": not UTF-8")
    assert "Traceback" not in result.stderr


def test_a_reload_over_sighup_of_invalid_utf8_is_refused_and_counted(
    tmp_path: Path, sentinel: StartSentinel
) -> None:
    """SIGHUP with a file that is not UTF-8: refused (the event says why), the metric says 0,
    and what runs is untouched."""
    daemon = sentinel('[programs.a]\ncommand = ["sleep", "3600"]\nstart_seconds = 0\n')
    daemon.wait_event(state_is("a", "RUNNING"))
    pid = daemon.status("a")["pid"]
    daemon.config_path.write_bytes(b'[programs.a]\ncommand = ["sl\xffeep", "1"]\n')
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGHUP)
    event = daemon.next_event(lambda e: e["event"] == "config_reloaded")
    assert not event["ok"] and "not UTF-8" in event["error"]
    metrics = daemon.api("GET", "/metrics").text
    assert "sentinel_config_last_reload_successful 0.0" in metrics
    assert daemon.status("a")["pid"] == pid
