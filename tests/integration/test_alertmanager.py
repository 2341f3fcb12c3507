"""A fleet on the shipped configs: two real sentinels, a real Prometheus scraping their
[metrics] listeners (file_sd, basic auth) with the shipped rules, and a real Alertmanager
routing, grouping and inhibiting with conf/alertmanager/alertmanager.yml, notifying a loopback
webhook in place of the pager and the chat channel.
"""

from __future__ import annotations

import http.server
import json
import re
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sentinel.auth import hash_password
from tests.conftest import require_binary
from tests.integration.conftest import StartSentinel, child, state_is, wait_until
from tests.integration.monitoring import (
    ALERTMANAGER_CONFIG,
    GRAFANA,
    RUNBOOKS,
    SCRAPE_CONFIG,
    Alertmanager,
    Prometheus,
    alertmanager_config,
    metrics_address,
    rules_firing_at_once,
    scrape_config,
)

Notification = dict[str, Any]
PASSWORD = "scrape-me"
# The programs of every host; each fails at once where $BROKEN names it (a host-local fault:
# a missing mount, a dependency down there).
COMMAND = child("""
    import os, sys, time
    if sys.argv[1] in os.environ.get("BROKEN", "").split():
        sys.exit(1)
    time.sleep(3600)
""")
# The same config on both hosts, as a fleet deploys it.
CONFIG = """
    [metrics]
    listen = "127.0.0.1:0"
    users = [{{ name = "{user}", password_hash = "{password_hash}" }}]
    [programs.web]
    command = {web}
    instances = 2
    start_seconds = "1s"
    start_retries = 1000
    backoff = {{ initial = "100ms", max = "200ms" }}
    [programs.worker]
    command = {worker}
    start_seconds = "1s"
    start_retries = 0
    [programs.cron]
    command = {cron}
    start_seconds = "1s"
"""


class Webhook:
    """A loopback webhook receiver, bound to port 0 for the whole test, that records each
    notification Alertmanager posts (its JSON body) and wakes whoever waits for one."""

    def __init__(self) -> None:
        self.received: list[Notification] = []
        self._changed = threading.Condition()
        webhook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with webhook._changed:
                    webhook.received.append(json.loads(body))
                    webhook._changed.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def wait_for(self, match: Callable[[Notification], bool], timeout: float) -> Notification:
        """The first notification (received before or arriving now) that matches."""

        def first() -> Notification | None:
            return next((n for n in self.received if match(n)), None)

        with self._changed:
            found = self._changed.wait_for(first, timeout)
            if found is None:
                got = [describe(n) for n in self.received]
                raise AssertionError(f"no such notification within {timeout:.0f}s; got {got}")
        return found

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(10)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    receiver = Webhook()
    yield receiver
    receiver.close()


def describe(notification: Notification) -> tuple[str, dict[str, str], list[str | None]]:
    """(receiver, group labels, the process of each alert): enough to read a failure."""
    processes = [alert["labels"].get("process") for alert in notification["alerts"]]
    return notification["receiver"], notification["groupLabels"], processes


def commented_basic_auth() -> dict[str, str]:
    """The basic_auth block that prometheus.yml shows in comments, uncommented."""
    text = SCRAPE_CONFIG.read_text()
    block = re.search(r"^( *)# (basic_auth:\n(?:\1#   .*\n)+)", text, re.MULTILINE)
    assert block, f"no commented basic_auth block in {SCRAPE_CONFIG}"
    auth: dict[str, str] = yaml.safe_load(re.sub(rf"^{block[1]}# ", "", block[2], flags=re.M))[
        "basic_auth"
    ]
    return auth


