"""The web UI in a real headless Chromium (Debian's), driven by Playwright, against a real
`sentinel run`: the table, actions by role, live updates, cross-site refusals, escaping,
and 500 programs with a crash loop."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from sentinel.auth import hash_password
from tests.conftest import descendants, no_leaks, require_binary
from tests.integration.conftest import SentinelProcess, StartSentinel, child, pid_alive, state_is

# Debian's chromium, started so that it never reaches for the network on its own.
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    # A name of an attacker's that resolves to this host: DNS rebinding, without DNS.
    "--host-resolver-rules=MAP rebind.test 127.0.0.1",
]  # fmt: skip
TIMEOUT = 10_000  # ms: a guard against hangs, never what a test waits on
PASSWORDS = {"viewer": "v-pass", "operator": "o-pass", "admin": "a-pass"}
USERS = ", ".join(
    f'{{ name = "{role}", password_hash = "{hash_password(password)}", role = "{role}" }}'
    for role, password in PASSWORDS.items()
)
SLEEPER = json.dumps(["sleep", "3600"])
SCREENSHOTS = Path(__file__).parent.parent.parent / "docs"


# --- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser() -> Iterator[tuple[Browser, set[int]]]:
    """One Chromium for the module, and the processes it came with (Playwright's driver)."""
    executable = require_binary("chromium")
    before = descendants(os.getpid())
    playwright = sync_playwright().start()
    try:
        chromium = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield chromium, descendants(os.getpid()) - before
        chromium.close()
    finally:
        playwright.stop()


@pytest.fixture(autouse=True)
def no_leaked_children(browser: tuple[Browser, set[int]]) -> Iterator[None]:
    """The suite's leak guard, blind to the browser's own processes only: Chromium starts
    and ends renderers as it likes. What a daemon starts is still checked."""
    with no_leaks(ignore_below=browser[1]):
        yield


@pytest.fixture
def page(browser: tuple[Browser, set[int]]) -> Iterator[Page]:
    context = browser[0].new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and errors.append(message.text),
    )
    yield page
    context.close()
    assert not errors, errors  # no script error, nothing the page's own policy refused


# --- a daemon ------------------------------------------------------------------------------------


def config(programs: str, users: bool = False) -> str:
    control = f'[control]\nhttp = "127.0.0.1:0"\n{f"users = [{USERS}]" if users else ""}\n'
    return control + programs


def base_url(daemon: SentinelProcess, host: str = "127.0.0.1") -> str:
    address = daemon.api("GET", "/healthz").json()["http"]
    return f"http://{host}:{address.rsplit(':', 1)[1]}"


def log_in(page: Page, daemon: SentinelProcess, role: str, then: str = "/") -> None:
    page.goto(f"{base_url(daemon)}/ui/login?next={then}")
    page.get_by_label("User").fill(role)
    page.get_by_label("Password").fill(PASSWORDS[role])
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#live")).to_have_text("live")


def row(page: Page, name: str) -> Any:
    return page.locator(f'#rows tr[data-name="{name}"]')


TWO_GROUPS = f"""
    [programs.web]
    command = {SLEEPER}
    group = "frontend"
    start_seconds = 0
    [programs.api]
    command = {SLEEPER}
    group = "frontend"
    start_seconds = 0
    [programs.worker]
    command = {SLEEPER}
    instances = 2
    start_seconds = 0
"""


def started(daemon: SentinelProcess, *names: str) -> SentinelProcess:
    for name in names:
        daemon.wait_event(state_is(name, "RUNNING"))
    return daemon


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelProcess]:
    """A daemon with users, for the tests that change nothing it runs (a spawn would be a
    new child for the leak guard): started once, for the module."""
    directory = tmp_path_factory.mktemp("shared")
    daemon = SentinelProcess(directory, config(TWO_GROUPS, users=True)).start()
    yield started(daemon, "web", "api", "worker_0", "worker_1")
    assert daemon.terminate() == 0, daemon.log()


# --- the table -----------------------------------------------------------------------------------


