"""Alerts through real apprise to a loopback JSON webhook and a loopback SMTP server."""

from __future__ import annotations

import email.header
import email.message
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sentinel.machine import MIN_SPAWN_INTERVAL
from tests.integration.conftest import (
    SentinelProcess,
    SmtpReceiver,
    WebhookReceiver,
    child,
    state_is,
)

Start = Callable[[str], SentinelProcess]
HOST = socket.gethostname()
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))


def crashes_then_stays_up(counter: Path, crashes: int) -> str:
    """A program that crashes `crashes` times (saying why on stderr), then stays up."""
    return json.dumps(
        child(f"""
            import pathlib, sys, time
            counter = pathlib.Path({str(counter)!r})
            n = int(counter.read_text()) if counter.exists() else 0
            counter.write_text(str(n + 1))
            if n < {crashes}:
                print(f"boom {{n}}: database is gone", file=sys.stderr, flush=True)
                sys.exit(3)
            time.sleep(3600)
        """)
    )


def subject(mail: email.message.Message) -> str:
    """A mail's Subject as text: decoded, unfolded, spaces as in the title apprise sent."""
    decoded = str(email.header.make_header(email.header.decode_header(mail["Subject"])))
    return " ".join(decoded.split())


def same_by_mail(smtp: SmtpReceiver, titles: list[str]) -> None:
    """The SMTP server got one mail per webhook message, with the same titles."""
    subjects = sorted(subject(smtp.next()) for _ in titles)
    assert subjects == sorted(" ".join(t.split()) for t in titles)
    assert smtp.mails.empty()


def metric(daemon: SentinelProcess, line_start: str) -> float:
    body = daemon.api("GET", "/metrics").text
    (value,) = [line.rsplit(" ", 1)[1] for line in body.splitlines() if line.startswith(line_start)]
    return float(value)


def test_crash_restart_reaches_webhook_and_mail(
    sentinel: Start, webhook: WebhookReceiver, smtp: SmtpReceiver, tmp_path: Path
) -> None:
    """A crash sends one message to the webhook and by mail (plain text)."""
    daemon = sentinel(f"""
        [notify]
        urls = ["{webhook.url()}", "{smtp.url()}"]
        batch = "300ms"
        events = ["restart", "fatal"]
        [programs.crashy]
        command = {crashes_then_stays_up(tmp_path / "n", 1)}
        start_seconds = 0
        backoff = {{ initial = "0s" }}
    """)
    daemon.wait_event(lambda e: e["event"] == "restart")
    message = webhook.next()
    assert message["title"] == f"[sentinel@{HOST}] crashy restarted (exited with 3)"
    assert message["type"] == "warning"
    body = message["message"]
    assert "exit code: 3" in body and "restarts: 1" in body and "state: " in body
    assert "boom 0: database is gone" in body  # the last lines of the log
    mail = smtp.next()
    assert mail["Subject"] == message["title"]
    assert mail.get_content_type() == "text/plain"
    assert "boom 0: database is gone" in mail.get_payload(decode=True).decode()


