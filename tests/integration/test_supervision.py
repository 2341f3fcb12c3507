"""The core supervisor against real child processes: restarts, backoff, stops, order, reload."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from tests.integration.conftest import SentinelProcess, child, pid_alive, state_is, wait_until

Start = Callable[[str], SentinelProcess]


def cmd(code: str) -> str:
    """A TOML inline array running `code` in a real Python child."""
    return json.dumps(child(code))


SLEEPER = cmd("import time; time.sleep(3600)")


def test_crash_restarts_with_configured_backoff(sentinel: Start) -> None:
    """A crashing program is restarted at once, then after initial * multiplier**(n-2), capped
    at max. (It lives past the floor on the restart rate, machine.MIN_SPAWN_INTERVAL.)"""
    daemon = sentinel(f"""
        [programs.crashy]
        command = {cmd("import time; time.sleep(0.15); raise SystemExit(3)")}
        start_seconds = 0
        autorestart = "always"
        backoff = {{ initial = "200ms", multiplier = 2.0, max = "600ms", jitter = 0 }}
    """)
    expected = [0.2, 0.4, 0.6, 0.6]
    for delay in expected:
        backoff = daemon.next_event(lambda e: e["event"] == "backoff" and e["process"] == "crashy")
        assert backoff["delay"] == delay
        restarted = daemon.next_event(state_is("crashy", "STARTING"))
        waited = restarted["timestamp"] - backoff["timestamp"]
        assert delay <= waited < delay + 0.15, (delay, waited)
    assert daemon.status("crashy")["restarts"] >= len(expected)


def test_failed_starts_go_fatal_after_start_retries(sentinel: Start) -> None:
    """A program that never stays up start_seconds is retried start_retries times, then FATAL."""
    daemon = sentinel(f"""
        [programs.broken]
        command = {cmd("raise SystemExit(2)")}
        start_seconds = "1s"
        start_retries = 2
        backoff = {{ initial = "10ms", jitter = 0 }}
    """)
    fatal = daemon.wait_event(lambda e: e["event"] == "fatal", timeout=10)
    assert "3 failed starts" in fatal["detail"]
    starts = [e for e in daemon.events if state_is("broken", "STARTING")(e)]
    assert len(starts) == 3
    assert daemon.status("broken")["state"] == "FATAL"
    assert daemon.cli("start", "broken").returncode == 1


def test_spawn_error_is_reported(sentinel: Start) -> None:
    """A command that does not exist backs off, goes FATAL, and says why."""
    daemon = sentinel("""
        [programs.missing]
        command = "/no/such/program --flag"
        start_retries = 1
        backoff = { initial = "10ms" }
    """)
    daemon.wait_event(lambda e: e["event"] == "fatal")
    assert "No such file or directory" in daemon.status("missing")["detail"]


def test_clean_exit_with_on_failure_is_exited_not_restarted(sentinel: Start) -> None:
    """Exit 0 with autorestart = on-failure ends in EXITED with no restart pending."""
    daemon = sentinel(f"""
        [programs.job]
        command = {cmd("print('done')")}
        start_seconds = 0
        autorestart = "on-failure"
        backoff = {{ initial = "0s" }}
    """)
    daemon.wait_event(state_is("job", "EXITED"))
    status = daemon.status("job")
    # The restart decision is taken at the exit itself: EXITED means none is pending.
    assert (status["state"], status["exit_code"], status["restarts"]) == ("EXITED", 0, 0)


def test_child_ignoring_sigterm_is_killed_after_stop_timeout(sentinel: Start) -> None:
    """A child that ignores the stop signal gets SIGKILL once stop_timeout has passed."""
    daemon = sentinel(f"""
        [programs.stubborn]
        command = {
        cmd('''
            import signal, time
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            print("ready", flush=True)
            time.sleep(3600)
        ''')
    }
        start_seconds = 0
        stop_timeout = "500ms"
    """)
    daemon.wait_event(state_is("stubborn", "RUNNING"))
    wait_until(  # SIGTERM is ignored from here on
        lambda: "ready" in daemon.cli("tail", "stubborn").stdout, what="the child to be ready"
    )
    began = time.monotonic()
    result = daemon.cli("stop", "stubborn")
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    assert 0.5 <= took < 3.0
    status = daemon.status("stubborn")
    assert (status["state"], status["exit_code"]) == ("STOPPED", -signal.SIGKILL)
    assert "stubborn: still running 0.5s after the stop signal: SIGKILL" in daemon.log()


def test_grandchildren_are_left_behind_by_nothing(sentinel: Start, tmp_path: Path) -> None:
    """A grandchild in the group and one that escaped with setsid, both ignoring SIGTERM:
    a restart spawns, a stop returns and a shutdown exits only once they are gone."""
    pids = tmp_path / "pids"
    forker = cmd(f"""
        import os, signal, sys, time
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # inherited by both children
        stay = os.fork()
        if stay == 0:
            time.sleep(3600); os._exit(0)
        escape = os.fork()
        if escape == 0:
            os.setsid()
            if os.fork():  # double fork: the grandchild's child escapes the process group
                os._exit(0)
            time.sleep(3600); os._exit(0)
        os.waitpid(escape, 0)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)  # the main process stops on TERM
        with open({str(pids)!r} + ".tmp", "w") as f:
            f.write(str(stay))
        os.rename({str(pids)!r} + ".tmp", {str(pids)!r})
        time.sleep(3600)
    """)
    daemon = sentinel(f"""
        [programs.forker]
        command = {forker}
        start_seconds = 0
        stop_timeout = "1s"
    """)

    def leftovers() -> set[int]:
        """The running forker's two children, once it has written that it is ready."""
        wait_until(pids.exists, what="the child to write its pids")
        stay = int(pids.read_text())
        pids.unlink()
        escaped = wait_until(
            lambda: _escaped_pids(daemon, exclude={stay}), what="the escaped grandchild"
        )
        found = {stay, *escaped}
        assert all(pid_alive(p) for p in found)
        return found

    daemon.wait_event(state_is("forker", "RUNNING"))
    first = leftovers()
    began = time.monotonic()
    assert daemon.cli("restart", "forker").returncode == 0
    assert time.monotonic() - began >= 1.0  # stop_timeout, then SIGKILL
    assert not any(pid_alive(p) for p in first)  # before the new process ran
    second = leftovers()
    assert daemon.cli("stop", "forker").returncode == 0
    assert not any(pid_alive(p) for p in second)
    assert daemon.status("forker")["state"] == "STOPPED"

    assert daemon.cli("start", "forker").returncode == 0
    third = leftovers()
    assert daemon.terminate(timeout=10) == 0
    assert not any(pid_alive(p) for p in third)