def test_the_table_shows_every_program_and_filters_them(
    shared: SentinelProcess, page: Page, tmp_path: Path
) -> None:
    """Names, groups, states and pids as the daemon has them; filters by name, group, state;
    on a phone, each process is a card and nothing scrolls sideways."""
    daemon = shared
    log_in(page, daemon, "viewer")
    expect(page.locator("#rows tr")).to_have_count(4)
    for name in ("web", "api", "worker_0", "worker_1"):
        expect(row(page, name).locator(".state-badge")).to_have_text("RUNNING")
        expect(row(page, name).locator(".pid")).to_have_text(str(daemon.status(name)["pid"]))
    expect(row(page, "api").locator(".group")).to_have_text("frontend")
    expect(page.locator("#counts")).to_contain_text("RUNNING4")
    page.get_by_label("Name or group").fill("work")
    expect(page.locator("#rows tr:visible")).to_have_count(2)
    page.get_by_label("Name or group").fill("")
    page.get_by_label("Group", exact=True).select_option("frontend")
    expect(page.locator("#rows tr:visible")).to_have_count(2)
    page.get_by_label("Group", exact=True).select_option("")
    page.get_by_label("State", exact=True).select_option("FATAL")
    expect(page.locator("#rows tr:visible")).to_have_count(0)
    expect(page.locator("#empty")).to_be_visible()
    page.get_by_label("State", exact=True).select_option("")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone: each process a card
    expect(row(page, "web")).to_have_css("display", "grid")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=tmp_path / "phone.png", full_page=True)


def test_stop_and_start_from_the_page_change_the_real_process(
    sentinel: StartSentinel, page: Page
) -> None:
    """An operator's Stop ends the process; Start runs a new one; the table follows."""
    daemon = started(sentinel(config(TWO_GROUPS, users=True)), "web")
    old = daemon.status("web")["pid"]
    log_in(page, daemon, "operator")
    page.get_by_role("button", name="Stop web", exact=True).click()
    expect(row(page, "web").locator(".state-badge")).to_have_text("STOPPED")
    assert daemon.status("web")["state"] == "STOPPED" and not pid_alive(old)
    page.get_by_role("button", name="Start web", exact=True).click()
    expect(row(page, "web").locator(".state-badge")).to_have_text("RUNNING")
    new = daemon.status("web")["pid"]
    assert new != old and pid_alive(new)
    expect(row(page, "web").locator(".pid")).to_have_text(str(new))
    audit = (daemon.directory / "state" / "audit.jsonl").read_text()
    assert '"who": "operator"' in audit and '"action": "stop", "target": "web"' in audit


def test_a_group_signal_from_the_page_reaches_its_processes(
    sentinel: StartSentinel, page: Page
) -> None:
    """Signal… on a group: the dialog's signal goes to each of its processes."""
    code = "import signal, sys, time\nsignal.signal(signal.SIGUSR1, lambda *a: print('usr1', flush=True))\nprint('up', flush=True)\nwhile True: time.sleep(1)"
    programs = f"""
        [programs.a]
        command = {json.dumps(child(code))}
        group = "pair"
        start_seconds = 0
        [programs.b]
        command = {json.dumps(child(code))}
        group = "pair"
        start_seconds = 0
    """
    daemon = started(sentinel(config(programs, users=True)), "a", "b")
    log_in(page, daemon, "operator")
    page.on("dialog", lambda dialog: dialog.accept())
    page.get_by_label("Group", exact=True).select_option("pair")
    page.locator('button[data-bulk="signal"]').click()
    page.get_by_label("Signal", exact=True).select_option("USR1")
    page.get_by_role("button", name="Send", exact=True).click()
    expect(page.locator("#toast")).to_contain_text("signal SIGUSR1: pair:*")
    for name in ("a", "b"):
        log = daemon.directory / "logs" / f"{name}.stdout.log"
        deadline = time.monotonic() + 10
        while "usr1" not in log.read_text():  # the child prints when it gets it: no event
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.02)


