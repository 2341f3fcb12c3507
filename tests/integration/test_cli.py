"""The command line against real daemons: one, three at once, none; on a terminal and in a pipe."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sentinel.auth import hash_password
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import ProcessState
from tests.integration.conftest import SentinelProcess, child, state_is, wait_until

Start = Callable[..., SentinelProcess]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))
HOSTILE = "\x1b]0;pwned\x07 \x1b[2J cleared\r\x08over \u202eevil \x9b1m"


def environment(**extra: str) -> dict[str, str]:
    """The test's environment without what would point the CLI elsewhere or change its looks."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("SENTINEL_SERVER", "SENTINEL_SERVERS", "SENTINEL_PASSWORD", "NO_COLOR")
    }
    env["TERM"] = "xterm"
    return {**env, **extra}


def sentinel_cli(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "sentinel", *args],
        capture_output=True, text=True, timeout=60, check=False, stdin=subprocess.DEVNULL,
        env=environment() if env is None else env, cwd=cwd,
    )  # fmt: skip


def on_terminal(
    *args: str, env: dict[str, str] | None = None, typed: str | None = None
) -> tuple[int, str]:
    """`sentinel ARGS` on a pseudo-terminal: its controlling terminal, stdin, stdout and
    stderr. `typed` is typed once it asks for a password. Returns the exit code and what the
    terminal showed (CR LF read as LF)."""
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            ["setsid", "-w", "-c", sys.executable, "-m", "sentinel", *args],
            stdin=slave, stdout=slave, stderr=slave, env=environment() if env is None else env,
        )  # fmt: skip
    finally:
        os.close(slave)
    shown = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], deadline - time.monotonic())[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: nothing has the terminal open any more
                break
            if not data:
                break
            shown += data
            if typed is not None and b"password for" in shown:
                os.write(master, typed.encode() + b"\n")
                typed = None
    finally:
        os.close(master)
        code = proc.wait(10)
    return code, shown.decode(errors="replace").replace("\r\n", "\n")


def rows(table: str) -> dict[str, list[str]]:
    """A status table's rows by process name (the first column, or the second with HOST)."""
    lines = table.splitlines()
    key = 1 if lines[0].startswith("HOST") else 0
    return {line.split()[key]: line.split() for line in lines[1:]}


def read_back(objects: list[dict[str, Any]]) -> list[ProcessSnapshot]:
    snapshots = [ProcessSnapshot.from_dict(o) for o in objects]
    assert [s.to_dict() for s in snapshots] == [
        {k: v for k, v in o.items() if k != "host"} for o in objects
    ]
    return snapshots


# --- one daemon -------------------------------------------------------------------------------


def test_status_table_and_json(sentinel: Start) -> None:
    """status: a table with a column per field, HEALTH/READY for probes; --json reads back
    through ProcessSnapshot; exit 1 when a named process is not RUNNING."""
    daemon = sentinel(f"""
        [programs.web]
        command = {SLEEPER}
        start_seconds = 0
        group = "front"
        [programs.api]
        command = {SLEEPER}
        group = "front"
        autostart = false
        [programs.checked]
        command = {SLEEPER}
        start_seconds = 0
        [programs.checked.liveness]
        exec = {{ command = {json.dumps(child("print('all good')"))} }}
        period = "100ms"
    """)
    daemon.wait_event(state_is("web", "RUNNING"))
    daemon.wait_event(lambda e: e["event"] == "healthy" and e["process"] == "checked")
    shown = daemon.cli("status")
    assert shown.returncode == 0, shown.stderr
    assert "\x1b" not in shown.stdout  # no colour into a pipe
    header = shown.stdout.splitlines()[0].split()
    assert header == ["NAME", "STATE", "PID", "UPTIME", "RESTARTS", "HEALTH", "READY", "DETAIL"]
    table = rows(shown.stdout)
    assert table["web"][:3] == ["web", "RUNNING", str(daemon.status("web")["pid"])]
    assert table["web"][4:] == ["0", "-", "-"]
    assert table["api"] == ["api", "STOPPED", "-", "-", "0", "-", "-"]
    assert table["checked"][1] == "RUNNING" and table["checked"][5:] == ["healthy", "yes"]

    objects = json.loads(daemon.cli("status", "--json").stdout)
    by_name = {p.name: p for p in read_back(objects)}
    assert by_name["web"].pid == daemon.status("web")["pid"]
    assert by_name["api"].state is ProcessState.STOPPED and by_name["api"].pid is None
    assert by_name["checked"].configured_probes == ("liveness",)

    assert daemon.cli("status", "web").returncode == 0
    assert daemon.cli("status", "api").returncode == 1
    front = json.loads(daemon.cli("status", "front:*", "--json").stdout)
    assert sorted(p["name"] for p in front) == ["api", "web"]
    missing = daemon.cli("status", "nope")
    assert missing.returncode == 2
    assert missing.stderr == "sentinel: no such process or group: nope\n"


def test_start_stop_restart_signal(sentinel: Start, tmp_path: Path) -> None:
    """The commands wait for the wanted state and say what they did, as text or --json; a
    process that does not get there is exit 1, a bad signal name exit 2."""
    hupped = tmp_path / "hupped"
    hupper = child(f"""
        import signal, time
        signal.signal(signal.SIGHUP, lambda *_: open({str(hupped)!r}, "w").close())
        print("ready", flush=True)
        while True:
            time.sleep(3600)
    """)
    daemon = sentinel(f"""
        [programs.web]
        command = {SLEEPER}
        start_seconds = 0
        [programs.api]
        command = {SLEEPER}
        start_seconds = 0
        autostart = false
        [programs.hupper]
        command = {json.dumps(hupper)}
        start_seconds = 0
        [programs.broken]
        command = {json.dumps(child("raise SystemExit(3)"))}
        autostart = false
        start_retries = 0
    """)
    daemon.wait_event(state_is("web", "RUNNING"))
    started = daemon.cli("start", "api", "--json")
    assert started.returncode == 0, started.stderr
    (result,) = json.loads(started.stdout)
    assert (result["name"], result["ok"]) == ("api", True)
    assert ProcessSnapshot.from_dict(result["process"]).state is ProcessState.RUNNING

    old = daemon.status("web")["pid"]
    restarted = daemon.cli("restart", "web")
    assert (restarted.returncode, restarted.stdout) == (0, "web: restarted\n")
    assert daemon.status("web")["pid"] != old

    wait_until(lambda: "ready" in daemon.cli("tail", "hupper").stdout, what="the handler")
    signalled = daemon.cli("signal", "HUP", "hupper")
    assert (signalled.returncode, signalled.stdout) == (0, "hupper: signalled\n")
    wait_until(hupped.exists, what="SIGHUP to arrive")

    stopped = daemon.cli("stop", "api", "web")
    assert (stopped.returncode, stopped.stdout) == (0, "api: stopped\nweb: stopped\n")
    not_running = daemon.cli("signal", "HUP", "api", "--json")
    assert not_running.returncode == 1
    assert [(r["name"], r["ok"]) for r in json.loads(not_running.stdout)] == [("api", False)]
    bad = daemon.cli("signal", "NOPE", "hupper")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "NOPE" in bad.stderr
    failed = daemon.cli("start", "broken")
    assert failed.returncode == 1 and failed.stdout.startswith("broken: ERROR (FATAL: ")


def test_reload_prints_what_changed_or_why_it_was_refused(sentinel: Start) -> None:
    """reload lists what was added, removed and changed; a broken config is exit 1 with its
    errors, and nothing changes."""
    program = "[programs.{name}]\ncommand = {command}\nstart_seconds = 0\n"
    keep, remove = (program.format(name=n, command=SLEEPER) for n in ("keep", "remove"))
    daemon = sentinel(keep + remove)
    daemon.wait_event(state_is("remove", "RUNNING"))
    changed = keep.replace("start_seconds = 0", 'start_seconds = 0\nstop_timeout = "3s"')
    daemon.config_path.write_text(changed + program.format(name="add", command=SLEEPER))
    reloaded = daemon.cli("reload")
    assert reloaded.returncode == 0, reloaded.stderr
    assert reloaded.stdout == "added: add\nremoved: remove\nchanged: keep\n"
    again = json.loads(daemon.cli("reload", "--json").stdout)
    assert (again["ok"], again["added"], again["removed"], again["changed"]) == (True, [], [], [])

    daemon.config_path.write_text(
        changed + '[programs.typo]\ncommand = "x"\nstop_timeout = "soon"\n'
    )
    rejected = daemon.cli("reload")
    assert rejected.returncode == 1 and rejected.stdout == ""
    first, *problems = rejected.stderr.splitlines()
    assert first == "sentinel: reload rejected, the running config is unchanged:"
    assert problems and problems[0].startswith(
        f"  {daemon.config_path}: programs.typo.stop_timeout"
    )
    as_json = daemon.cli("reload", "--json")
    assert as_json.returncode == 1 and json.loads(as_json.stdout)["ok"] is False
    assert daemon.api("GET", "/api/v1/programs/typo").status_code == 404


# --- several daemons --------------------------------------------------------------------------


@pytest.fixture
def hung_sockets(tmp_path: Path) -> Iterator[list[Path]]:
    """Unix sockets that accept connections and never answer."""
    paths, listeners = [], []
    for n in range(3):
        path = tmp_path / f"hung{n}.sock"
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(path))
        listener.listen(8)
        paths.append(path)
        listeners.append(listener)
    yield paths
    for listener in listeners:
        listener.close()


