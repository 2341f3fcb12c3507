"""The shipped Prometheus assets: scrape config and targets, alert rules and their tests, Grafana
dashboard, and the Alertmanager config.

promtool (Debian package `prometheus`) checks the config and rules and runs the rule unit tests;
amtool (Debian package `prometheus-alertmanager`) checks the Alertmanager config and its routes;
the dashboard is checked in plain Python against the conventions in DESIGN.md, and its queries
are parsed by promtool too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.conftest import require_binary

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "conf" / "prometheus"
SCRAPE_CONFIG = PROMETHEUS_DIR / "prometheus.yml"
TARGETS = PROMETHEUS_DIR / "sentinel-targets.yml"
ALERT_RULES = PROMETHEUS_DIR / "sentinel-alerts.yml"
ALERT_TESTS = PROMETHEUS_DIR / "sentinel-alerts.test.yml"
DASHBOARD = ROOT / "dashboards" / "sentinel.json"
RUNBOOKS = ROOT / "docs" / "runbooks.md"
ALERTMANAGER_CONFIG = ROOT / "conf" / "alertmanager" / "alertmanager.yml"

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
VARIABLES = ["datasource", "job", "instance", "program"]
VARIABLE_QUERIES = {
    "job": "label_values(sentinel_build_info, job)",
    "instance": 'label_values(sentinel_build_info{job=~"$job"}, instance)',
    "program": 'label_values(sentinel_program_up{job=~"$job", instance=~"$instance"}, program)',
}
# The link annotations every alert has: the base URL from an external label (with a default),
# then the alert's own part (sentinel-alerts.yml, "Links").
RUNBOOK_BASE = (
    "{{ or $externalLabels.sentinel_runbook_url "
    '"https://github.com/sentinel/sentinel/blob/main/docs/runbooks.md" }}'
)
DASHBOARD_BASE = (
    '{{ reReplaceAll "/+$" "" (or $externalLabels.sentinel_grafana_url "http://localhost:3000") }}'
    "/d/sentinel-overview/sentinel?"
)
# Metrics with `process`, `program` and `group` labels (DESIGN.md "Metrics"): queries on them
# filter by the program variable; every sentinel metric is filtered by job and instance.
PER_PROGRAM = re.compile(r"^sentinel_(program|probe)_")
SELECTOR = re.compile(r"\b(sentinel_\w+)(\{[^}]*\})?")
RANGE = re.compile(r"\[([^\]]*)\]")
JOIN = re.compile(r"\b(?:on|ignoring)\s*\(([^)]*)\)")


@pytest.fixture(scope="module")
def promtool() -> str:
    return require_binary("promtool")


def run_promtool(promtool: str, *args: str, cwd: Path) -> str:
    """Run promtool, assert it exits 0 (showing its output if not), return its output."""
    done = subprocess.run(
        [promtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, f"promtool {' '.join(args)} exited {done.returncode}:\n{output}"
    return output


def run_amtool(amtool: str, *args: str, cwd: Path) -> str:
    """Run amtool, assert it exits 0, return what it printed on stdout."""
    done = subprocess.run(
        [amtool, *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, (
        f"amtool {' '.join(args)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    )
    return done.stdout


def import_yaml() -> ModuleType:
    """PyYAML, or fail (CI) / skip (a dev machine without it), like require_binary."""
    try:
        import yaml  # noqa: PLC0415 - optional: only these checks need it
    except ImportError:
        message = "PyYAML is not installed (it belongs in the [test] extra)"
        if os.environ.get("SENTINEL_REQUIRE_ALL") == "1":
            pytest.fail(message)
        pytest.skip(message)
    return yaml


def load_yaml(path: Path) -> Any:
    return import_yaml().safe_load(path.read_text())


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERT_RULES)["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return data


def targets() -> Iterator[tuple[str, dict[str, Any]]]:
    """(panel title, target) for every query of every panel."""
    for panel in dashboard()["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target


def variable_query(variable: dict[str, Any]) -> str:
    """A variable's query text, whether stored as a string or as the newer {query: ...} object."""
    query = variable["query"]
    return str(query["query"] if isinstance(query, dict) else query)