def test_a_crash_shows_up_without_a_reload(sentinel: StartSentinel, page: Page) -> None:
    """SIGKILL a process behind the page's back: its restart appears live."""
    daemon = started(sentinel(config(TWO_GROUPS)), "web")
    page.goto(base_url(daemon))
    expect(row(page, "web").locator(".restarts .count")).to_have_text("0")
    page.evaluate("window.notReloaded = true")
    old = daemon.status("web")["pid"]
    os.kill(old, signal.SIGKILL)
    restarted = daemon.next_event(lambda e: e["event"] == "restart" and e["process"] == "web")
    expect(row(page, "web").locator(".restarts .count")).to_have_text("1")
    expect(row(page, "web").locator(".why")).to_contain_text("SIGKILL")
    expect(row(page, "web").locator(".pid")).not_to_have_text(str(old))
    assert page.evaluate("window.notReloaded") is True
    assert restarted["restarts"] == 1


# Says over sd_notify how far it got; says it is ready once the test writes to its fifo.
READY_WHEN_TOLD = """
    import os, socket, sys, time
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.sendto(b"STATUS=warming <b>cache</b>", os.environ["NOTIFY_SOCKET"])
    with open(sys.argv[1], "rb") as fifo:
        fifo.read(1)
    sock.sendto(b"READY=1\\nSTATUS=serving", os.environ["NOTIFY_SOCKET"])
    time.sleep(3600)
"""


def test_what_programs_say_and_wait_for_shows_live(
    sentinel: StartSentinel, page: Page, tmp_path: Path
) -> None:
    """A program's sd_notify STATUS= (as text), and a dependent waiting for it, on the table
    and the process page; both follow without a reload once it says READY=1."""
    fifo = tmp_path / "go"
    os.mkfifo(fifo)
    programs = f"""
        [programs.db]
        command = {json.dumps([*child(READY_WHEN_TOLD), str(fifo)])}
        notify = true
        start_seconds = "notify"
        [programs.app]
        command = {SLEEPER}
        depends_on = ["db"]
        start_seconds = 0
    """
    daemon = sentinel(config(programs))
    daemon.wait_event(lambda e: e["event"] == "notify" and e["process"] == "db")
    page.goto(base_url(daemon))
    expect(row(page, "db").locator(".note")).to_have_text("warming <b>cache</b>")
    expect(row(page, "app").locator(".note")).to_contain_text("waiting for db")
    page.goto(f"{base_url(daemon)}/ui/process/db")
    expect(page.locator("#p-said")).to_have_text("warming <b>cache</b>")
    page.evaluate("window.notReloaded = true")
    fifo.write_bytes(b"x")  # blocks until the program opens its end: no timer involved
    started(daemon, "db", "app")
    expect(page.locator("#p-said")).to_have_text("serving")
    assert page.evaluate("window.notReloaded") is True
    page.goto(base_url(daemon))
    expect(row(page, "app").locator(".state-badge")).to_have_text("RUNNING")
    expect(row(page, "app").locator(".note")).to_have_text("")


def test_a_viewer_sees_no_controls(shared: SentinelProcess, page: Page) -> None:
    """No buttons for a viewer, no log; its forms would be refused anyway (403)."""
    daemon = shared
    log_in(page, daemon, "viewer")
    expect(row(page, "web").locator(".state-badge")).to_have_text("RUNNING")
    assert page.locator("button[data-action], button[data-bulk], #reload").count() == 0
    page.goto(f"{base_url(daemon)}/ui/process/web")
    expect(page.locator("#p-state")).to_have_text("RUNNING")
    assert page.locator("button[data-action]").count() == 0
    expect(page.locator(".log-panel")).to_contain_text("needs the admin role")
    status = page.evaluate(
        """async () => {
            const token = document.querySelector('meta[name="csrf-token"]').content;
            const body = new URLSearchParams({csrf_token: token});
            return (await fetch("/ui/programs/web/stop", {method: "POST", body})).status;
        }"""
    )
    assert status == 403 and daemon.status("web")["state"] == "RUNNING"