def test_three_daemons_at_once(sentinel: Start, tmp_path: Path, hung_sockets: list[Path]) -> None:
    """One command asks every host at once: one merged table with HOST first; a host that is
    down is reported on stderr and in the summary, the others answer, and the exit code is 2."""
    config = f"[programs.web]\ncommand = {SLEEPER}\nstart_seconds = 0\n"
    a = sentinel(config + f"[programs.only_a]\ncommand = {SLEEPER}\nstart_seconds = 0\n", "a")
    b, c = sentinel(config, "b"), sentinel(config, "c")
    for daemon in (a, b, c):
        daemon.wait_event(state_is("web", "RUNNING"))
    assert c.terminate() == 0
    servers = [str(d.socket) for d in (a, b, c)]
    every = [arg for s in servers for arg in ("-s", s)]

    shown = sentinel_cli(*every, "status")
    assert shown.returncode == 2
    lines = shown.stdout.splitlines()
    assert lines[0].split()[:3] == ["HOST", "NAME", "STATE"]
    assert sorted((r.split()[0], r.split()[1], r.split()[2]) for r in lines[1:]) == [
        (servers[0], "only_a", "RUNNING"),
        (servers[0], "web", "RUNNING"),
        (servers[1], "web", "RUNNING"),
    ]
    assert shown.stderr.splitlines() == [
        f"sentinel: {servers[2]}: cannot reach the daemon: no such socket (is the daemon running?)",
        f"sentinel: 2 of 3 hosts answered; failed: {servers[2]}",
    ]
    objects = json.loads(sentinel_cli(*every, "status", "--json").stdout)
    assert [next(iter(o)) for o in objects] == ["host"] * 3
    assert sorted(
        (o["host"], s.name) for o, s in zip(objects, read_back(objects), strict=True)
    ) == [
        (servers[0], "only_a"),
        (servers[0], "web"),
        (servers[1], "web"),
    ]

    both = environment(SENTINEL_SERVERS=",".join(servers[:2]))
    restarted = sentinel_cli("restart", "web", env=both)
    assert restarted.returncode == 0, restarted.stderr
    width = len(servers[0])
    assert sorted(restarted.stdout.splitlines()) == sorted(
        f"{s.ljust(width)}  web: restarted" for s in servers[:2]
    )
    hosts = tmp_path / "hosts"
    hosts.write_text(f"# the fleet\n{servers[0]}\n\n{servers[1]}   # b\n")
    assert sentinel_cli("--hosts", str(hosts), "status", "web").returncode == 0
    only_a = sentinel_cli("--hosts", str(hosts), "status", "only_a")
    assert only_a.returncode == 2 and list(rows(only_a.stdout)) == ["only_a"]
    assert only_a.stderr == f"sentinel: {servers[1]}: no such process or group: only_a\n"

    # each host has its own timeout, and they run at once: three that hang cost one timeout
    hung = [arg for path in hung_sockets for arg in ("-s", str(path))]
    began = time.monotonic()
    slow = sentinel_cli(*every[:4], *hung, "--timeout", "2", "status")
    assert time.monotonic() - began < 5.5
    assert slow.returncode == 2 and len(slow.stdout.splitlines()) == 1 + 3
    assert (
        f"sentinel: {hung_sockets[0]}: cannot reach the daemon: no answer within 2s" in slow.stderr
    )
    assert "2 of 5 hosts answered" in slow.stderr


