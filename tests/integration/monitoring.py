"""A real Prometheus and a real Alertmanager for the tests, on the shipped configs.

Both listen on 127.0.0.1:0 and do not say which port they got (except in a log line);
`listening_ports` reads it back from /proc: the socket inodes among the process's fds, matched
against the LISTEN entries of /proc/net/tcp. Nothing ever picks a "free" port and hopes.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.integration.conftest import SentinelProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
SCRAPE_CONFIG = ROOT / "conf" / "prometheus" / "prometheus.yml"
ALERT_RULES = ROOT / "conf" / "prometheus" / "sentinel-alerts.yml"
ALERTMANAGER_CONFIG = ROOT / "conf" / "alertmanager" / "alertmanager.yml"
# The link base URLs, set as external labels the way prometheus.yml's comments say.
RUNBOOKS = "https://wiki.example.com/sentinel/runbooks.md"
GRAFANA = "https://grafana.example.com/"


def listening_ports(pid: int) -> set[int]:
    """TCP ports `pid` listens on: its socket fds' inodes, matched in /proc/net/tcp{,6}."""
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, state, inode = fields[1], fields[3], fields[9]
                if state == "0A" and inode in inodes:  # 0A: TCP_LISTEN
                    ports.add(int(local.rsplit(":", 1)[1], 16))
    return ports


def metrics_address(daemon: SentinelProcess) -> str:
    """The [metrics] listener's address, from sentinel's log (port 0 binds a free one)."""
    found = wait_until(
        lambda: re.search(r"metrics on https?://([\d.:]+)/metrics", daemon.log()),
        what="the metrics listener",
    )
    return str(found[1])


class Server:
    """A real server process on 127.0.0.1:0 in `directory`, its config written there first
    (as JSON, which is YAML), and an HTTP client for it."""

    name = "server"
    ready_path = "/-/ready"

    def __init__(self, argv: list[str], directory: Path, config: dict[str, Any]) -> None:
        directory.mkdir()
        self.directory = directory
        self.config_path = directory / f"{self.name}.yml"
        self.config_path.write_text(json.dumps(config))
        self.log_path = directory / f"{self.name}.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*argv, f"--config.file={self.config_path}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=directory,
            )  # fmt: skip
        self.port: int = wait_until(self._port, timeout=30, what=f"{self.name} to listen")
        self.address = f"127.0.0.1:{self.port}"
        self.client = httpx.Client(base_url=f"http://{self.address}", timeout=10)
        wait_until(self._ready, timeout=30, what=f"{self.name} to be ready")

    def _port(self) -> int | None:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        ports = listening_ports(self.proc.pid)
        assert len(ports) <= 1, ports
        return ports.pop() if ports else None

    def _ready(self) -> bool:
        return self.client.get(self.ready_path).status_code == 200

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self.client.close()
        assert code == 0, self.log()


class Prometheus(Server):
    """A real Prometheus server, and its HTTP API."""

    name = "prometheus"

    def __init__(self, binary: str, directory: Path, config: dict[str, Any]) -> None:
        argv = [binary, f"--storage.tsdb.path={directory / 'tsdb'}"]
        super().__init__([*argv, "--web.listen-address=127.0.0.1:0"], directory, config)

    def api(self, path: str, **params: str) -> Any:
        response = self.client.get(f"/api/v1/{path}", params=params)
        body = response.json()
        assert body["status"] == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query; a bad expression fails at once (not after a timeout)."""
        data = self.api("query", query=expr)
        result: list[dict[str, Any]] = data["result"]
        return result if data["resultType"] in ("vector", "matrix") else [{"value": result}]


class Alertmanager(Server):
    """A real Alertmanager, alone (an empty cluster address: no peers, no gossip port), its
    state (silences, the notification log) in `directory`."""

    name = "alertmanager"

    def __init__(self, binary: str, directory: Path, config: dict[str, Any]) -> None:
        argv = [binary, f"--storage.path={directory / 'data'}", "--cluster.listen-address="]
        super().__init__([*argv, "--web.listen-address=127.0.0.1:0"], directory, config)

    def alerts(self, *matchers: str) -> list[dict[str, Any]]:
        """The alerts it holds (API v2), with their state: active, suppressed (silenced or
        inhibited, and by what) or unprocessed."""
        response = self.client.get("/api/v2/alerts", params=[("filter", m) for m in matchers])
        assert response.status_code == 200, response.text
        alerts: list[dict[str, Any]] = response.json()
        return alerts


def rules_firing_at_once(directory: Path) -> Path:
    """The shipped alert rules with every `for:` set to 0s: a test cannot wait 5-15 minutes."""
    rules = yaml.safe_load(ALERT_RULES.read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule["for"] = "0s"
    path = directory / "sentinel-alerts.yml"
    path.write_text(json.dumps(rules))
    return path


def scrape_config(
    targets: list[str], rule_file: Path, alertmanager: str | None = None
) -> dict[str, Any]:
    """The shipped prometheus.yml, scraping `targets` every second with `rule_file`, the
    link base URLs set as its comments say, and alerts sent to `alertmanager` (or nowhere).
    The targets go through the job's file_sd_configs, in a file written next to `rule_file`
    with an entry per host, as sentinel-targets.yml has them."""
    config: dict[str, Any] = yaml.safe_load(SCRAPE_CONFIG.read_text())
    config["global"] = {
        "scrape_interval": "1s",
        "scrape_timeout": "1s",
        "evaluation_interval": "1s",
        "external_labels": {
            "sentinel_runbook_url": RUNBOOKS,
            "sentinel_grafana_url": GRAFANA,
        },
    }
    config["rule_files"] = [str(rule_file)]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "sentinel"]
    targets_file = rule_file.with_name("sentinel-targets.yml")
    targets_file.write_text(json.dumps([{"targets": [target]} for target in targets]))
    (file_sd,) = job["file_sd_configs"]
    file_sd["files"] = [str(targets_file)]
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    if alertmanager:
        alertmanagers["static_configs"] = [{"targets": [alertmanager]}]
    else:
        del config["alerting"]["alertmanagers"]
    return config


def alertmanager_config(webhook: str) -> dict[str, Any]:
    """The shipped alertmanager.yml with its route, grouping and inhibition as they are, but
    timings of a second (group_wait, group_interval) and every receiver, under its own name,
    a webhook to `webhook`/NAME."""
    config: dict[str, Any] = yaml.safe_load(ALERTMANAGER_CONFIG.read_text())
    route = config["route"]
    assert {"group_wait", "group_interval", "repeat_interval"} <= route.keys(), route
    route.update(group_wait="1s", group_interval="1s", repeat_interval="1h")
    config["receivers"] = [
        {
            "name": receiver["name"],
            "webhook_configs": [{"url": f"{webhook}/{receiver['name']}", "send_resolved": True}],
        }
        for receiver in config["receivers"]
    ]
    return config