def _escaped_pids(daemon: SentinelProcess, exclude: set[int]) -> set[int]:
    """Descendants of the daemon running the test child, other than the known ones."""
    assert daemon.proc is not None
    main = daemon.status("forker")["pid"]
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) not in {main, *exclude}:
            try:
                env = (entry / "environ").read_bytes()
            except OSError:
                continue
            if b"SENTINEL_PROCESS_NAME=forker\0" in env:
                found.add(int(entry.name))
    return found


def test_sigkill_of_a_running_child_brings_a_new_pid(sentinel: Start) -> None:
    """SIGKILL of a RUNNING child -> restart (reason exited) with a new pid."""
    daemon = sentinel(f"""
        [programs.victim]
        command = {SLEEPER}
        start_seconds = 0
        backoff = {{ initial = "0s" }}
    """)
    daemon.wait_event(state_is("victim", "RUNNING"))
    old = daemon.status("victim")["pid"]
    os.kill(old, signal.SIGKILL)
    restart = daemon.next_event(lambda e: e["event"] == "restart")
    assert (restart["reason"], restart["exit_code"]) == ("exited", -signal.SIGKILL)
    running = daemon.next_event(state_is("victim", "RUNNING"))
    assert running["pid"] != old and pid_alive(running["pid"])
    assert not pid_alive(old)


def test_first_restart_is_immediate_then_the_backoff_grows(sentinel: Start) -> None:
    """With the default backoff, a crash after a run is repaired at once (no BACKOFF, no
    second's wait); the next crash in a row waits `initial`. (RUNNING comes past the floor on
    the restart rate, machine.MIN_SPAWN_INTERVAL.)"""
    daemon = sentinel(f"""
        [programs.victim]
        command = {SLEEPER}
        start_seconds = "150ms"
        backoff = {{ jitter = 0 }}
    """)
    pid = daemon.wait_event(state_is("victim", "RUNNING"))["pid"]
    killed = time.time()
    os.kill(pid, signal.SIGKILL)
    restart = daemon.next_event(lambda e: e["event"] == "restart")
    running = daemon.next_event(state_is("victim", "RUNNING"))
    assert restart["reason"] == "exited" and running["timestamp"] - killed < 0.65
    assert not [e for e in daemon.events if e["event"] == "backoff"]
    os.kill(running["pid"], signal.SIGKILL)
    backoff = daemon.next_event(lambda e: e["event"] == "backoff")
    assert (backoff["attempt"], backoff["delay"]) == (2, 1.0)