def render(template: str, notification: Notification, directory: Path) -> str:
    """A receiver's template rendered by amtool with a notification's data (the webhook's
    JSON is Alertmanager's template data)."""
    data = directory / "template-data.json"
    data.write_text(json.dumps(notification))
    done = subprocess.run(
        [
            require_binary("amtool"), "template", "render", f"--template.data={data}",
            f"--template.glob={directory / 'none' / '*.tmpl'}", f"--template.text={template}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_a_crash_loop_on_one_host_pages_once_per_program(
    sentinel: StartSentinel,
    prometheus: Callable[[dict[str, Any]], Prometheus],
    alertmanager: Callable[[dict[str, Any]], Alertmanager],
    webhook: Webhook,
    tmp_path: Path,
) -> None:
    """A crash loop of a program with two instances on one of two hosts reaches the pager as
    one notification for that host and program, with its runbook link; the warnings go to the
    chat; FATAL inhibits the same process's Down; the healthy host sends nothing."""
    auth = commented_basic_auth()
    password_file = tmp_path / "sentinel-password"
    password_file.write_text(PASSWORD + "\n")
    config = CONFIG.format(
        user=auth["username"],
        password_hash=hash_password(PASSWORD),
        **{name: json.dumps([*COMMAND, name]) for name in ("web", "worker", "cron")},
    )
    broken = sentinel(config, name="web1", env={"BROKEN": "web worker"})
    healthy = sentinel(config, name="web2")
    broken.wait_event(lambda e: e["event"] == "fatal" and e["process"] == "worker")
    for process in ("web_0", "web_1"):
        broken.wait_event(lambda e, p=process: e["event"] == "backoff" and e["process"] == p)
    broken.wait_event(state_is("cron", "RUNNING"))
    for process in ("web_0", "web_1", "worker", "cron"):
        healthy.wait_event(state_is(process, "RUNNING"))

    manager = alertmanager(alertmanager_config(webhook.url))
    hosts = [metrics_address(broken), metrics_address(healthy)]
    scrape = scrape_config(hosts, rules_firing_at_once(tmp_path), manager.address)
    (job,) = scrape["scrape_configs"]
    job["basic_auth"] = {**auth, "password_file": str(password_file)}
    server = prometheus(scrape)
    check_notifications(server, manager, webhook, hosts, tmp_path)


def check_notifications(
    server: Prometheus,
    manager: Alertmanager,
    webhook: Webhook,
    hosts: list[str],
    directory: Path,
) -> None:
    deadline = time.monotonic() + 60  # for everything below, together

    def left() -> float:
        return max(deadline - time.monotonic(), 0.1)

    bad, good = hosts  # the broken host's [metrics] address, then the healthy one's

    def group(alertname: str, program: str) -> Callable[[Notification], bool]:
        labels = {"alertname": alertname, "job": "sentinel", "instance": bad, "program": program}
        return lambda n: n["groupLabels"] == labels

    # Per process in the rules, one notification per program here: both instances at once.
    down = webhook.wait_for(group("SentinelProgramDown", "web"), left())
    # Per program in the rules already.
    looping = webhook.wait_for(group("SentinelProgramCrashLooping", "web"), left())
    fatal = webhook.wait_for(group("SentinelProgramFatal", "worker"), left())

    # FATAL fires SentinelProgramDown too (after 5 minutes; at once with `for: 0s`):
    # Alertmanager has it, inhibited by SentinelProgramFatal of the same process.
    def inhibited() -> list[dict[str, Any]]:
        alerts = manager.alerts('alertname="SentinelProgramDown"', 'process="worker"')
        return [a for a in alerts if a["status"]["inhibitedBy"]]

    try:
        (worker_down,) = wait_until(inhibited, timeout=left(), what="the inhibition")
    except AssertionError as exc:
        held = [(a["labels"], a["status"]) for a in manager.alerts()]
        raise AssertionError(f"{exc}; Alertmanager held {held}") from None
    assert worker_down["status"]["state"] == "suppressed", worker_down
    assert worker_down["labels"]["instance"] == bad, worker_down

    # What the pager got for the crash loop: one notification naming both processes.
    assert down["receiver"] == "page" and down["status"] == "firing", describe(down)
    assert sorted(alert["labels"]["process"] for alert in down["alerts"]) == ["web_0", "web_1"]
    assert {alert["status"] for alert in down["alerts"]} == {"firing"}
    assert down["commonLabels"]["severity"] == "critical", down["commonLabels"]
    dashboard = (
        f"{GRAFANA.rstrip('/')}/d/sentinel-overview/sentinel?var-job=sentinel"
        f"&var-instance={urllib.parse.quote_plus(bad)}&var-program=web"
    )
    assert down["commonAnnotations"]["runbook_url"] == f"{RUNBOOKS}#sentinelprogramdown"
    assert down["commonAnnotations"]["dashboard_url"] == dashboard
    # The warnings went to the chat: the crash loop, one alert for the program.
    assert looping["receiver"] == "chat", describe(looping)
    (loop_alert,) = looping["alerts"]
    assert "process" not in loop_alert["labels"], loop_alert
    assert loop_alert["annotations"]["runbook_url"] == f"{RUNBOOKS}#sentinelprogramcrashlooping"
    assert fatal["receiver"] == "page", describe(fatal)
    assert [alert["labels"]["process"] for alert in fatal["alerts"]] == ["worker"]

    # Both hosts were scraped all along (through basic auth): the healthy one is quiet
    # because it is healthy, not unseen.
    up = server.query('sum by (instance) (sentinel_program_up{job="sentinel"})')
    assert {r["metric"]["instance"]: float(r["value"][1]) for r in up} == {bad: 1, good: 4}

    received = list(webhook.received)
    for notification in received:
        assert notification["groupLabels"].keys() == {"alertname", "job", "instance", "program"}
        for alert in notification["alerts"]:
            labels = alert["labels"]
            assert labels["instance"] == bad, describe(notification)  # nothing from the healthy
            assert not {"sentinel_runbook_url", "sentinel_grafana_url"} & labels.keys(), labels
            assert (labels["alertname"], labels.get("process")) != ("SentinelProgramDown", "worker")
            assert alert["annotations"]["runbook_url"] == (
                f"{RUNBOOKS}#{labels['alertname'].lower()}"
            ), alert
    # However often Alertmanager flushed since: the crash loop paged once.
    assert [describe(n) for n in received if group("SentinelProgramDown", "web")(n)] == [
        describe(down)
    ]

    # The shipped receivers' templates, on what was sent: the page lists both processes and
    # links to the runbook and dashboard; the chat message names host and program.
    receivers = {r["name"]: r for r in yaml.safe_load(ALERTMANAGER_CONFIG.read_text())["receivers"]}
    (pagerduty,) = receivers["page"]["pagerduty_configs"]
    assert render(pagerduty["description"], down, directory) == (
        "Process web_0 (program web) is down. Process web_1 (program web) is down."
    )
    assert [render(link["href"], down, directory) for link in pagerduty["links"]] == [
        f"{RUNBOOKS}#sentinelprogramdown",
        dashboard,
    ]
    (slack,) = receivers["chat"]["slack_configs"]
    assert render(slack["title"], looping, directory) == (
        f"[FIRING] SentinelProgramCrashLooping on {bad}: web"
    )
    assert render(slack["title_link"], looping, directory) == dashboard
    text = render(slack["text"], looping, directory)
    assert text.startswith(loop_alert["annotations"]["description"]), text
    assert text.endswith(f"Runbook: {RUNBOOKS}#sentinelprogramcrashlooping"), text
