"""The API against its OpenAPI document, on a real daemon: real answers validate against the
process schema, and schemathesis calls every operation with generated requests (valid and
invalid ones) and checks each answer against the document."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator

import httpx
import jsonschema_rs
import pytest
import schemathesis

from sentinel.api.openapi import DOCUMENT
from sentinel.auth import Role, hash_password
from tests.conftest import no_leaks
from tests.integration.conftest import SentinelProcess, child, state_is, wait_until

Start = Callable[[str], SentinelProcess]
PASSWORDS = {"viewer": "v-pass", "operator": "o-pass", "admin": "a-pass"}
AUTH = ("admin", PASSWORDS["admin"])
USERS = ", ".join(
    f'{{ name = "{role}", password_hash = "{hash_password(password)}", role = "{role}" }}'
    for role, password in PASSWORDS.items()
)
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))
TALKER = json.dumps(child("import time; print('hello', flush=True); time.sleep(3600)"))
PROBE = json.dumps([sys.executable, "-c", "print('fine')"])
DAEMON = f"""
    [control]
    http = "127.0.0.1:0"
    users = [{USERS}]

    [programs.web]
    command = {TALKER}
    start_seconds = 0
    stop_timeout = "2s"
    backoff = {{ initial = "0s" }}
    liveness = {{ exec = {{ command = {PROBE} }}, period = "1s" }}

    [programs.worker]
    command = {SLEEPER}
    instances = 2
    start_seconds = 0
    stop_timeout = "2s"
    backoff = {{ initial = "0s" }}

    [programs.once]
    command = {json.dumps(child("raise SystemExit(3)"))}
    start_seconds = 0
    autorestart = "never"

    [programs.idle]
    command = {SLEEPER}
    autostart = false
    start_seconds = 0
    stop_timeout = "2s"
    backoff = {{ initial = "0s" }}
"""
# Bounded and repeatable: a fixed seed, a few examples per operation, no example database.
# An event stream may never end: one event, or what came in half a second, is enough.
CONFIG = schemathesis.Config.from_str(f"""
    seed = 1
    [auth.basic]
    username = "{AUTH[0]}"
    password = "{AUTH[1]}"
    [generation]
    max-examples = 10
    database = "none"
    [phases.stateful]
    enabled = false
    [[operations]]
    include-path-regex = "/events$|/follow$"
    request-timeout = 0.5
    max-stream-events = 1
    # The signal is in the query or the body, which OpenAPI cannot require: a request with
    # neither is valid to the document and a 400 to the daemon.
    [[operations]]
    include-path-regex = "/signal$"
    [operations.checks.positive_data_acceptance]
    enabled = false
    # The coverage phase sends every signal of the enum; through one route is enough (the
    # group and all routes read the signal the same way).
    [[operations]]
    include-path-regex = "/(groups/[^/]+|all)/signal$"
    [operations.phases.coverage]
    enabled = false