def test_a_crash_mail_keeps_its_traceback_line_for_line(
    sentinel: Start, smtp: SmtpReceiver, tmp_path: Path
) -> None:
    """A crash loop's mail is plain text with the traceback as the program wrote it: line
    breaks, indentation and `<module>` intact (no HTML with its tags eaten); the crash is one
    message, told with why and when it restarts; the dashboard link is filled in."""
    crasher = json.dumps(
        child("""
            import time
            def connect():
                raise ConnectionError("db <primary> & replica are gone")
            time.sleep(0.15)  # past the floor on the restart rate: the first restart is at once
            connect()
        """)
    )
    daemon = sentinel(f"""
        [notify]
        urls = ["{smtp.url()}"]
        batch = "0s"
        events = ["restart", "backoff"]
        dashboard_url = "https://grafana.example/d/sentinel-overview?var-program={{program}}"
        [programs.loop]
        command = {crasher}
        start_seconds = 0
        backoff = {{ initial = "5s", jitter = 0 }}
    """)
    daemon.wait_event(lambda e: e["event"] == "backoff", timeout=15)
    # The first crash (restarted at once) and the second (backing off), each one message.
    mails = {subject(m): m for m in (smtp.next(), smtp.next())}
    assert sorted(mails) == [
        f"[sentinel@{HOST}] loop exited with 1; restarting in 5s (attempt 2)",
        f"[sentinel@{HOST}] loop restarted (exited with 1)",
    ]
    assert {m.get_content_type() for m in mails.values()} == {"text/plain"}
    first, second = (m.get_payload(decode=True).decode() for m in mails.values())
    traceback = [
        "Traceback (most recent call last):",
        '  File "<string>", line 6, in <module>',
        '  File "<string>", line 4, in connect',
        "ConnectionError: db <primary> & replica are gone",
    ]
    for body in (first, second):
        lines = body.splitlines()
        start = lines.index(traceback[0])
        assert lines[start : start + 4] == traceback, body
        assert "dashboard: https://grafana.example/d/sentinel-overview?var-program=loop" in body
    assert smtp.mails.empty()  # the restart that ends the 5 s backoff comes later, untold


def test_liveness_restart_and_fatal_messages(
    sentinel: Start, webhook: WebhookReceiver, smtp: SmtpReceiver, closed_port: int
) -> None:
    """A liveness restart says what failed; FATAL is a failure message; both by mail too."""
    daemon = sentinel(f"""
        [notify]
        urls = ["{webhook.url()}", "{smtp.url()}"]
        batch = "1s"
        events = ["restart", "fatal", "unhealthy"]
        [programs.hung]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "0s" }}
        [programs.hung.liveness]
        tcp = {{ port = {closed_port} }}
        initial_delay = "2s"  # after broken's FATAL has gone out in a digest of its own
        period = "100ms"
        failure_threshold = 3
        [programs.broken]
        command = "/no/such/binary"
        start_retries = 0
    """)
    daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "hung")
    messages = [webhook.next(), webhook.next()]
    fatal = next(m for m in messages if "broken FATAL" in m["title"])
    assert fatal["type"] == "failure" and "No such file or directory" in fatal["title"]
    # unhealthy and restart arrive together: one digest, typed by its worst alert
    digest = next(m for m in messages if "hung" in m["title"])
    assert digest["title"].startswith(
        f"[sentinel@{HOST}] 2 alerts: hung unhealthy (liveness failed 3x: 127.0.0.1:{closed_port}: connection refused)"
    )
    assert (
        f"hung restarted (liveness failed 3x: 127.0.0.1:{closed_port}: connection refused)"
        in digest["title"]
    )
    assert digest["type"] == "failure" and "exit code: -15" in digest["message"]
    same_by_mail(smtp, [m["title"] for m in messages])


def test_crash_loop_pages_once_then_recovers(
    sentinel: Start, webhook: WebhookReceiver, smtp: SmtpReceiver, tmp_path: Path
) -> None:
    """A crash loop yields one restart message, one flapping message and then one recovered,
    by webhook and by mail; what was held back is told."""
    daemon = sentinel(f"""
        [notify]
        urls = ["{webhook.url()}", "{smtp.url()}"]
        batch = "100ms"
        events = ["restart", "flapping", "recovered"]
        [programs.loop]
        command = {crashes_then_stays_up(tmp_path / "n", 6)}
        start_seconds = 0
        backoff = {{ initial = "50ms", max = "50ms", jitter = 0 }}
        flapping = {{ restarts = 3, window = "2s" }}
    """)
    daemon.wait_event(lambda e: e["event"] == "recovered", timeout=15)
    restarts = [e for e in daemon.events if e["event"] == "restart"]
    assert len(restarts) == 6
    daemon.wait_event(lambda e: e["event"] == "notification" and "recovered" in e["title"])
    kinds = [m["title"].split("] loop ", 1)[1].split(" ")[0] for m in webhook.drain()]
    assert sorted(kinds) == ["is", "recovered", "restarted"], kinds  # "is flapping"
    flapping = next(m for m in webhook.received if "is flapping" in m["title"])
    assert flapping["type"] == "failure" and "3 restarts in 2s" in flapping["title"]
    assert next(m for m in webhook.received if "recovered" in m["title"])["type"] == "success"
    told = re.findall(
        r"\((\d+) restart alerts for loop were suppressed since",
        "".join(m["message"] for m in webhook.received),
    )
    assert sum(int(n) for n in told) == 5
    assert metric(daemon, 'sentinel_notifications_total{result="suppressed"}') == 5
    daemon.wait_event(
        lambda e: (
            e["event"] == "notification" and "recovered" in e["title"] and "mailto" in e["target"]
        )
    )
    assert metric(daemon, 'sentinel_notifications_total{result="sent"}') == 6
    same_by_mail(smtp, [m["title"] for m in webhook.received])