def test_an_exit_with_leftovers_is_stopping_until_they_are_gone(sentinel: Start) -> None:
    """The main process exits while a child in its group ignores SIGTERM: STOPPING with no
    pid (never the dead one), not up in the metrics, no probes, and the restart comes once
    the child is gone (SIGKILL at stop_timeout)."""
    forker = cmd("""
        import os, signal, time
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            time.sleep(3600)
            os._exit(0)
        signal.signal(signal.SIGUSR1, lambda *_: os._exit(1))
        time.sleep(3600)
    """)
    daemon = sentinel(f"""
        [programs.app]
        command = {forker}
        start_seconds = 0
        stop_timeout = "1s"
        [programs.app.liveness]
        exec = {{ command = ["true"] }}
        period = "50ms"
    """)
    pid = daemon.wait_event(state_is("app", "RUNNING"))["pid"]
    daemon.next_event(lambda e: e["event"] == "probe_result" and e["process"] == "app")
    (leftover,) = wait_until(lambda: _children(pid), what="the forked child")
    os.kill(pid, signal.SIGUSR1)
    stopping = daemon.next_event(state_is("app", "STOPPING"))
    assert stopping["pid"] is None
    assert stopping["reason"] == "exited with 1; stopping what it left behind"
    status = daemon.status("app")
    assert (status["state"], status["pid"], status["exit_code"]) == ("STOPPING", None, 1)
    metrics = daemon.api("GET", "/metrics").text
    assert 'sentinel_program_up{process="app",program="app",group="app"} 0.0\n' in metrics
    assert (
        'sentinel_program_state{process="app",program="app",group="app",state="STOPPING"} 1.0\n'
        in metrics
    )

    restart = daemon.next_event(lambda e: e["event"] == "restart", timeout=5)
    assert (restart["reason"], restart["exit_code"]) == ("exited", 1)
    assert 1.0 <= restart["timestamp"] - stopping["timestamp"] < 1.5  # stop_timeout, then KILL
    assert not pid_alive(leftover)
    between = daemon.events[daemon.events.index(stopping) :]
    assert not [e for e in between if e["event"] == "probe_result"]
    assert "app: still running 1s after the stop signal: SIGKILL" in daemon.log()


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_priority_order_on_start_and_stop(sentinel: Start) -> None:
    """Lower priority starts first and stops last."""
    daemon = sentinel(f"""
        [programs.c]
        command = {SLEEPER}
        priority = 30
        [programs.a]
        command = {SLEEPER}
        priority = 10
        [programs.b]
        command = {SLEEPER}
        priority = 20
        stop_signal = "INT"
    """)
    for name in "abc":
        daemon.wait_event(state_is(name, "RUNNING"))
    starts = [
        e["process"]
        for e in daemon.events
        if e["event"] == "state_changed" and e["new"] == "STARTING"
    ]
    assert starts == ["a", "b", "c"]
    assert daemon.terminate() == 0
    stops = [
        e["process"]
        for e in daemon.events
        if e["event"] == "state_changed" and e["new"] == "STOPPED"
    ]
    assert stops == ["c", "b", "a"]
    # A tier is fully stopped before the next one is asked to stop.
    order = [(e["process"], e["new"]) for e in daemon.events if e["new"] in ("STOPPING", "STOPPED")]
    assert order == [("c", "STOPPING"), ("c", "STOPPED"), ("b", "STOPPING"), ("b", "STOPPED"),
                     ("a", "STOPPING"), ("a", "STOPPED")]  # fmt: skip


