"""Deciding what to send: event filtering, cooldown and its summary, recovery (fake clock)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sentinel.config import load
from sentinel.errors import ConfigError
from sentinel.events import (
    BackoffStarted,
    Event,
    Fatal,
    Flapping,
    Healthy,
    NotificationResult,
    Recovered,
    Restart,
    StateChanged,
    Unhealthy,
)
from sentinel.model import NotifySection
from sentinel.notify import Alert, Notifier, ProcessContext, check
from sentinel.snapshot import ProbeStatus, ProcessSnapshot
from sentinel.states import Health, ProcessState, RestartReason

SNAPSHOT = ProcessSnapshot(
    name="web",
    program="web",
    group="web",
    priority=999,
    state=ProcessState.RUNNING,
    pid=42,
    exit_code=1,
    restarts=1,
    uptime_seconds=3.0,
    start_time=1795600000.0,
    health=Health.UNHEALTHY,
    ready=False,
    probes=(ProbeStatus("liveness", False, "HTTP 503", 0.002),),
    configured_probes=("liveness",),
    backoff_attempt=1,
    backoff_delay_seconds=0.0,
    backoff_remaining_seconds=0.0,
    flapping=False,
    detail="up for 1s",
)
CONTEXT = ProcessContext(
    tags=("team-web",), enabled=True, snapshot=SNAPSHOT, read_tail=lambda: "Traceback: boom"
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def notifier(clock: Clock, published: list[Event], **section: object) -> Notifier:
    config = NotifySection.model_validate({"urls": ["json://127.0.0.1:9/x"], **section})
    return Notifier(
        config,
        lambda name: CONTEXT if name != "off" else None,
        published.append,
        hostname="host",
        clock=clock,
    )


def queued(n: Notifier) -> list[Alert]:
    alerts = []
    while not n._queue.empty():
        alerts.append(n._queue.get_nowait())
    return alerts


def restart(process: str = "web") -> Restart:
    return Restart(
        process=process,
        group=process,
        reason=RestartReason.EXITED,
        exit_code=1,
        detail="exited with 1",
        restarts=1,
    )


def test_cooldown_suppresses_counts_and_summarises() -> None:
    """Within the cooldown an alert is counted as suppressed; the next one says how many."""
    clock, published = Clock(), []
    n = notifier(clock, published, cooldown="5m")
    n.on_event(restart())
    for _ in range(4):
        clock.now += 10
        n.on_event(restart())
    assert len(queued(n)) == 1
    assert [e.result for e in published if isinstance(e, NotificationResult)] == ["suppressed"] * 4
    clock.now += 300
    n.on_event(restart())
    (alert,) = queued(n)
    assert "(4 restart alerts for web were suppressed since" in alert.footer


def test_alert_content_and_routing() -> None:
    """Headline, apprise type, body with state, exit code, restarts, the failing probe and the
    log's tail (read by the worker, not on the bus); the program's tags."""
    n = notifier(Clock(), [])
    n.on_event(restart())
    (alert,) = queued(n)
    assert alert.headline == "web restarted (exited with 1)"
    assert (alert.notify_type, alert.tags) == ("warning", ("team-web",))
    assert "Traceback" not in alert.body and alert.read_tail is not None
    text = alert.text(alert.read_tail())
    for line in ("state: RUNNING", "exit code: 1", "restarts: 1", "probe: liveness: HTTP 503"):
        assert line in alert.body
    assert text.endswith("\n\nlast lines of the log:\nTraceback: boom")


def test_only_configured_events_and_enabled_programs() -> None:
    """Events not listed in [notify].events, and programs with alerts = false, send nothing."""
    n = notifier(Clock(), [], events=["fatal"])
    n.on_event(restart())
    n.on_event(Fatal(process="off", group="off", detail="x", exit_code=1))
    assert queued(n) == []
    n.on_event(Fatal(process="web", group="web", detail="4 failed starts", exit_code=2))
    assert [a.notify_type for a in queued(n)] == ["failure"]


def test_healthy_after_unhealthy_is_a_recovery() -> None:
    """`healthy` is news only after `unhealthy`: then it is a `recovered` alert."""
    n = notifier(Clock(), [])
    n.on_event(Healthy(process="web", group="web", detail="HTTP 200"))
    assert queued(n) == []
    n.on_event(
        Unhealthy(
            process="web", group="web", probe="liveness", failures=3, detail="liveness failed 3x"
        )
    )
    n.on_event(Healthy(process="web", group="web", detail="HTTP 200"))
    assert [(a.kind, a.notify_type) for a in queued(n)] == [
        ("unhealthy", "failure"),
        ("recovered", "success"),
    ]


def test_digest_of_several_alerts() -> None:
    """Alerts batched together make one message titled by count, typed by the worst, the most
    severe first (a FATAL must not read after a restart)."""
    n = notifier(Clock(), [])
    alerts = [
        Alert("web", "restart", "web restarted (x)", "b1", "", "warning", ()),
        Alert("db", "fatal", "db FATAL (y)", "b2", "", "failure", ()),
    ]
    title, body, kind = n._digest([(a, a.text("")) for a in alerts])
    assert title == "[sentinel@host] 2 alerts: db FATAL (y); web restarted (x)"
    assert kind == "failure" and body.index("== db FATAL (y)\nb2") < body.index("== web")


def test_a_crash_loop_pages_once_while_it_flaps() -> None:
    """Restart and backoff alerts of a flapping program are held back (and counted) until it
    recovers; the recovery says what was held back."""
    clock, published = Clock(), []
    n = notifier(clock, published, cooldown="0s")
    n.on_event(restart())
    n.on_event(Flapping(process="web", group="web", restarts=5, window=600.0, stopped=False))
    for _ in range(50):  # each crash: a backoff, then its restart (one crash, one count)
        clock.now += 60
        n.on_event(BackoffStarted(process="web", group="web", attempt=5, delay=60.0))
        n.on_event(restart())
    n.on_event(Recovered(process="web", group="web", detail="no restart for 600s"))
    kinds = [a.kind for a in queued(n)]
    assert kinds == ["restart", "flapping", "recovered"]
    suppressed = [e for e in published if isinstance(e, NotificationResult)]
    assert len(suppressed) == 50 and {e.result for e in suppressed} == {"suppressed"}
    n.on_event(restart())  # after the episode, restarts page again
    assert [a.kind for a in queued(n)] == ["restart"]


def test_what_was_suppressed_is_told_in_the_programs_next_message() -> None:
    """Suppressed alerts of one kind are summarised in the next message of any kind."""
    clock, published = Clock(), []
    n = notifier(clock, published, cooldown="5m")
    n.on_event(restart())
    clock.now += 10
    n.on_event(restart())
    n.on_event(restart())
    n.on_event(Fatal(process="web", group="web", detail="3 failed starts", exit_code=1))
    alerts = queued(n)
    assert [a.kind for a in alerts] == ["restart", "fatal"]
    assert "(2 restart alerts for web were suppressed since" in alerts[1].footer


def test_notify_tags_must_name_a_tag_some_url_has(tmp_path: Path) -> None:
    """A tag no URL carries (a typo) is a config error naming the program's key."""
    apprise_config = tmp_path / "apprise.yml"
    apprise_config.write_text("urls:\n  - json://127.0.0.1:9/x:\n    - tag: team-web\n")
    path = tmp_path / "sentinel.toml"
    path.write_text(
        f'[notify]\nconfig = "{apprise_config}"\n'
        '[programs.web]\ncommand = "x"\nnotify_tags = ["team-web"]\n'
        '[programs.db]\ncommand = "x"\nnotify_tags = ["tem-db"]\n'
    )
    with pytest.raises(ConfigError) as info:
        check(load(path))
    assert f"{path}: programs.db.notify_tags: expected tags of the [notify] config" in str(
        info.value
    )
    assert "'tem-db'" in str(info.value) and "programs.web" not in str(info.value)