def fill_variables(expr: str) -> str:
    """A dashboard query as Grafana would send it, with "match anything" for the variables."""
    substitutions = {"$__rate_interval": "1m", "$job": ".*", "$instance": ".*", "$program": ".*"}
    for name, value in substitutions.items():
        expr = expr.replace(name, value)
    return expr


# --- promtool ---------------------------------------------------------------------------------


def test_scrape_config_is_valid(promtool: str, tmp_path: Path) -> None:
    """`promtool check config` accepts the scrape config and finds the rule file and the
    targets file (which it parses too) from any cwd."""
    output = run_promtool(promtool, "check", "config", str(SCRAPE_CONFIG), cwd=tmp_path)
    assert str(ALERT_RULES) in output, output
    assert "WARNING" not in output, output  # e.g. 'file "sentinel-targets.yml" ... does not exist'


def test_alert_rules_are_valid(promtool: str) -> None:
    """`promtool check rules` accepts the alert rules."""
    run_promtool(promtool, "check", "rules", ALERT_RULES.name, cwd=PROMETHEUS_DIR)


def test_alert_rule_unit_tests_pass(promtool: str, tmp_path: Path) -> None:
    """`promtool test rules` passes on the alert rules' unit tests."""
    output = run_promtool(promtool, "test", "rules", str(ALERT_TESTS), cwd=tmp_path)
    assert "SUCCESS" in output, output


def test_dashboard_queries_parse_as_promql(promtool: str, tmp_path: Path) -> None:
    """Every dashboard and variable query, with its variables filled in, is valid PromQL."""
    exprs = [target["expr"] for _, target in targets()]
    for variable in dashboard()["templating"]["list"][1:]:
        query = variable_query(variable)
        exprs.append(query[len("label_values(") : query.rindex(",")])  # the series selector
    rules = [
        {"record": f"dashboard:query_{number}", "expr": fill_variables(expr)}
        for number, expr in enumerate(exprs)
    ]
    path = tmp_path / "dashboard-queries.yml"  # JSON is YAML: promtool reads it as a rule file
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    run_promtool(promtool, "check", "rules", str(path), cwd=tmp_path)


# --- alert rules ------------------------------------------------------------------------------


def test_every_alert_has_severity_summary_and_description() -> None:
    """Every alert is a Sentinel* alert with severity warning/critical, a summary and a description."""
    rules = alert_rules()
    assert rules
    for rule in rules:
        name = rule.get("alert")
        assert name and name.startswith("Sentinel"), rule
        assert rule.get("labels", {}).get("severity") in {"warning", "critical"}, name
        annotations = rule.get("annotations", {})
        assert annotations.get("summary", "").strip(), name
        assert annotations.get("description", "").strip(), name


def test_every_alert_links_to_its_runbook_section_and_to_the_dashboard() -> None:
    """runbook_url is the runbook's section for the alert (a `## Name` heading of
    docs/runbooks.md), dashboard_url the dashboard with variables it has, both from the
    configurable base URLs."""
    headings = re.findall(r"^## (\S+)$", RUNBOOKS.read_text(), re.MULTILINE)
    variables = {variable["name"] for variable in dashboard()["templating"]["list"]}
    names = set()
    for rule in alert_rules():
        name, annotations = rule["alert"], rule["annotations"]
        names.add(name)
        assert annotations.get("runbook_url") == f"{RUNBOOK_BASE}#{name.lower()}", name
        assert name in headings, f"{name}: no section in {RUNBOOKS.name}"
        url = annotations.get("dashboard_url", "")
        assert url.startswith(DASHBOARD_BASE), name
        assert url.startswith(f"{DASHBOARD_BASE}var-job={{{{ urlquery $labels.job }}}}"), name
        assert set(re.findall(r"var-(\w+)=", url)) <= variables, name
        if "program" in rule["expr"] or name.startswith("SentinelProgram"):
            assert "&var-program={{ urlquery $labels.program }}" in url, name
    # and every section is an alert's (the headings other than the introduction's)
    assert set(headings) - {"Reading"} == names