def test_events_follow_every_host(sentinel: Start) -> None:
    """events -f prints each host's events as readable lines as they happen; Ctrl-C ends it
    with 0."""
    config = f"[programs.web]\ncommand = {SLEEPER}\nstart_seconds = 0\n"
    a, b = sentinel(config, "a"), sentinel(config, "b")
    for daemon in (a, b):
        daemon.wait_event(state_is("web", "RUNNING"))
    follow = subprocess.Popen(
        [sys.executable, "-m", "sentinel", "-s", str(a.socket), "-s", str(b.socket), "events", "-f"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environment(),
    )  # fmt: skip
    assert follow.stdout is not None
    seen = b""
    try:
        seen = read_until(follow, b"state_changed  STARTING -> RUNNING")  # the history
        assert sentinel_cli("-s", str(b.socket), "restart", "web").returncode == 0
        seen += read_until(follow, b"restart        manual, restart #1")
    finally:
        follow.send_signal(signal.SIGINT)
        _, errors = follow.communicate(timeout=30)
    assert follow.returncode == 0 and errors == b""
    (line,) = [line for line in seen.decode().splitlines() if "restart        manual" in line]
    day, clock, host, process, *_ = line.split()
    assert (host, process) == (str(b.socket), "web")
    assert re.fullmatch(r"\d{4}-\d\d-\d\d", day) and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", clock)


def read_until(proc: subprocess.Popen[bytes], wanted: bytes, timeout: float = 30) -> bytes:
    """What `proc` prints on stdout, up to and including the line with `wanted`."""
    assert proc.stdout is not None
    fd, seen = proc.stdout.fileno(), b""
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
            raise AssertionError(f"no {wanted!r} within {timeout}s; got {seen!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            raise AssertionError(f"stdout ended before {wanted!r}; got {seen!r}")
        seen += chunk
    return seen


# --- no daemon, and configs a client must not care about --------------------------------------


def test_no_daemon_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """Without a daemon every client command says so in one line and exits 2."""
    config = tmp_path / "sentinel.toml"
    config.write_text('[control]\nsocket = "run/sentinel.sock"\n')
    missing = tmp_path / "run" / "sentinel.sock"
    for command in (["status"], ["stop", "web"], ["reload"], ["events"], ["tail", "web"]):
        result = sentinel_cli("-c", str(config), *command)
        assert result.returncode == 2, (command, result.stderr)
        assert result.stderr == (
            f"sentinel: cannot reach the daemon at {missing}: no such socket "
            "(is the daemon running?)\n"
        ), command
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as gone:
        gone.bind(str(stale))  # a socket file nobody listens on: what a killed daemon leaves
    refused = sentinel_cli("-s", str(stale), "status")
    assert refused.returncode == 2
    assert refused.stderr == f"sentinel: cannot reach the daemon at {stale}: connection refused\n"
    if not Path("/etc/sentinel/sentinel.toml").exists():
        (tmp_path / "empty").mkdir()
        nothing = sentinel_cli("status", cwd=tmp_path / "empty")
        assert nothing.returncode == 2 and nothing.stderr.startswith("sentinel: which daemon? ")


def test_broken_includes_and_unset_variables_do_not_stop_a_client(
    sentinel: Start, monkeypatch: pytest.MonkeyPatch
) -> None:
    """status and stop read only [control]: a typo in conf.d/ and a ${VAR} the operator's shell
    lacks break the config, not the client."""
    monkeypatch.setenv("SENTINEL_TEST_NAP", "3600")
    nap = json.dumps(child("import os, time; time.sleep(int(os.environ['SENTINEL_TEST_NAP']))"))
    daemon = sentinel(f"""
        include = ["conf.d/*.toml"]
        [programs.web]
        command = {SLEEPER}
        start_seconds = 0
        environment = {{ NAP = "${{SENTINEL_TEST_NAP}}" }}
        [programs.napper]
        command = {nap}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("napper", "RUNNING"))
    (daemon.directory / "conf.d").mkdir()
    (daemon.directory / "conf.d" / "worker.toml").write_text("[programs.worker\ncommand = 'x'\n")
    operator = environment()
    operator.pop("SENTINEL_TEST_NAP")
    broken = sentinel_cli("check-config", "-c", str(daemon.config_path), env=operator)
    assert broken.returncode == 1 and "SENTINEL_TEST_NAP" in broken.stderr
    assert "worker.toml: invalid TOML" in broken.stderr

    status = sentinel_cli("-c", str(daemon.config_path), "status", env=operator)
    assert status.returncode == 0, status.stderr
    assert rows(status.stdout)["web"][1] == "RUNNING"
    stop = sentinel_cli("stop", "napper", env=operator, cwd=daemon.directory)  # ./sentinel.toml
    assert (stop.returncode, stop.stdout) == (0, "napper: stopped\n"), stop.stderr


# --- terminals --------------------------------------------------------------------------------


def test_colour_only_on_a_terminal(sentinel: Start) -> None:
    """States are coloured on a terminal (RUNNING green, FATAL red, STOPPED plain), not with
    NO_COLOR, not into a pipe."""
    daemon = sentinel(f"""
        [programs.web]
        command = {SLEEPER}
        start_seconds = 0
        [programs.idle]
        command = {SLEEPER}
        autostart = false
        [programs.broken]
        command = {json.dumps(child("raise SystemExit(3)"))}
        start_retries = 0
    """)
    daemon.wait_event(state_is("web", "RUNNING"))
    daemon.wait_event(state_is("broken", "FATAL"))
    server = ("-s", str(daemon.socket))
    code, shown = on_terminal(*server, "status")
    assert code == 0, shown
    assert "\x1b[32mRUNNING\x1b[0m" in shown and "\x1b[31mFATAL\x1b[0m" in shown
    assert rows(shown)["idle"][1] == "STOPPED"  # no colour codes around it
    code, plain = on_terminal(*server, "status", env=environment(NO_COLOR="1"))
    assert code == 0 and "\x1b" not in plain and rows(plain)["web"][1] == "RUNNING"
    piped = daemon.cli("status")
    assert "\x1b" not in piped.stdout and rows(piped.stdout)["broken"][1] == "FATAL"


def test_hostile_bytes_are_escaped_on_a_terminal_and_raw_in_a_pipe(sentinel: Start) -> None:
    """Escape sequences a program prints (tail) or a probe reports (status detail, events) are
    shown escaped on a terminal, tabs and newlines kept; tail --raw and pipes pass them as
    they are."""
    talker = child(f"""
        import sys, time
        sys.stdout.write({HOSTILE!r} + "\\n\\tindented\\n")
        sys.stdout.flush()
        sys.stdout.buffer.write(b"not UTF-8: \\xff\\xfe\\n")
        sys.stdout.flush()
        time.sleep(3600)
    """)
    probe = child(f"import sys; print({HOSTILE!r}); sys.exit(2)")
    daemon = sentinel(f"""
        [programs.talker]
        command = {json.dumps(talker)}
        start_seconds = 0
        [programs.probed]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "1h" }}
        [programs.probed.liveness]
        exec = {{ command = {json.dumps(probe)} }}
        period = "100ms"
        failure_threshold = 1
    """)
    daemon.wait_event(lambda e: e["event"] == "backoff" and e["process"] == "probed")
    server = ("-s", str(daemon.socket))

    def piped_tail() -> bytes:
        return subprocess.run(
            [sys.executable, "-m", "sentinel", *server, "tail", "talker"],
            capture_output=True, timeout=60, check=True,
        ).stdout  # fmt: skip

    wait_until(lambda: b"UTF-8" in piped_tail(), what="the output")
    escaped = r"\x1b]0;pwned\x07 \x1b[2J cleared\x0d\x08over \u202eevil \x9b1m"
    no_color = environment(NO_COLOR="1")

    code, shown = on_terminal(*server, "tail", "talker", env=no_color)
    assert code == 0 and f"{escaped}\n\tindented\nnot UTF-8: \\xff\\xfe\n" in shown, shown
    assert not set(shown) & {"\x1b", "\x07", "\r", "\x08", "\u202e", "\x9b"}
    code, raw = on_terminal(*server, "tail", "--raw", "talker", env=no_color)
    assert code == 0 and "\x1b]0;pwned\x07" in raw
    assert f"{HOSTILE}\n\tindented\n".encode() + b"not UTF-8: \xff\xfe\n" in piped_tail()

    code, status = on_terminal(*server, "status", "probed", env=no_color)
    assert code == 1 and f"liveness failed 1x: exit 2: {escaped}" in status, status
    assert "\x1b" not in status and "\u202e" not in status
    # The daemon escapes what a probe target says before it keeps it: escaped in a pipe too
    assert f"liveness failed 1x: exit 2: {escaped}" in daemon.cli("status", "probed").stdout
    code, events = on_terminal(*server, "events", env=no_color)
    assert code == 0 and f"liveness failed 1x: exit 2: {escaped}" in events, events
    assert "\x1b" not in events


# --- users ------------------------------------------------------------------------------------


def test_user_and_password_over_http(sentinel: Start) -> None:
    """--user with the right password gets in, with a wrong one or none it is told why in one
    line (exit 2); a role too low is named; the password is asked only on a terminal, unechoed."""
    daemon = sentinel(f"""
        [control]
        http = "127.0.0.1:0"
        users = [{{ name = "ops", password_hash = "{hash_password("s3cret")}", role = "operator" }}]
        [programs.web]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("web", "RUNNING"))
    url = f"http://{daemon.api('GET', '/healthz').json()['http']}"
    right, wrong = environment(SENTINEL_PASSWORD="s3cret"), environment(SENTINEL_PASSWORD="nope")

    anonymous = sentinel_cli("-s", url, "status")
    assert anonymous.returncode == 2 and anonymous.stderr.count("\n") == 1
    assert "give --user NAME" in anonymous.stderr
    allowed = sentinel_cli("-s", url, "--user", "ops", "status", env=right)
    assert allowed.returncode == 0 and rows(allowed.stdout)["web"][1] == "RUNNING"
    assert sentinel_cli("-s", url, "--user", "ops", "restart", "web", env=right).returncode == 0
    refused = sentinel_cli("-s", url, "--user", "ops", "status", env=wrong)
    assert refused.returncode == 2
    assert refused.stderr == "sentinel: user ops was refused: wrong user name or password\n"
    too_low = sentinel_cli("-s", url, "--user", "ops", "reload", env=right)
    assert too_low.returncode == 2
    assert too_low.stderr == "sentinel: ops is a operator: this needs admin\n"
    no_terminal = sentinel_cli("-s", url, "--user", "ops", "status")
    assert no_terminal.returncode == 2 and "set SENTINEL_PASSWORD" in no_terminal.stderr

    code, shown = on_terminal("-s", url, "--user", "ops", "status", typed="s3cret")
    assert code == 0, shown
    assert shown.startswith("password for ops: ") and "s3cret" not in shown
    assert "RUNNING" in shown