def test_logging_in_is_needed_when_anonymous_callers_get_nothing(
    shared: SentinelProcess, page: Page
) -> None:
    """With users, / sends to the login form; a wrong password is said; logging out ends it."""
    daemon = shared
    page.goto(base_url(daemon))
    expect(page).to_have_url(re.compile(r"/ui/login\?next=%2F$"))
    page.get_by_label("User").fill("admin")
    page.get_by_label("Password").fill("wrong")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong user name or password.")
    page.get_by_label("Password").fill(PASSWORDS["admin"])
    page.get_by_role("button", name="Log in").click()
    expect(row(page, "web")).to_be_visible()
    expect(page.locator("#reload")).to_be_visible()
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/ui/login$"))
    page.goto(base_url(daemon))
    expect(page).to_have_url(re.compile(r"/ui/login"))


# --- what another site can do --------------------------------------------------------------------

EVIL_PAGE = """<!doctype html><form method="post" action="{target}">
<input type="hidden" name="signal" value="KILL"></form>
<script>document.forms[0].submit()</script>"""


def test_a_cross_site_form_post_is_refused(shared: SentinelProcess, page: Page) -> None:
    """A page on another origin posts a form at sentinel, with the victim logged in as admin:
    403, and the program runs on. So does a form without the session's token."""
    daemon = shared
    pid = daemon.status("web")["pid"]
    log_in(page, daemon, "admin")
    target = f"{base_url(daemon)}/ui/programs/web/signal"
    page.route("http://evil.test/**", lambda route: route.fulfill(
        content_type="text/html", body=EVIL_PAGE.format(target=target)))  # fmt: skip
    with page.expect_response(target) as refused:
        page.goto("http://evil.test/")
    assert refused.value.status == 403
    assert "cross-site request refused" in refused.value.text()
    # The same form from sentinel's own origin, with the session cookie but no token.
    page.goto(f"{base_url(daemon)}/ui/login")
    status = page.evaluate(
        """async (target) => (await fetch(target, {method: "POST",
            body: new URLSearchParams({signal: "KILL"})})).status""",
        target,
    )
    assert status == 403
    assert daemon.status("web")["pid"] == pid and pid_alive(pid)


def test_a_foreign_host_header_is_refused(shared: SentinelProcess, page: Page) -> None:
    """A name that resolves to this host but is not sentinel's (DNS rebinding): 421."""
    daemon = shared
    response = page.goto(base_url(daemon, host="rebind.test"))
    assert response is not None and response.status == 421
    assert "does not answer to that Host" in page.content()


def test_a_form_with_the_token_is_accepted_and_nothing_changes_on_get(
    sentinel: StartSentinel,
) -> None:
    """Outside a browser: the guard accepts a form POST with its session's token, refuses it
    with another session's token, a foreign Origin or a JSON body riding on the cookie alone;
    a GET of an action changes nothing."""
    daemon = started(sentinel(config(TWO_GROUPS, users=True)), "web", "api")
    base = base_url(daemon)
    with (
        httpx.Client(base_url=base, timeout=10) as browser,
        httpx.Client(base_url=base, timeout=10) as other,
    ):
        token = _token(browser.get("/ui/login").text)
        login = {"csrf_token": token, "name": "operator", "password": PASSWORDS["operator"]}
        assert browser.post("/ui/login", data=login).status_code == 303
        token = _token(browser.get("/").text)
        other_token = _token(other.get("/ui/login").text)
        assert browser.get("/ui/programs/web/stop").status_code == 405
        for data, headers in (
            ({"csrf_token": other_token}, {}),
            ({"csrf_token": token}, {"Origin": "http://evil.example"}),
            ({}, {}),
        ):
            response = browser.post("/ui/programs/web/stop", data=data, headers=headers)
            assert response.status_code == 403, response.text
        response = browser.post("/api/v1/programs/web/stop", json={})
        assert response.status_code == 403  # the cookie alone is no credential for a change
        assert daemon.status("web")["state"] == "RUNNING"
        response = browser.post(
            "/ui/programs/web/stop",
            data={"csrf_token": token},
            headers={"Accept": "application/json"},
        )
        assert response.status_code == 200 and response.json()["ok"] is True
        daemon.wait_event(state_is("web", "STOPPED"))
        response = browser.post("/api/v1/programs/api/stop", headers={"X-CSRF-Token": token})
        assert response.status_code == 200 and response.json()["ok"] is True