def test_program_alerts_name_the_process_and_the_program() -> None:
    """Every alert about programs names the program in its summary and the process (or, per
    program, its processes) in its summary or description."""
    (group,) = [g for g in load_yaml(ALERT_RULES)["groups"] if g["name"] == "sentinel-programs"]
    for rule in group["rules"]:
        name, annotations = rule["alert"], rule["annotations"]
        assert "$labels.program" in annotations["summary"], name
        text = annotations["summary"] + annotations["description"]
        per_program = rule["expr"].lstrip().startswith("count by (job, instance, program, group)")
        if per_program:
            # no process label: the description lists them
            assert "{{ $s.Labels.process }}" in annotations["description"], name
        else:
            assert "$labels.process" in annotations["summary"], name
            assert re.search(r"`sentinel \w+ \{\{ \$labels.process \}\}`", text), name


def test_every_alert_has_a_firing_and_a_quiet_unit_test() -> None:
    """Each alert has a unit test case where it fires and one where it does not."""
    cases: dict[str, list[list[Any]]] = {}
    for test in load_yaml(ALERT_TESTS)["tests"]:
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    for rule in alert_rules():
        name = rule["alert"]
        assert any(cases.get(name, [])), f"{name}: no unit test case where it fires"
        assert not all(cases.get(name, [[]])), f"{name}: no unit test case where it stays quiet"


def test_scrape_config_scrapes_every_host_and_sends_to_alertmanager() -> None:
    """The job "sentinel" scrapes /metrics of the hosts listed in sentinel-targets.yml (one
    entry per host, at its [metrics] listen port), loads the alert rules and sends the alerts,
    without the link labels, to an Alertmanager."""
    config = load_yaml(SCRAPE_CONFIG)
    assert config["rule_files"] == [ALERT_RULES.name]
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "sentinel"]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert "static_configs" not in job
    assert job["file_sd_configs"] == [{"files": [TARGETS.name]}]
    entries = load_yaml(TARGETS)
    assert entries and all(len(entry["targets"]) == 1 for entry in entries), entries
    hosts = [target.rsplit(":", 1) for entry in entries for target in entry["targets"]]
    assert len({host for host, _ in hosts}) == len(hosts), hosts
    assert {port for _, port in hosts} == {"9101"}  # the README's [metrics] listen
    alerting = config["alerting"]
    assert alerting["alert_relabel_configs"] == [
        {"action": "labeldrop", "regex": "sentinel_(runbook|grafana)_url"}
    ]
    (alertmanagers,) = alerting["alertmanagers"]
    assert alertmanagers["static_configs"][0]["targets"], alertmanagers


# --- alertmanager -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amtool() -> str:
    return require_binary("amtool")  # Debian's prometheus-alertmanager ships it


def test_alertmanager_config_is_valid(amtool: str, tmp_path: Path) -> None:
    """`amtool check-config` accepts alertmanager.yml, with its inhibit rule and receivers."""
    output = run_amtool(amtool, "check-config", str(ALERTMANAGER_CONFIG), cwd=tmp_path)
    assert "SUCCESS" in output and "1 inhibit rules" in output, output


def test_alertmanager_pages_for_critical_alerts_and_chats_the_warnings(
    amtool: str, tmp_path: Path
) -> None:
    """Every alert rule's alert reaches a receiver by its severity: critical the page,
    warning the chat."""
    wanted = {"critical": "page", "warning": "chat"}
    for rule in alert_rules():
        severity = rule["labels"]["severity"]
        output = run_amtool(
            amtool, "config", "routes", "test", f"--config.file={ALERTMANAGER_CONFIG}",
            f"alertname={rule['alert']}", f"severity={severity}", "job=sentinel",
            "instance=web1.example.com:9101", "program=web", "process=web_0", cwd=tmp_path,
        )  # fmt: skip
        assert output.splitlines()[0] == wanted[severity], (rule["alert"], output)


def test_alertmanager_groups_and_inhibits_as_the_rules_recommend() -> None:
    """The route groups by (alertname, job, instance, program) and the inhibit rule is the
    one in sentinel-alerts.yml's header, so that the two cannot drift apart."""
    header = re.match(r"(?:#.*\n)+", ALERT_RULES.read_text())
    assert header
    snippets = re.findall(r"^#   ((?:route|inhibit_rules):\n(?:#     .*\n)+)", header[0], re.M)
    recommended = import_yaml().safe_load(re.sub(r"^#   ", "", "".join(snippets), flags=re.M))
    assert recommended.keys() == {"route", "inhibit_rules"}, snippets
    config = load_yaml(ALERTMANAGER_CONFIG)
    assert config["route"]["group_by"] == recommended["route"]["group_by"]
    assert recommended["route"]["group_by"] == ["alertname", "job", "instance", "program"]
    assert config["inhibit_rules"] == recommended["inhibit_rules"]
    assert all("group_by" not in route for route in config["route"]["routes"])