def test_rotation_under_a_fast_writer_loses_no_line(sentinel: Start, tmp_path: Path) -> None:
    """200k lines written as fast as possible survive many rotations, whole and in order."""
    lines = 200_000
    firehose = cmd(f"""
        import sys
        out = sys.stdout.buffer
        for start in range(0, {lines}, 5000):
            out.write(b"".join(b"line %07d of the firehose\\n" % n for n in range(start, start + 5000)))
        out.flush()
    """)
    daemon = sentinel(f"""
        [programs.firehose]
        command = {firehose}
        start_seconds = 0
        autorestart = "never"
        stdout = {{ max_bytes = "256KiB", backups = 100 }}
    """)
    daemon.wait_event(state_is("firehose", "EXITED"), timeout=30)
    log = tmp_path / "logs" / "firehose.stdout.log"
    expected = b"".join(b"line %07d of the firehose\n" % n for n in range(lines))
    files = [log.with_name(f"{log.name}.{n}") for n in range(100, 0, -1)] + [log]
    wait_until(
        lambda: sum(f.stat().st_size for f in files if f.exists()) == len(expected),
        what="the log to drain",
    )
    chunks = [f.read_bytes() for f in files if f.exists()]
    assert len(chunks) > 20
    assert b"".join(chunks) == expected
    assert all(len(c) <= 256 * 1024 and c.endswith(b"\n") for c in chunks)
    tail = daemon.cli("tail", "firehose")
    assert tail.stdout.endswith(f"line {lines - 1:07d} of the firehose\n")


def test_reload_changes_only_what_changed(sentinel: Start) -> None:
    """Reload adds, removes and restarts what changed; unchanged and stopped programs stay put."""
    config = """
        [programs.keep]
        command = {sleeper}
        start_seconds = 0
        [programs.change]
        command = {sleeper}
        start_seconds = 0
        environment = {{ VERSION = "{version}" }}
        [programs.parked]
        command = {sleeper}
        start_seconds = 0
        environment = {{ VERSION = "{version}" }}
        {extra}
    """
    old = config.format(
        sleeper=SLEEPER,
        version="1",
        extra=f"[programs.remove]\ncommand = {SLEEPER}\nstart_seconds = 0",
    )
    daemon = sentinel(old)
    for name in ("keep", "change", "parked", "remove"):
        daemon.wait_event(state_is(name, "RUNNING"))
    assert daemon.cli("stop", "parked").returncode == 0
    pids = {name: daemon.status(name)["pid"] for name in ("keep", "change")}

    new = config.format(
        sleeper=SLEEPER,
        version="2",
        extra=f"[programs.add]\ncommand = {SLEEPER}\nstart_seconds = 0",
    )
    daemon.config_path.write_text(new)
    result = daemon.cli("reload")
    assert result.returncode == 0, result.stderr
    assert "added: add" in result.stdout and "removed: remove" in result.stdout
    assert "changed: change, parked" in result.stdout
    restart = daemon.wait_event(lambda e: e["event"] == "restart" and e["process"] == "change")
    assert restart["reason"] == "reload"
    daemon.wait_event(state_is("add", "RUNNING"))
    daemon.wait_event(state_is("change", "RUNNING"))
    assert daemon.status("keep")["pid"] == pids["keep"]
    assert daemon.status("change")["pid"] != pids["change"]
    assert not pid_alive(pids["change"])
    assert daemon.status("parked")["state"] == "STOPPED"
    assert daemon.api("GET", "/api/v1/programs/remove").status_code == 404


def test_scaling_starts_and_stops_only_the_difference(sentinel: Start) -> None:
    """instances 2 -> 4 -> 1 with a name template: the survivors keep their pids; only the
    new ones start and only the removed ones stop."""
    config = """
        [programs.w]
        command = {sleeper}
        start_seconds = 0
        instances = {n}
        name = "{{program}}_{{instance}}"
    """
    daemon = sentinel(config.format(sleeper=SLEEPER, n=2))
    pids = {n: daemon.wait_event(state_is(n, "RUNNING"))["pid"] for n in ("w_0", "w_1")}

    def reload(n: int) -> str:
        daemon.config_path.write_text(config.format(sleeper=SLEEPER, n=n))
        result = daemon.cli("reload")
        assert result.returncode == 0, result.stderr
        return result.stdout

    out = reload(4)
    assert "added: w_2, w_3" in out and "changed: -" in out and "removed: -" in out
    for name in ("w_2", "w_3"):
        daemon.wait_event(state_is(name, "RUNNING"))
    assert {n: daemon.status(n)["pid"] for n in pids} == pids
    out = reload(1)
    assert "removed: w_1, w_2, w_3" in out and "changed: -" in out
    assert daemon.status("w_0")["pid"] == pids["w_0"] and pid_alive(pids["w_0"])
    assert not pid_alive(pids["w_1"])
    assert not [e for e in daemon.events if e["event"] == "restart"]