def _token(html: str) -> str:
    match = re.search(r'<meta name="csrf-token" content="([^"]+)">', html)
    assert match is not None, html
    return match[1]


# --- escaping --------------------------------------------------------------------------------------

HOSTILE = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'


def test_what_a_program_prints_is_text(sentinel: StartSentinel, page: Page, tmp_path: Path) -> None:
    """A log line and a probe's detail with markup render as text: no element, no script."""
    printer = child(
        f"""
        import time
        print({HOSTILE!r}, flush=True)
        print("done", flush=True)
        time.sleep(3600)
        """
    )
    programs = f"""
        [programs.printer]
        command = {json.dumps(printer)}
        start_seconds = 0
        liveness = {{ exec = {{ command = ["echo", {json.dumps(HOSTILE)}] }}, period = "100ms" }}
    """
    daemon = started(sentinel(config(programs, users=True)), "printer")
    log_in(page, daemon, "admin", then="/ui/process/printer")
    expect(page.locator("#log")).to_contain_text("done")
    expect(page.locator("#log")).to_contain_text(HOSTILE)
    expect(page.locator("#p-probe")).to_contain_text(HOSTILE)
    expect(page.locator("#events")).to_contain_text(HOSTILE)
    page.goto(base_url(daemon))
    expect(row(page, "printer").locator(".probe")).to_contain_text(HOSTILE)
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img, main script, #rows script").count() == 0


# --- a process page ----------------------------------------------------------------------------------


def test_a_process_page_shows_its_probes_restarts_and_resources(
    sentinel: StartSentinel, page: Page, tmp_path: Path
) -> None:
    """Probe history as a strip, restarts with their reasons, CPU and memory charts, the log
    following; the main page and this one are saved as screenshots in the test's directory
    (with SENTINEL_UPDATE_SCREENSHOTS=1, after a minute of samples, into docs/ too)."""
    busy = child(
        """
        import itertools, time
        cache = []
        for n in itertools.count():
            sum(i * i for i in range(3000 * (n % 40)))  # some CPU, in waves
            cache = cache[-150:] + [bytearray(50_000)]  # some memory, up to a plateau
            print(f"request {n} served in {n % 7 + 2} ms", flush=True)
            time.sleep(0.2)
        """
    )
    programs = f"""
        [programs.web]
        command = {json.dumps(busy)}
        group = "frontend"
        start_seconds = 0
        liveness = {{ exec = {{ command = ["sh", "-c", "test $(( $(date +%N) % 5 )) -ne 0"] }}, period = "100ms", failure_threshold = 50 }}
        [programs.api]
        command = {SLEEPER}
        group = "frontend"
        start_seconds = 0
        [programs.crasher]
        command = ["sh", "-c", "sleep 0.3; exit 3"]
        start_seconds = 0
        backoff = {{ initial = "200ms", max = "1s" }}
        flapping = {{ restarts = 3, window = "1m" }}
        [programs.broken]
        command = ["sh", "-c", "exit 2"]
        start_retries = 1
        backoff = {{ initial = "100ms" }}
        [programs.worker]
        command = {SLEEPER}
        instances = 3
        group = "workers"
        start_seconds = 0
        [programs.batch]
        command = {SLEEPER}
        autostart = false
    """
    daemon = started(sentinel(config(programs, users=True)), "web", "api", "worker_2")
    daemon.wait_event(state_is("broken", "FATAL"))
    daemon.wait_event(lambda e: e["event"] == "flapping" and e["process"] == "crasher")
    log_in(page, daemon, "admin")
    expect(page.locator("#attention li").first).to_contain_text("crasher")
    expect(page.locator("#attention")).to_contain_text("broken")
    page.screenshot(path=tmp_path / "main.png", full_page=True)
    page.get_by_role("link", name="web", exact=True).click()
    expect(page.locator("h1 .name")).to_have_text("web")
    expect(page.locator('.probe-strip[data-probe="liveness"] p')).to_contain_text("failed")
    expect(page.locator("#log")).to_contain_text("served in")
    expect(page.locator("#mem-text")).to_contain_text("MiB now")
    page.get_by_role("button", name="Restart web", exact=True).click()
    expect(page.locator("#restarts tr").first).to_contain_text("manual")
    expect(page.locator("#p-restarts")).to_contain_text("1 (last: manual")
    expect(page.locator("#events")).to_contain_text("restart #1 (manual)")
    if os.environ.get("SENTINEL_UPDATE_SCREENSHOTS") == "1":  # for docs/: a minute of charts
        expect(page.locator("#cpu-text")).to_contain_text("over the last 1m", timeout=120_000)
    page.screenshot(path=tmp_path / "process.png", full_page=True)
    if os.environ.get("SENTINEL_UPDATE_SCREENSHOTS") == "1":
        for shot in ("main.png", "process.png"):
            (SCREENSHOTS / f"webui-{shot}").write_bytes((tmp_path / shot).read_bytes())