def test_one_message_per_crash() -> None:
    """A crash that backs off is told once, by its backoff (with why it crashed); the restart
    that ends the backoff is not another message. A restart with no backoff before it is."""
    n = notifier(Clock(), [], cooldown="0s")
    n.on_event(BackoffStarted(process="web", group="web", attempt=2, delay=2.0))
    n.on_event(restart())
    (alert,) = queued(n)
    assert alert.headline == "web up for 1s; restarting in 2s (attempt 2)"
    n.on_event(BackoffStarted(process="web", group="web", attempt=3, delay=4.0))
    n.on_event(
        StateChanged(
            process="web", group="web", old=ProcessState.BACKOFF, new=ProcessState.STOPPED,
            pid=None, reason="stop requested",
        )
    )  # fmt: skip
    n.on_event(restart())  # a later crash, restarted at once: news again
    assert [a.kind for a in queued(n)] == ["backoff", "restart"]


def test_runbook_and_dashboard_links() -> None:
    """Configured URL templates are filled in (escaped) and end each message."""
    n = notifier(
        Clock(),
        [],
        runbook_url="https://wiki.example/runbooks/sentinel#{event}",
        dashboard_url="https://grafana.example/d/x?var-program={program}&var-host={host}",
    )
    n.on_event(restart())
    (alert,) = queued(n)
    assert alert.body.endswith(
        "\n\nrunbook: https://wiki.example/runbooks/sentinel#restart\n"
        "dashboard: https://grafana.example/d/x?var-program=web&var-host=host"
    )


def test_a_link_template_with_an_unknown_field_is_a_config_error() -> None:
    """A typo in a template is found when the config is read, not when an alert is sent."""
    with pytest.raises(ValueError, match=r"expected a URL with \{process\}"):
        NotifySection(runbook_url="https://wiki.example/{proces}")


def test_a_stopped_roll_and_a_watchdog_restart_alert() -> None:
    """A rolling restart that stopped is a `rolling` failure alert naming where; a watchdog
    restart is a `restart` saying why, and not told twice after its backoff."""
    from sentinel.events import RollingRestart  # noqa: PLC0415

    n = notifier(Clock(), [])
    for phase in ("started", "restarting", "ready", "restarting", "stopped"):
        n.on_event(
            RollingRestart(
                process="web_1",
                group="web",
                program="web",
                phase=phase,
                done=1,
                total=3,
                detail="web_1 not ready within 2s (RUNNING: no READY=1 yet); web_2 not restarted",
            )
        )
    (alert,) = queued(n)
    assert (alert.kind, alert.notify_type) == ("rolling", "failure")
    assert alert.headline == "web: rolling restart stopped at web_1"
    assert "web_2 not restarted" in alert.body

    n = notifier(Clock(), [])
    n.on_event(BackoffStarted(process="web", group="web", attempt=2, delay=1.0))
    n.on_event(
        Restart(
            process="web",
            group="web",
            reason=RestartReason.WATCHDOG,
            exit_code=-15,
            detail="no WATCHDOG=1 within 30s",
            restarts=2,
        )
    )
    assert [a.kind for a in queued(n)] == ["backoff"]  # one message per hang
    n.on_event(
        Restart(
            process="web",
            group="web",
            reason=RestartReason.WATCHDOG,
            exit_code=-15,
            detail="no WATCHDOG=1 within 30s",
            restarts=3,
        )
    )
    (alert,) = queued(n)
    assert alert.headline == "web restarted (no WATCHDOG=1 within 30s)"