""")
# The document in the package, which a test below finds the daemon serving. Loading it from
# the daemon needs schemathesis's lazy loader (schemathesis.pytest.from_fixture), which fails
# under pytest 9.2 (it sets the private Node._nodeid); from_dict gives the same operations.
schema = schemathesis.openapi.from_dict(DOCUMENT, config=CONFIG)


@pytest.fixture(autouse=True)
def no_leaked_children() -> Iterator[None]:
    """The per-test leak guard would take each process the daemon starts for a leak: here the
    daemon lives for the module, and the tests tell it to start processes. The module is
    checked as a whole instead (`no_leaked_children_in_module`)."""
    yield


@pytest.fixture(scope="module", autouse=True)
def no_leaked_children_in_module() -> Iterator[None]:
    with no_leaks():
        yield


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelProcess]:
    daemon = SentinelProcess(tmp_path_factory.mktemp("openapi"), DAEMON).start()
    try:
        daemon.wait_event(state_is("worker_1", "RUNNING"))
        daemon.wait_event(state_is("once", "EXITED"))
        daemon.wait_event(lambda e: e["event"] == "probe_result" and e["process"] == "web")
        yield daemon
    finally:
        assert daemon.terminate() == 0, daemon.log()


@pytest.fixture(scope="module")
def base_url(daemon: SentinelProcess) -> str:
    return f"http://{daemon.api('GET', '/healthz').json()['http']}"


def test_the_daemon_serves_this_document(base_url: str) -> None:
    """GET /api/v1/openapi.json answers the document of sentinel.api.openapi, to a viewer."""
    response = httpx.get(f"{base_url}/api/v1/openapi.json", auth=AUTH, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json() == json.loads(json.dumps(DOCUMENT))


def test_real_processes_match_the_process_schema(daemon: SentinelProcess) -> None:
    """Running, probed, exited and never started processes all fit the process schema."""
    processes = daemon.api("GET", "/api/v1/programs").json()
    validator = jsonschema_rs.Draft202012Validator(
        {"items": {"$ref": "#/components/schemas/Process"}, "components": DOCUMENT["components"]}
    )
    errors = [f"{e.instance_path}: {e.message}" for e in validator.iter_errors(processes)]
    assert not errors, errors
    states = {p["name"]: p["state"] for p in processes}
    assert states == {
        "web": "RUNNING", "worker_0": "RUNNING", "worker_1": "RUNNING",
        "once": "EXITED", "idle": "STOPPED",
    }  # fmt: skip
    assert next(p for p in processes if p["name"] == "web")["probes"]["liveness"]["ok"]


OPERATIONS = [(path, method) for path, item in DOCUMENT["paths"].items() for method in item]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_each_operation_needs_the_role_the_document_names(
    base_url: str, path: str, method: str
) -> None:
    """A caller one role short is refused, and told the role the document names."""
    role = Role.named(DOCUMENT["paths"][path][method]["x-sentinel-role"])
    url = base_url + path.format(name="web", group="web")
    if role is Role.NONE:
        assert httpx.request(method, url, timeout=10).status_code == 200
        return
    below = Role(role - 1)
    if below is Role.NONE:  # with users configured, no password is no role
        response = httpx.request(method, url, timeout=10)
        assert response.status_code == 401, response.text
        assert f"needs the {role.label} role" in response.json()["error"]
    else:
        response = httpx.request(method, url, auth=(below.label, PASSWORDS[below.label]))
        assert response.status_code == 403, response.text
        assert response.json()["error"].endswith(f"needs {role.label}")


@schema.exclude(path="/api/v1/shutdown").exclude(path="/api/v1/reexec").parametrize()
def test_every_operation_answers_as_documented(case: schemathesis.Case, base_url: str) -> None:
    """No 5xx, and every status, content type, header and body as the document says."""
    response = case.call_and_validate(base_url=base_url)
    if response.status_code in (401, 403):  # the admin may do anything, on a same-site call
        assert "refused" in response.json()["error"], response.text


def test_reexec_answers_as_documented(sentinel: Start) -> None:
    """Re-exec on a daemon of its own: 202 as documented, and the daemon answers again."""
    own = sentinel(DAEMON)
    address = own.api("GET", "/healthz").json()["http"]
    case = schema["/api/v1/reexec"]["POST"].Case()
    response = case.call_and_validate(base_url=f"http://{address}", auth=AUTH)
    assert response.status_code == 202
    wait_until(lambda: "re-executed" in own.log(), 30, "the re-exec")


def test_shutdown_answers_as_documented(sentinel: Start) -> None:
    """Shutdown on a daemon of its own, as it ends it: 202 as documented, then exit 0."""
    own = sentinel(DAEMON)
    address = own.api("GET", "/healthz").json()["http"]
    case = schema["/api/v1/shutdown"]["POST"].Case()
    response = case.call_and_validate(base_url=f"http://{address}", auth=AUTH)
    assert response.status_code == 202
    assert own.proc is not None and own.proc.wait(30) == 0, own.log()