# --- many programs ---------------------------------------------------------------------------------

CROWD = f"""
    [programs.idle]
    command = {SLEEPER}
    instances = 500
    start_seconds = 0
    [programs.crash]
    command = ["sh", "-c", "exit 1"]
    instances = 10
    start_seconds = 0
    backoff = {{ initial = "100ms", max = "300ms" }}
"""
TICK = 0.5  # live.TICK: the page gets at most one update message per tick


def test_the_page_keeps_up_with_500_programs_and_a_crash_loop(
    sentinel: StartSentinel, page: Page
) -> None:
    """510 rows, and 10 programs restarting several times a second: the page follows (its
    restart counts catch up with the daemon's), its DOM does not grow, and updates arrive
    batched, a few messages a second whatever the event rate."""
    daemon = sentinel(config(CROWD))
    page.add_init_script(COUNT_UPDATES)
    page.goto(base_url(daemon))
    expect(page.locator("#rows tr")).to_have_count(510, timeout=30_000)
    for name in ("idle_0", "idle_499"):
        expect(row(page, name).locator(".state-badge")).to_have_text("RUNNING", timeout=30_000)
    expect(page.locator("#attention li")).to_have_count(10)
    nodes = page.evaluate("document.getElementsByTagName('*').length")

    began = page.evaluate("[performance.now(), window.crashRestarts()]")
    page.wait_for_function("n => window.crashRestarts() >= n", arg=began[1] + 100, timeout=20_000)
    ended = page.evaluate("[performance.now(), window.crashRestarts()]")
    window = (ended[0] - began[0]) / 1000
    messages = page.evaluate(
        "([t0, t1]) => window.updates.filter(t => t > t0 && t <= t1).length", [began[0], ended[0]]
    )

    behind = daemon.status("crash_0")["restarts"]
    page.wait_for_function(
        "n => Number(document.querySelector('tr[data-name=\"crash_0\"] .restarts .count').textContent) >= n",
        arg=behind,
    )
    expect(page.locator("#rows tr")).to_have_count(510)
    grown = page.evaluate("document.getElementsByTagName('*').length") - nodes
    restarts = ended[1] - began[1]
    assert grown <= 10, f"the page grew by {grown} elements over {restarts} restarts"
    assert messages <= window / TICK + 2, f"{messages} messages in {window:.1f}s"
    assert restarts > 3 * messages, (restarts, messages)


# Counts the live stream's messages as they reach the page, and sums the restarts the page
# shows for the crash loop: added to the page before its own scripts, by the test only.
COUNT_UPDATES = """
    window.updates = [];
    const Original = window.EventSource;
    window.EventSource = class extends Original {
        constructor(...args) {
            super(...args);
            this.addEventListener("rows", () => window.updates.push(performance.now()));
        }
    };
    window.crashRestarts = () => [...document.querySelectorAll('tr[data-name^="crash_"] .restarts .count')]
        .reduce((sum, cell) => sum + Number(cell.textContent), 0);
"""