# --- dashboard --------------------------------------------------------------------------------


def test_dashboard_is_classic_json_with_a_stable_uid() -> None:
    """The dashboard is the classic JSON model, with a stable uid and no instance id."""
    board = dashboard()
    assert board["uid"] == "sentinel-overview"
    assert board["id"] is None
    assert board["title"]
    assert isinstance(board["panels"], list)
    assert isinstance(board["schemaVersion"], int)
    assert "elements" not in board and "spec" not in board  # not the v2 schema


def test_dashboard_variables() -> None:
    """The templating variables are datasource, job, instance and program, in that order."""
    variables = dashboard()["templating"]["list"]
    assert [variable["name"] for variable in variables] == VARIABLES
    datasource, *queries = variables
    assert datasource["type"] == "datasource"
    assert datasource["query"] == "prometheus"
    for variable in queries:
        assert variable["type"] == "query", variable["name"]
        assert variable["datasource"] == DATASOURCE, variable["name"]
        assert variable_query(variable) == VARIABLE_QUERIES[variable["name"]]
    program = variables[-1]
    assert program["multi"] is True
    assert program["includeAll"] is True


def test_every_panel_has_title_description_unit_and_the_datasource_variable() -> None:
    """Every panel has a title, a description, a unit and the datasource variable."""
    panels = dashboard()["panels"]
    assert panels
    for panel in panels:
        title = panel.get("title", "")
        assert title.strip(), panel
        assert panel.get("description", "").strip(), title
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), title
        assert panel.get("datasource") == DATASOURCE, title
        assert panel.get("targets"), title
        for target in panel["targets"]:
            assert target.get("datasource", DATASOURCE) == DATASOURCE, title


def test_panel_ids_are_unique_and_panels_do_not_overlap() -> None:
    """Panel ids are unique, and panels fit the 24-column grid without overlapping."""
    panels = dashboard()["panels"]
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids)), ids
    cells: dict[tuple[int, int], str] = {}
    for panel in panels:
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[x, y]}"
                cells[x, y] = panel["title"]


def test_rates_use_rate_interval() -> None:
    """Every rate() and increase() range in the dashboard is $__rate_interval."""
    checked = 0
    for title, target in targets():
        expr = target["expr"]
        if "rate(" in expr or "increase(" in expr:
            ranges = RANGE.findall(expr)
            assert ranges, f"{title}: {expr}"
            assert set(ranges) == {"$__rate_interval"}, f"{title}: {expr}"
            checked += 1
    assert checked


def test_queries_filter_by_job_instance_and_program() -> None:
    """Every sentinel metric in a query is filtered by job and instance, and by program if per program."""
    for title, target in targets():
        selectors = SELECTOR.findall(target["expr"])
        assert selectors, f"{title}: {target['expr']}"
        for metric, matchers in selectors:
            where = f"{title}: {metric}{matchers}"
            assert 'job=~"$job"' in matchers, where
            assert 'instance=~"$instance"' in matchers, where
            if PER_PROGRAM.match(metric):
                assert 'program=~"$program"' in matchers, where


def test_joins_match_one_process() -> None:
    """Queries that relate two series match them on the process: a program name can stand for
    several processes (its instances)."""
    checked = 0
    for title, target in targets():
        for join in JOIN.findall(target["expr"]):
            labels = {label.strip() for label in join.split(",")}
            assert labels == {"job", "instance", "process"}, f"{title}: on ({join})"
            checked += 1
    assert checked


def test_processes_table_has_a_row_per_process() -> None:
    """The Processes table keeps every process (grouped by process, not program), with its
    program, group and state."""
    (table,) = [panel for panel in dashboard()["panels"] if panel["title"] == "Processes"]
    assert table["type"] == "table"
    for target in table["targets"]:
        assert target["expr"].startswith(
            (
                "max by (job, instance, group, program, process) (",
                "sum by (job, instance, group, program, process) (",
            )
        ), target["refId"]
    columns = table["transformations"][1]["options"]["renameByName"]
    assert {"process", "program", "group"} <= columns.keys()
    assert columns["Value #A"] == "State"