def test_bad_config_on_reload_names_the_key_and_keeps_running(sentinel: Start) -> None:
    """A bad config is rejected with the file and key named; the running set is untouched."""
    daemon = sentinel(f"""
        [programs.web]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("web", "RUNNING"))
    pid = daemon.status("web")["pid"]
    daemon.config_path.write_text(f'[programs.web]\ncommand = {SLEEPER}\nstop_timeout = "soon"\n')
    result = daemon.cli("reload")
    assert result.returncode == 1
    assert f"{daemon.config_path}: programs.web.stop_timeout: expected a duration" in result.stderr
    check = daemon.cli("check-config", "-c", str(daemon.config_path))
    assert check.returncode == 1 and "programs.web.stop_timeout" in check.stderr
    rejected = daemon.wait_event(lambda e: e["event"] == "config_reloaded" and not e["ok"])
    os.kill(daemon.proc.pid, signal.SIGHUP)  # type: ignore[union-attr]
    again = daemon.next_event(lambda e: e["event"] == "config_reloaded")  # the SIGHUP's own
    assert not again["ok"] and again is not rejected
    assert daemon.status("web")["pid"] == pid


def test_sighup_reloads_and_sigterm_stops_everything(sentinel: Start) -> None:
    """SIGHUP reloads the config; SIGTERM stops every program and exits 0."""
    daemon = sentinel(f"""
        [programs.one]
        command = {SLEEPER}
        start_seconds = 0
    """)
    daemon.wait_event(state_is("one", "RUNNING"))
    daemon.config_path.write_text(
        daemon.config_path.read_text()
        + f"\n[programs.two]\ncommand = {SLEEPER}\nstart_seconds = 0\n"
    )
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGHUP)
    daemon.wait_event(state_is("two", "RUNNING"))
    pids = [daemon.status(n)["pid"] for n in ("one", "two")]
    assert daemon.terminate() == 0
    assert not any(pid_alive(p) for p in pids)
    assert not daemon.socket.exists()


def test_cli_status_json_and_commands(sentinel: Start) -> None:
    """status --json has the documented fields; start/stop/restart wait for the wanted state."""
    daemon = sentinel(f"""
        [programs.web]
        command = {SLEEPER}
        start_seconds = "200ms"
        group = "front"
        [programs.api]
        command = {SLEEPER}
        start_seconds = "200ms"
        group = "front"
        autostart = false
    """)
    daemon.wait_event(state_is("web", "RUNNING"))
    status = json.loads(daemon.cli("status", "--json").stdout)
    web = next(p for p in status if p["name"] == "web")
    assert {
        "name",
        "group",
        "state",
        "pid",
        "exit_code",
        "restarts",
        "uptime_seconds",
        "health",
        "ready",
    } <= set(web)
    assert (web["group"], web["state"], web["health"], web["ready"]) == (
        "front",
        "RUNNING",
        "unknown",
        True,
    )
    api = next(p for p in status if p["name"] == "api")
    assert (api["state"], api["pid"]) == ("STOPPED", None)

    assert daemon.cli("status", "api").returncode == 1
    front = json.loads(daemon.cli("status", "front:*", "--json").stdout)
    assert sorted(p["name"] for p in front) == ["api", "web"]
    nogroup = daemon.cli("status", "back:*")
    assert nogroup.returncode == 2 and "no such group: back" in nogroup.stderr
    # -s before the command, as supervisorctl takes it
    before = subprocess.run(
        [sys.executable, "-m", "sentinel", "-s", str(daemon.socket), "status", "web"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert before.returncode == 0 and "RUNNING" in before.stdout, before.stderr
    started = daemon.cli("start", "front:*")
    assert started.returncode == 0 and "api: started" in started.stdout
    assert daemon.status("api")["state"] == "RUNNING"  # start returned once RUNNING
    old = daemon.status("web")["pid"]
    assert daemon.cli("restart", "web").returncode == 0
    assert daemon.status("web")["state"] == "RUNNING" and daemon.status("web")["pid"] != old
    assert daemon.status("web")["restarts"] == 1
    assert daemon.cli("stop", "all").returncode == 0
    assert {p["state"] for p in json.loads(daemon.cli("status", "--json").stdout)} == {"STOPPED"}
    missing = daemon.cli("start", "nope")
    assert missing.returncode == 2 and "no such process" in missing.stderr
    assert daemon.terminate() == 0
    for command in ("reload", "status"):  # no daemon: exit 2, a message, no traceback
        unreachable = daemon.cli(command)
        assert unreachable.returncode == 2, unreachable.stderr
        assert unreachable.stderr.startswith("sentinel: cannot reach the daemon at ")
        assert "Traceback" not in unreachable.stderr