def test_cooldown_summarises_what_it_suppressed(sentinel: Start, webhook: WebhookReceiver) -> None:
    """Within the cooldown alerts are counted, not sent; the next message says how many."""
    cooldown = 2.0
    daemon = sentinel(f"""
        [notify]
        urls = ["{webhook.url()}"]
        batch = "50ms"
        cooldown = "{cooldown}s"
        events = ["restart"]
        [programs.victim]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("victim", "RUNNING"))

    def restart() -> dict[str, object]:
        assert daemon.api("POST", "/api/v1/programs/victim/restart").json()["ok"]
        return daemon.next_event(lambda e: e["event"] == "restart")

    first = restart()
    assert "victim restarted (restart requested)" in webhook.next()["title"]
    for _ in range(3):
        restart()
        daemon.next_event(lambda e: e["event"] == "notification" and e["result"] == "suppressed")
    assert metric(daemon, 'sentinel_notifications_total{result="suppressed"}') == 3
    # The cooldown is the behaviour under test: the next alert must come after it, by the clock.
    while time.time() < first["timestamp"] + cooldown + 0.1:
        time.sleep(0.05)
    restart()
    assert "(3 restart alerts for victim were suppressed since" in webhook.next()["message"]


def test_tags_route_each_programs_alerts(sentinel: Start, tmp_path: Path) -> None:
    """A program's alerts go only to URLs with its tags; an untagged program's go everywhere;
    [notify].urls get every program's alerts."""
    web_team, db_team, oncall = WebhookReceiver(), WebhookReceiver(), WebhookReceiver()
    try:
        apprise_config = tmp_path / "apprise.yml"
        apprise_config.write_text(
            f"urls:\n  - {web_team.url()}:\n    - tag: team-web\n  - {db_team.url()}:\n    - tag: team-db\n"
        )
        daemon = sentinel(f"""
            [notify]
            urls = ["{oncall.url()}"]
            config = "{apprise_config}"
            batch = "100ms"
            events = ["restart"]
            [programs.web]
            command = {SLEEPER}
            notify_tags = ["team-web"]
            [programs.db]
            command = {SLEEPER}
            notify_tags = ["team-db"]
            [programs.cron]
            command = {SLEEPER}
            [programs.quiet]
            command = {SLEEPER}
            alerts = false
        """)
        for name in ("web", "db", "cron", "quiet"):
            daemon.wait_event(state_is(name, "RUNNING"))
        for name in ("web", "db", "cron", "quiet"):
            assert daemon.cli("restart", name).returncode == 0
        for _ in range(7):  # web + cron to the web team; db + cron to the db team; 3 on call
            daemon.wait_event(lambda e: e["event"] == "notification" and e["result"] == "sent")
            daemon.events.clear()

        def programs(receiver: WebhookReceiver, count: int) -> list[str]:
            return sorted(
                receiver.next()["title"].split("] ")[1].split(" ")[0] for _ in range(count)
            )

        assert programs(web_team, 2) == ["cron", "web"]
        assert programs(db_team, 2) == ["cron", "db"]
        assert programs(oncall, 3) == ["cron", "db", "web"]
        assert web_team.messages.empty() and db_team.messages.empty() and oncall.messages.empty()
    finally:
        web_team.close()
        db_team.close()
        oncall.close()


def test_dead_channels_do_not_delay_restarts(
    sentinel: Start, closed_port: int, webhook: WebhookReceiver
) -> None:
    """A receiver that hangs and one that refuses do not slow restarts down (measured)."""
    hanging = WebhookReceiver(hang=True)
    try:
        daemon = sentinel(f"""
            [notify]
            urls = ["{hanging.url()}", "json://127.0.0.1:{closed_port}/refused"]
            batch = "0s"
            cooldown = "0s"
            retries = 2
            events = ["restart", "backoff"]
            [programs.victim]
            command = {SLEEPER}
            start_seconds = 0
            backoff = {{ initial = "0s" }}
        """)
        daemon.wait_event(state_is("victim", "RUNNING"))
        # A first restart, unmeasured, gives the spawn time the floor counts from.
        os.kill(daemon.status("victim")["pid"], signal.SIGKILL)
        spawned = daemon.next_event(state_is("victim", "STARTING"))
        daemon.next_event(state_is("victim", "RUNNING"))
        delays = []
        for _ in range(10):
            pid = daemon.status("victim")["pid"]
            os.kill(pid, signal.SIGKILL)
            exited = daemon.next_event(
                lambda e: e["event"] == "state_changed" and e["old"] == "RUNNING"
            )
            # The restart floor holds a respawn to one per MIN_SPAWN_INTERVAL; measure past it.
            due = max(exited["timestamp"], spawned["timestamp"] + MIN_SPAWN_INTERVAL)
            spawned = daemon.next_event(state_is("victim", "STARTING"))
            daemon.next_event(state_is("victim", "RUNNING"))
            delays.append(spawned["timestamp"] - due)
        delays.sort()
        print(
            f"restart delay with dead channels: p50 {delays[5] * 1000:.1f} ms, max {delays[-1] * 1000:.1f} ms"
        )
        assert delays[5] < 0.05 and delays[-1] < 0.5
        assert daemon.status("victim")["restarts"] == 11
    finally:
        hanging.close()


def test_secrets_never_show(
    sentinel: Start, closed_port: int, webhook: WebhookReceiver, tmp_path: Path
) -> None:
    """Passwords and tokens in URLs appear in no log line, event or command output."""
    secret = "hunter2-s3cr3t"
    daemon = sentinel(f"""
        [notify]
        urls = ["json://ops:{secret}@127.0.0.1:{closed_port}/x", "{webhook.url(f"ops:{secret}@")}"]
        batch = "50ms"
        retries = 0
        events = ["restart"]
        [programs.victim]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("victim", "RUNNING"))
    assert daemon.cli("restart", "victim").returncode == 0
    failed = daemon.wait_event(lambda e: e["event"] == "notification" and e["result"] == "failed")
    assert failed["target"] == f"json://ops:****@127.0.0.1:{closed_port}/x"
    message = webhook.next()
    assert secret not in json.dumps(message)
    test = daemon.cli("notify-test", "-c", str(daemon.config_path))
    assert test.returncode == 1
    assert f"FAILED  json://ops:****@127.0.0.1:{closed_port}/x" in test.stdout
    assert f"ok      json://ops:****@127.0.0.1:{webhook.port}/hook" in test.stdout
    assert webhook.next()["title"] == f"[sentinel@{HOST}] test notification"
    assert daemon.terminate() == 0
    for text in (daemon.log(), test.stdout, test.stderr, json.dumps(daemon.events)):
        assert secret not in text


def test_bad_notify_url_is_a_config_error(tmp_path: Path) -> None:
    """A URL apprise cannot use is rejected by check-config, naming the key."""
    path = tmp_path / "s.toml"
    path.write_text('[notify]\nurls = ["nonsense://what"]\n')
    result = subprocess.run(
        [sys.executable, "-m", "sentinel", "check-config", "-c", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert f"{path}: notify.urls[0]: expected an apprise URL" in result.stderr
