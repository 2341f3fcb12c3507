"""Supervisor's XML-RPC on /RPC2: the real supervisorctl against a real sentinel, side by side
with a real supervisord; every method and fault through xmlrpc.client; roles; hostile bodies."""

from __future__ import annotations

import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
import xmlrpc.client
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from supervisor.rpcinterface import SupervisorNamespaceRPCInterface
from supervisor.xmlrpc import SupervisorTransport, SystemNamespaceRPCInterface

from sentinel import __version__
from sentinel.auth import hash_password
from tests.conftest import require_binary
from tests.integration.conftest import SentinelProcess, state_is, wait_until

PASSWORD = "correct horse"
HASH = hash_password(PASSWORD)
USERS = f"""users = [
    {{ name = "admin", password_hash = "{HASH}", role = "admin" }},
    {{ name = "ops", password_hash = "{HASH}", role = "operator" }},
    {{ name = "view", password_hash = "{HASH}", role = "viewer" }},
]"""
MISSING = "/nonexistent/sentinel-test-program"

# Programs as files, so that supervisord's command line can name them too.
WEB = """
import signal, sys, time
for sig in (signal.SIGHUP, signal.SIGUSR1):
    signal.signal(sig, lambda n, _: print("got", signal.Signals(n).name, flush=True))
print("ready", flush=True)
print("to stderr", file=sys.stderr, flush=True)
while True:
    time.sleep(3600)
"""
CRASHER = """
import sys, time
time.sleep(0.2)
print("oops", file=sys.stderr, flush=True)
sys.exit(3)
"""
STUBBORN = """
import signal, time
signal.signal(signal.SIGTERM, lambda *_: print("not yet", flush=True))
print("ready", flush=True)
while True:
    time.sleep(3600)
"""


def write_programs(directory: Path) -> dict[str, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    scripts = {}
    for name, code in (("web", WEB), ("crasher", CRASHER), ("stubborn", STUBBORN)):
        scripts[name] = directory / f"{name}.py"
        scripts[name].write_text(textwrap.dedent(code))
    return scripts


def sentinel_config(
    scripts: dict[str, Path], *, users: bool = True, quick: bool = False, extra: str = ""
) -> str:
    """web, workers:worker_0 and _1, crasher (exits at once), nope (no such command); `quick`:
    web and the workers are RUNNING as soon as they are spawned."""
    py = json.dumps(sys.executable)
    start_seconds = "start_seconds = 0" if quick else ""

    def argv(name: str) -> str:
        return f'[{py}, "-u", {json.dumps(str(scripts[name]))}]'

    return f"""
        [control]
        http = "127.0.0.1:0"
        {USERS if users else ""}

        [programs.web]
        command = {argv("web")}
        priority = 10
        {start_seconds}

        [programs.worker]
        command = {argv("web")}
        instances = 2
        group = "workers"
        priority = 20
        {start_seconds}

        [programs.crasher]
        command = {argv("crasher")}
        autostart = false
        start_retries = 0
        start_seconds = 5  # its exit is early however slow the machine (and supervisord's reaping)
        priority = 30

        [programs.nope]
        command = ["{MISSING}"]
        autostart = false
        priority = 40
        {extra}
    """


def supervisord_config(directory: Path, scripts: dict[str, Path], sock: Path) -> str:
    py = sys.executable
    return f"""
[unix_http_server]
file={sock}
username=admin
password={PASSWORD}

[supervisord]
nodaemon=true
logfile={directory}/supervisord.log
pidfile={directory}/supervisord.pid
childlogdir={directory}

[rpcinterface:supervisor]
supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface

[supervisorctl]

[program:web]
command={py} -u {scripts["web"]}
priority=10

[program:worker]
command={py} -u {scripts["web"]}
numprocs=2
process_name=%(program_name)s_%(process_num)d
priority=20

[group:workers]
programs=worker
priority=20

[program:crasher]
command={py} -u {scripts["crasher"]}
autostart=false
startretries=0
startsecs=5
priority=30

[program:nope]
command={MISSING}
autostart=false
priority=40
"""


def supervisor_script(name: str) -> str:
    """supervisorctl or supervisord, from the `supervisor` package of the [test] extra."""
    return require_binary(name, str(Path(sys.executable).parent))


def http_address(daemon: SentinelProcess) -> str:
    address = daemon.api("GET", "/healthz").json()["http"]
    assert address and address.startswith("127.0.0.1:"), address
    return str(address)


def proxy(server: str, user: str | None = "admin", password: str = PASSWORD) -> Any:
    """An XML-RPC client as supervisorctl builds it: server is http://HOST:PORT or unix://PATH."""
    transport = SupervisorTransport(user, password if user else None, server)
    return xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport)


@dataclass
class Ctl:
    """The real supervisorctl against one server, with a config of its own (so that no
    supervisord.conf around is read)."""

    server: str
    conf: Path
    binary: str = field(default_factory=lambda: supervisor_script("supervisorctl"))

    def __call__(
        self, *args: str, user: str | None = "admin", password: str = PASSWORD
    ) -> tuple[int, str]:
        argv = [self.binary, "-c", str(self.conf), "-s", self.server]
        if user is not None:
            argv += ["-u", user, "-p", password]
        done = subprocess.run(
            [*argv, *args], capture_output=True, text=True, timeout=90, check=False,
            stdin=subprocess.DEVNULL, cwd=self.conf.parent,
        )  # fmt: skip
        return done.returncode, done.stdout + done.stderr


def ctl_for(tmp_path: Path, server: str) -> Ctl:
    conf = tmp_path / "supervisorctl.conf"
    conf.write_text("[supervisorctl]\n")
    return Ctl(server, conf)


@dataclass
class Rig:
    daemon: SentinelProcess
    address: str
    ctl: Ctl
    server: str
    clients: list[Any] = field(default_factory=list)

    def rpc(self, user: str | None = "admin") -> Any:
        """A client as that user (closed when the test ends)."""
        self.clients.append(proxy(self.server, user))
        return self.clients[-1]

    def close(self) -> None:
        for client in self.clients:
            client("close")()


@pytest.fixture
def rig(tmp_path: Path, sentinel: Callable[[str], SentinelProcess]) -> Iterator[Rig]:
    """A sentinel with users, its programs RUNNING, and supervisorctl pointed at it."""
    scripts = write_programs(tmp_path / "programs")
    daemon = sentinel(sentinel_config(scripts, quick=True))
    address = http_address(daemon)
    for name in ("web", "worker_0", "worker_1"):
        daemon.wait_event(state_is(name, "RUNNING"))
    rig = Rig(daemon, address, ctl_for(tmp_path, f"http://{address}"), f"http://{address}")
    yield rig
    rig.close()


def fault_of(call: Callable[[], object]) -> tuple[int, str]:
    with pytest.raises(xmlrpc.client.Fault) as caught:
        call()
    return caught.value.faultCode, caught.value.faultString


# --- supervisorctl, side by side with supervisord ---------------------------------------------


class Supervisord:
    """A real supervisord on a unix socket, with the same programs."""

    def __init__(self, directory: Path, scripts: dict[str, Path]) -> None:
        directory.mkdir()
        self.sock = directory / "supervisor.sock"
        self.conf = directory / "supervisord.conf"
        self.conf.write_text(supervisord_config(directory, scripts, self.sock))
        self.proc = subprocess.Popen(
            [supervisor_script("supervisord"), "-n", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            cwd=directory,
        )  # fmt: skip
        self.server = f"unix://{self.sock}"
        self.ctl = Ctl(self.server, self.conf)

    def answering(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"supervisord exited with {self.proc.returncode}")
        try:
            with proxy(self.server) as rpc:
                return bool(rpc.supervisor.getState()["statename"] == "RUNNING")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        assert self.proc.wait(60) == 0


def states(server: str) -> dict[str, str]:
    with proxy(server) as rpc:
        return {p["name"]: p["statename"] for p in rpc.supervisor.getAllProcessInfo()}


def sorted_lines(output: str) -> str:
    return "".join(sorted(output.splitlines(keepends=True)))


def normalized(output: str) -> str:
    """What differs between two runs of the same thing: pids, uptimes, dates, paths."""
    output = re.sub(r"pid \d+, uptime \d+:\d\d:\d\d", "pid N, uptime T", output)
    output = re.sub(r"[A-Z][a-z]{2} \d\d \d\d:\d\d [AP]M", "DATE", output)
    output = re.sub(r"file: \S+ line: \d+", "file: F line: L", output)
    return re.sub(r"^\d+$", "N", output, flags=re.MULTILINE)


def test_supervisorctl_answers_as_against_supervisord(
    tmp_path: Path, sentinel: Callable[[str], SentinelProcess]
) -> None:
    """The same commands against sentinel and against supervisord, with the same programs:
    the same output (pids, uptimes and dates aside) and the same exit status."""
    scripts = write_programs(tmp_path / "programs")
    daemon = sentinel(sentinel_config(scripts))
    ours = ctl_for(tmp_path, f"http://{http_address(daemon)}")
    theirs = Supervisord(tmp_path / "supervisord", scripts)
    try:
        wait_until(theirs.answering, 30, "supervisord")
        for server in (ours.server, theirs.server):
            wait_until(
                lambda s=server: states(s)
                == {"web": "RUNNING", "worker_0": "RUNNING", "worker_1": "RUNNING",
                    "crasher": "STOPPED", "nope": "STOPPED"},
                30, f"the programs RUNNING on {server}",
            )  # fmt: skip

        def same(
            *args: str,
            settle: Callable[[str], bool] | None = None,
            any_order: bool = False,
            **credentials: Any,
        ) -> str:
            results: dict[str, tuple[int, str]] = {}

            def run(which: str, ctl: Ctl) -> None:
                results[which] = ctl(*args, **credentials)
                if settle is not None:
                    wait_until(lambda: settle(ctl.server), 30, f"{args} to settle ({which})")

            # Both at once: the commands that wait (start, stop) wait in parallel.
            threads = [
                threading.Thread(target=run, args=("sentinel", ours)),
                threading.Thread(target=run, args=("supervisord", theirs.ctl)),
            ]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(120)
            code, output = results["sentinel"]
            expected_code, expected = results["supervisord"]
            if any_order:  # supervisord lists a group's processes as each is done
                output, expected = sorted_lines(output), sorted_lines(expected)
            assert (code, normalized(output)) == (expected_code, normalized(expected)), (
                f"supervisorctl {' '.join(args)}"
            )
            return output

        def fatal(name: str) -> Callable[[str], bool]:
            return lambda server: states(server)[name] == "FATAL"

        assert same("status").count("RUNNING") == 3
        same("status", "web", "workers:*")
        same("status", "nosuch")
        same("pid", "web")
        same("pid", "all")
        same("pid", "nosuch")
        assert same("stop", "web") == "web: stopped\n"
        assert same("stop", "web") == "web: ERROR (not running)\n"
        assert re.match(r"web +STOPPED +DATE\n$", normalized(same("status", "web")))
        assert same("start", "web") == "web: started\n"
        assert same("start", "web") == "web: ERROR (already started)\n"
        assert same("restart", "web") == "web: stopped\nweb: started\n"
        same("stop", "workers:*", any_order=True)
        same("start", "workers:worker_0")
        same("start", "workers:*", any_order=True)
        same("signal", "HUP", "web")
        same("signal", "FOO", "web")
        same("signal", "HUP", "nope")
        same("signal", "USR1", "workers:*")
        same("start", "crasher", settle=fatal("crasher"))
        same("status", "crasher")
        same("start", "nope")
        same("status", "nope")
        same("start", "nosuch")
        same("start", "nosuch:*")
        same("stop", "nosuch")
        same("stop", "nosuch:*")
        wait_until(lambda: b"got SIGHUP" in (daemon.directory / "logs/web.stdout.log").read_bytes())
        assert "got SIGHUP" in same("tail", "web")
        same("tail", "web", "stderr")
        assert same("tail", "crasher", "stderr") == "oops\n\n"
        same("stop", "all", any_order=True)
        same("start", "all", settle=fatal("crasher"), any_order=True)
        same("status")
        same("avail")
        same("status", user=None)  # no credentials: "Server requires authentication"
    finally:
        theirs.stop()


# --- supervisorctl: what only sentinel has -----------------------------------------------------


def test_supervisorctl_version_pid_and_main_log(rig: Rig) -> None:
    assert rig.ctl("version") == (0, f"{__version__}\n")
    assert rig.daemon.proc is not None
    assert rig.ctl("pid") == (0, f"{rig.daemon.proc.pid}\n")
    assert rig.ctl("maintail") == (1, "supervisord: ERROR (no log file)\n")
    assert rig.ctl("clear", "web") == (1, "web: ERROR (failed)\n")


def test_supervisorctl_over_the_unix_socket(rig: Rig) -> None:
    """sentinel's own user on the unix socket is admin, without a password, as with sentinel's
    CLI."""
    ctl = Ctl(f"unix://{rig.daemon.socket}", rig.ctl.conf)
    code, output = ctl("stop", "web", user=None)
    assert (code, output) == (0, "web: stopped\n")
    code, output = ctl("status", user=None)
    assert code == 3 and re.search(r"^web +STOPPED ", output, re.MULTILINE), output


def test_roles_through_supervisorctl(rig: Rig) -> None:
    """A viewer cannot stop, an operator cannot read logs or shut down, a wrong password and no
    password are refused; nothing they ask for happens."""
    ctl = rig.ctl
    code, output = ctl("stop", "web", user="view")
    assert (code, output) == (
        1,
        "FAILED: view (viewer) may not call supervisor.stopProcess: it needs the operator role\n",
    )
    code, output = ctl("stop", "all", user="view")
    assert code == 1 and "it needs the operator role" in output, output
    code, output = ctl("tail", "web", user="ops")
    assert (code, output) == (1, "web: ERROR (unknown error reading log)\n")
    code, output = ctl("shutdown", user="ops")
    assert code == 1 and "supervisor.shutdown: it needs the admin role" in output, output
    for user, password in (("view", "wrong"), ("nobody", PASSWORD), (None, "")):
        code, output = ctl("status", user=user, password=password)
        assert code == 1 and output.startswith("Server requires authentication\n"), output
    assert states(rig.server)["web"] == "RUNNING"
    assert rig.daemon.proc is not None and rig.daemon.proc.poll() is None
    assert ctl("stop", "web", user="ops") == (0, "web: stopped\n")
    assert ctl("status", "web", user="view")[0] == 3
    audit = [
        json.loads(line)
        for line in (rig.daemon.directory / "state/audit.jsonl").read_text().splitlines()
    ]
    stops = [(e["who"], e["result"]) for e in audit if e["action"] == "supervisor.stopProcess"]
    assert stops == [
        ("view", "refused: view (viewer) may not call supervisor.stopProcess: it needs the "
         "operator role"),
        ("ops", "ok"),
    ]  # fmt: skip
    assert any(e["action"] == "POST /RPC2" and e["result"].startswith("refused") for e in audit)


# --- every method, through xmlrpc.client ------------------------------------------------------


def test_every_supervisor_method_is_there_with_its_signature(rig: Rig) -> None:
    """The methods supervisord has (its own introspection, from its code), each with the
    signature supervisord gives it, and a help text."""
    rpc = rig.rpc("view")
    system = SystemNamespaceRPCInterface([("supervisor", SupervisorNamespaceRPCInterface(None))])
    theirs = system.listMethods()
    ours = rpc.system.listMethods()
    assert ours == sorted(ours)
    assert set(theirs) == set(ours)
    for name in theirs:
        assert rpc.system.methodSignature(name) == system.methodSignature(name), name
        assert rpc.system.methodHelp(name), name
    assert fault_of(lambda: rpc.system.methodHelp("supervisor.nope")) == (
        4,
        "SIGNATURE_UNSUPPORTED",
    )
    assert fault_of(lambda: rpc.system.methodSignature("x"))[0] == 4


def test_the_daemon_methods(rig: Rig) -> None:
    rpc = rig.rpc("view")
    assert rpc.supervisor.getAPIVersion() == rpc.supervisor.getVersion() == "3.0"
    assert rpc.supervisor.getSupervisorVersion() == __version__
    assert rpc.supervisor.getIdentification() == "sentinel"
    assert rpc.supervisor.getState() == {"statecode": 1, "statename": "RUNNING"}
    assert rig.daemon.proc is not None
    assert rpc.supervisor.getPID() == rig.daemon.proc.pid
    admin = rig.rpc()
    assert fault_of(lambda: admin.supervisor.readLog(0, 0))[0] == 20  # NO_FILE
    assert fault_of(lambda: admin.supervisor.readMainLog(-100, 0))[0] == 20
    assert fault_of(admin.supervisor.clearLog)[0] == 20
    assert fault_of(lambda: admin.supervisor.sendRemoteCommEvent("t", "d"))[0] == 30
    assert fault_of(lambda: admin.supervisor.sendProcessStdin("web", "x")) == (
        20, "NO_FILE: web: its stdin is /dev/null",
    )  # fmt: skip
    assert fault_of(lambda: admin.supervisor.sendProcessStdin("crasher", "x"))[0] == 70
    assert fault_of(lambda: admin.supervisor.sendProcessStdin("nosuch", "x"))[0] == 10


def test_process_info(rig: Rig) -> None:
    rpc = rig.rpc("view")
    before = time.time()
    web = rpc.supervisor.getProcessInfo("web")
    assert web == rpc.supervisor.getProcessInfo("web:web")
    assert set(web) == {
        "name", "group", "start", "stop", "now", "state", "statename", "spawnerr",
        "exitstatus", "logfile", "stdout_logfile", "stderr_logfile", "pid", "description",
    }  # fmt: skip
    status = rig.daemon.status("web")
    assert (web["name"], web["group"], web["state"], web["statename"]) == (
        "web",
        "web",
        20,
        "RUNNING",
    )
    assert web["pid"] == status["pid"] and web["description"].startswith(
        f"pid {status['pid']}, uptime 0:0"
    )
    assert web["start"] == int(status["start_time"]) and web["stop"] == 0
    assert abs(web["now"] - before) < 5 and web["spawnerr"] == "" and web["exitstatus"] == 0
    logs = rig.daemon.directory / "logs"
    assert web["logfile"] == web["stdout_logfile"] == str(logs / "web.stdout.log")
    assert web["stderr_logfile"] == str(logs / "web.stderr.log")
    worker = rpc.supervisor.getProcessInfo("workers:worker_1")
    assert (worker["name"], worker["group"]) == ("worker_1", "workers")
    bare = rpc.supervisor.getProcessInfo("worker_1")  # sentinel's own names work too
    assert (bare["name"], bare["group"], bare["pid"]) == ("worker_1", "workers", worker["pid"])
    nope = rpc.supervisor.getProcessInfo("nope")
    assert (nope["statename"], nope["description"], nope["pid"], nope["start"]) == (
        "STOPPED",
        "Not started",
        0,
        0,
    )
    for name in ("nosuch", "workers:*", "workers:nosuch", "web:worker_0", "all"):
        assert fault_of(lambda n=name: rpc.supervisor.getProcessInfo(n)) == (
            10,
            f"BAD_NAME: {name}",
        )
    assert fault_of(lambda: rpc.supervisor.getProcessInfo("")) == (10, "BAD_NAME")
    every = rpc.supervisor.getAllProcessInfo()
    assert [(p["group"], p["name"]) for p in every] == [
        ("crasher", "crasher"), ("nope", "nope"), ("web", "web"),
        ("workers", "worker_0"), ("workers", "worker_1"),
    ]  # fmt: skip
    assert every[2] | {"now": 0, "description": ""} == web | {"now": 0, "description": ""}


def test_config_info(rig: Rig) -> None:
    ours = rig.rpc("view").supervisor.getAllConfigInfo()
    keys = {
        "autostart", "directory", "uid", "command", "exitcodes", "group", "group_prio", "inuse",
        "killasgroup", "name", "process_prio", "redirect_stderr", "startretries", "startsecs",
        "stdout_capture_maxbytes", "stdout_events_enabled", "stdout_logfile",
        "stdout_logfile_backups", "stdout_logfile_maxbytes", "stdout_syslog", "stopsignal",
        "stopwaitsecs", "stderr_capture_maxbytes", "stderr_events_enabled", "stderr_logfile",
        "stderr_logfile_backups", "stderr_logfile_maxbytes", "stderr_syslog", "serverurl",
    }  # fmt: skip
    assert [c["name"] for c in ours] == ["crasher", "nope", "web", "worker_0", "worker_1"]
    assert all(set(c) == keys for c in ours)
    web = ours[2]
    assert (
        web["group"],
        web["inuse"],
        web["autostart"],
        web["process_prio"],
        web["group_prio"],
    ) == ("web", True, True, 10, 10)
    assert (web["startsecs"], web["stopsignal"], web["stopwaitsecs"], web["exitcodes"]) == (
        0,
        15,
        10,
        [0],
    )
    assert web["stdout_logfile"] == str(rig.daemon.directory / "logs/web.stdout.log")
    assert ours[1]["command"] == MISSING and ours[1]["autostart"] is False


def test_start_stop_and_their_faults(rig: Rig) -> None:
    rpc = rig.rpc("ops")
    assert fault_of(lambda: rpc.supervisor.startProcess("web")) == (60, "ALREADY_STARTED: web")
    assert rpc.supervisor.stopProcess("web") is True
    assert rig.daemon.status("web")["state"] == "STOPPED"
    assert fault_of(lambda: rpc.supervisor.stopProcess("web")) == (70, "NOT_RUNNING: web")
    assert rpc.supervisor.startProcess("web", False) is True
    assert rig.daemon.status("web")["state"] in ("STARTING", "RUNNING")
    rig.daemon.wait_state("web", "RUNNING")
    assert rpc.supervisor.stopProcess("web", False) is True
    rig.daemon.wait_state("web", "STOPPED")
    assert rpc.supervisor.startProcess("web", True) is True
    assert rig.daemon.status("web")["state"] == "RUNNING"
    assert fault_of(lambda: rpc.supervisor.startProcess("crasher")) == (50, "SPAWN_ERROR: crasher")
    assert fault_of(lambda: rpc.supervisor.startProcess("nope")) == (
        20, f"NO_FILE: can't find command '{MISSING}'",
    )  # fmt: skip
    assert rig.daemon.status("nope")["state"] == "STOPPED"  # never spawned
    assert fault_of(lambda: rpc.supervisor.startProcess("nosuch")) == (10, "BAD_NAME: nosuch")
    assert fault_of(lambda: rpc.supervisor.stopProcess("workers:web"))[0] == 10
    assert fault_of(lambda: rpc.supervisor.startProcess("web", True, 1))[0] == 2
    assert fault_of(lambda: rpc.supervisor.startProcess(1))[0] == 2
    assert fault_of(rpc.supervisor.startProcess)[0] == 2


def test_start_faults_before_a_spawn(
    tmp_path: Path, sentinel: Callable[[str], SentinelProcess]
) -> None:
    """As supervisord checks a command before it forks: a file without execute permission or
    a directory is NOT_EXECUTABLE; a process still stopping cannot start (ABNORMAL_TERMINATION);
    none of them is spawned."""
    scripts = write_programs(tmp_path / "programs")
    stubborn = json.dumps([sys.executable, "-u", str(scripts["stubborn"])])
    daemon = sentinel(f"""
        [control]
        http = "127.0.0.1:0"
        [programs.noexec]
        command = [{json.dumps(str(scripts["web"]))}]
        autostart = false
        [programs.adir]
        command = [{json.dumps(str(tmp_path))}]
        autostart = false
        [programs.stubborn]
        command = {stubborn}
        start_seconds = 0
        stop_timeout = "3s"
    """)
    daemon.wait_state("stubborn", "RUNNING")
    with proxy(f"unix://{daemon.socket}", user=None) as rpc:
        assert fault_of(lambda: rpc.supervisor.startProcess("noexec")) == (
            21, f"NOT_EXECUTABLE: command at '{scripts['web']}' is not executable",
        )  # fmt: skip
        assert fault_of(lambda: rpc.supervisor.startProcess("adir")) == (
            21, f"NOT_EXECUTABLE: command at '{tmp_path}' is a directory",
        )  # fmt: skip
        assert rpc.supervisor.stopProcess("stubborn", False) is True
        daemon.wait_state("stubborn", "STOPPING")
        assert fault_of(lambda: rpc.supervisor.startProcess("stubborn")) == (
            40, "ABNORMAL_TERMINATION: stubborn is stopping",
        )  # fmt: skip
        daemon.wait_state("stubborn", "STOPPED")
    assert [daemon.status(n)["state"] for n in ("noexec", "adir")] == ["STOPPED", "STOPPED"]
    assert not any(
        e["event"] == "state_changed" and e["process"] in ("noexec", "adir") for e in daemon.events
    )


def test_group_and_all_results(rig: Rig) -> None:
    rpc = rig.rpc("ops")

    def result(
        name: str, group: str, status: int = 80, description: str = "OK"
    ) -> dict[str, object]:
        return {"name": name, "group": group, "status": status, "description": description}

    stopped = rpc.supervisor.stopProcessGroup("workers")
    assert stopped == [result("worker_0", "workers"), result("worker_1", "workers")]
    assert rpc.supervisor.stopProcessGroup("workers") == []  # none running
    assert rpc.supervisor.startProcess("workers:*") == stopped
    assert rpc.supervisor.startProcessGroup("workers", True) == []  # all running
    assert fault_of(lambda: rpc.supervisor.startProcessGroup("nosuch")) == (10, "BAD_NAME: nosuch")
    assert rpc.supervisor.stopAllProcesses() == [
        result("web", "web"), result("worker_0", "workers"), result("worker_1", "workers"),
    ]  # fmt: skip
    assert rpc.supervisor.startAllProcesses() == [
        result("nope", "nope", 20, f"NO_FILE: can't find command '{MISSING}'"),
        result("crasher", "crasher", 50, "SPAWN_ERROR: crasher"),
        result("web", "web"), result("worker_0", "workers"), result("worker_1", "workers"),
    ]  # fmt: skip
    asked = time.time()
    assert rpc.supervisor.stopAllProcesses(False) == [
        result("web", "web"), result("worker_0", "workers"), result("worker_1", "workers"),
    ]  # fmt: skip
    for name in ("web", "worker_0", "worker_1"):  # in whatever order they stop
        rig.daemon.wait_event(
            lambda e, n=name: state_is(n, "STOPPED")(e) and e["timestamp"] >= asked
        )


def test_signals(rig: Rig) -> None:
    rpc = rig.rpc("ops")
    log = rig.daemon.directory / "logs/web.stdout.log"
    assert rpc.supervisor.signalProcess("web", "HUP") is True
    assert rpc.supervisor.signalProcess("web", "SIGUSR1") is True
    assert rpc.supervisor.signalProcess("web", str(int(signal.SIGHUP))) is True
    assert rpc.supervisor.signalProcess("web", int(signal.SIGUSR1)) is True
    wait_until(lambda: log.read_text().count("got") == 4, what="four signals")
    assert fault_of(lambda: rpc.supervisor.signalProcess("web", "NOPE")) == (11, "BAD_SIGNAL: NOPE")
    assert fault_of(lambda: rpc.supervisor.signalProcess("crasher", "HUP")) == (
        70,
        "NOT_RUNNING: crasher",
    )
    assert fault_of(lambda: rpc.supervisor.signalProcess("nosuch", "HUP"))[0] == 10
    assert rpc.supervisor.signalProcessGroup("workers", "USR1") == [
        {"name": f"worker_{i}", "group": "workers", "status": 80, "description": "OK"}
        for i in (0, 1)
    ]
    assert [r["status"] for r in rpc.supervisor.signalProcessGroup("workers", "BAD")] == [11, 11]
    assert [r["name"] for r in rpc.supervisor.signalAllProcesses("HUP")] == [
        "web",
        "worker_0",
        "worker_1",
    ]
    assert rig.daemon.status("web")["state"] == "RUNNING"


def test_logs(rig: Rig) -> None:
    rpc = rig.rpc()
    assert rpc.supervisor.readProcessStdoutLog("web", 0, 0) == "ready\n"
    assert rpc.supervisor.readProcessLog("web", 1, 3) == "ead"
    assert rpc.supervisor.readProcessStdoutLog("web", -3, 0) == "dy\n"
    assert rpc.supervisor.readProcessStderrLog("web", 0, 0) == "to stderr\n"
    assert fault_of(lambda: rpc.supervisor.readProcessStdoutLog("web", -3, 2)) == (
        3,
        "BAD_ARGUMENTS",
    )
    assert fault_of(lambda: rpc.supervisor.readProcessStdoutLog("web", 0, -1))[0] == 3
    assert fault_of(lambda: rpc.supervisor.readProcessStdoutLog("nosuch", 0, 0))[0] == 10
    assert rpc.supervisor.tailProcessStdoutLog("web", 0, 3) == ["dy\n", 6, True]
    assert rpc.supervisor.tailProcessLog("web", 6, 100) == ["", 6, False]
    assert rpc.supervisor.tailProcessStderrLog("web", 0, 100) == ["to stderr\n", 10, False]
    assert fault_of(lambda: rpc.supervisor.clearProcessLog("web"))[0] == 30


LOUD = """
import sys, time
sys.stdout.buffer.write(b"\\x1b[31mred\\x00" + b"x" * 3000000)
sys.stdout.flush()
time.sleep(3600)
"""


def test_log_reads_are_bounded(tmp_path: Path, sentinel: Callable[[str], SentinelProcess]) -> None:
    """A read past MAX_LOG_READ returns MAX_LOG_READ bytes; a redirected stderr is NO_FILE; what
    XML cannot carry arrives as U+FFFD, and the answer parses."""
    script = tmp_path / "loud.py"
    script.write_text(textwrap.dedent(LOUD))
    daemon = sentinel(f"""
        [control]
        http = "127.0.0.1:0"
        [programs.loud]
        command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}]
        redirect_stderr = true
        start_seconds = 0
    """)
    log = daemon.directory / "logs/loud.stdout.log"
    wait_until(lambda: log.exists() and log.stat().st_size >= 3_000_009, what="the log written")
    with proxy(f"unix://{daemon.socket}", user=None) as rpc:
        data = rpc.supervisor.readProcessStdoutLog("loud", 0, 0)
        assert len(data) == 1 << 20 and data.startswith("\ufffd[31mred\ufffdxxx")
        assert len(rpc.supervisor.readProcessStdoutLog("loud", -(10**9), 0)) == 1 << 20
        assert len(rpc.supervisor.readProcessStdoutLog("loud", 5, 10**9)) == 1 << 20
        text, offset, overflow = rpc.supervisor.tailProcessStdoutLog("loud", 0, 10**9)
        assert (len(text), offset, overflow) == (1 << 20, 3_000_009, True)
        assert fault_of(lambda: rpc.supervisor.readProcessStderrLog("loud", 0, 0))[0] == 20
        assert rpc.supervisor.tailProcessStderrLog("loud", 0, 10) == ["", 0, False]


def test_clear_logs_is_refused(rig: Rig) -> None:
    rpc = rig.rpc()
    assert fault_of(lambda: rpc.supervisor.clearProcessLogs("web")) == (
        30, "FAILED: web: sentinel does not delete logs",
    )  # fmt: skip
    assert fault_of(lambda: rpc.supervisor.clearProcessLogs("nosuch"))[0] == 10
    results = rpc.supervisor.clearAllProcessLogs()
    assert [(r["name"], r["status"]) for r in results] == [
        ("web", 30), ("worker_0", 30), ("worker_1", 30), ("crasher", 30), ("nope", 30),
    ]  # fmt: skip
    assert rpc.supervisor.readProcessStdoutLog("web", 0, 0) == "ready\n"


def test_multicall(rig: Rig) -> None:
    """Each call alone, with its own role; a fault in its slot; values bare, as supervisord."""
    calls = [
        {"methodName": "supervisor.getAPIVersion", "params": []},
        {"methodName": "supervisor.stopProcess", "params": ["web"]},
        {"methodName": "supervisor.getProcessInfo", "params": ["nosuch"]},
        {"methodName": "system.multicall", "params": [[]]},
        {"methodName": "supervisor.supervisord.options.warnings.linecache.os.system"},
        {"params": []},
        "not a struct",
        {"methodName": "supervisor.getState"},
    ]
    results = rig.rpc("view").system.multicall(calls)
    assert results == [
        "3.0",
        {
            "faultCode": 30,
            "faultString": "FAILED: view (viewer) may not call supervisor.stopProcess: it needs the operator role",
        },
        {"faultCode": 10, "faultString": "BAD_NAME: nosuch"},
        {
            "faultCode": 2,
            "faultString": "INCORRECT_PARAMETERS: Recursive system.multicall forbidden",
        },
        {"faultCode": 1, "faultString": "UNKNOWN_METHOD"},
        {"faultCode": 2, "faultString": "INCORRECT_PARAMETERS: No methodName"},
        {"faultCode": 2, "faultString": "INCORRECT_PARAMETERS: a call is a struct"},
        {"statecode": 1, "statename": "RUNNING"},
    ]
    assert rig.daemon.status("web")["state"] == "RUNNING"
    assert rig.rpc("ops").system.multicall(calls[1:2]) == [True]
    assert rig.daemon.status("web")["state"] == "STOPPED"
    assert fault_of(lambda: rig.rpc().system.multicall([{}] * 257))[0] == 2


def test_without_credentials_a_call_that_needs_them_is_401(
    tmp_path: Path, sentinel: Callable[[str], SentinelProcess]
) -> None:
    """Anonymous callers of a loopback listener without users are viewers: they read, and get
    401 (with WWW-Authenticate) for what needs more, a multicall too, before any call runs."""
    daemon = sentinel(sentinel_config(write_programs(tmp_path / "programs"), users=False))
    daemon.wait_state("web", "RUNNING")
    address = http_address(daemon)
    with proxy(f"http://{address}", user=None) as rpc:
        assert rpc.supervisor.getState()["statename"] == "RUNNING"
    for call in (
        xmlrpc.client.dumps(("web",), "supervisor.stopProcess"),
        xmlrpc.client.dumps(
            (
                [
                    {"methodName": "supervisor.getState"},
                    {"methodName": "supervisor.stopProcess", "params": ["web"]},
                ],
            ),
            "system.multicall",
        ),
    ):
        response = httpx.post(
            f"http://{address}/RPC2", content=call, headers={"Content-Type": "text/xml"}
        )
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Basic realm=")
    assert daemon.status("web")["state"] == "RUNNING"


def test_config_methods(rig: Rig) -> None:
    """reloadConfig is a dry run; add and remove one group at a time; restart; CANT_REREAD."""
    rpc = rig.rpc()
    assert rpc.supervisor.reloadConfig() == [[[], [], []]]
    config = rig.daemon.config_path
    good = config.read_text()
    config.write_text(
        good.replace("priority = 10", "priority = 11").replace(  # web changes
            "[programs.nope]", "[programs.nope2]"
        )  # nope goes, nope2 comes
        + '\n[programs.added]\ncommand = ["sleep", "3600"]\n'
    )
    assert rpc.supervisor.reloadConfig() == [[["added", "nope2"], ["web"], ["nope"]]]
    assert rig.daemon.status("web")["state"] == "RUNNING"
    assert rig.daemon.api("GET", "/api/v1/programs/added").status_code == 404  # nothing changed
    avail = {c["name"]: c["inuse"] for c in rpc.supervisor.getAllConfigInfo()}
    assert avail == {
        "added": False,
        "crasher": True,
        "nope": True,
        "nope2": False,
        "web": True,
        "worker_0": True,
        "worker_1": True,
    }

    assert fault_of(lambda: rpc.supervisor.addProcessGroup("web")) == (90, "ALREADY_ADDED: web")
    assert fault_of(lambda: rpc.supervisor.addProcessGroup("nosuch")) == (10, "BAD_NAME: nosuch")
    assert fault_of(lambda: rpc.supervisor.removeProcessGroup("web")) == (91, "STILL_RUNNING: web")
    assert fault_of(lambda: rpc.supervisor.removeProcessGroup("nosuch"))[0] == 10
    assert rpc.supervisor.addProcessGroup("added") is True
    rig.daemon.wait_state("added", "RUNNING")
    assert rpc.supervisor.removeProcessGroup("nope") is True
    assert rig.daemon.api("GET", "/api/v1/programs/nope").status_code == 404
    assert rpc.supervisor.reloadConfig() == [[["nope2"], ["web"], []]]

    # supervisorctl update: the rest, as supervisord would do it
    code, output = rig.ctl("update")
    assert (
        code == 0
        and output == "web: stopped\nweb: updated process group\nnope2: added process group\n"
    ), output
    rig.daemon.wait_state("web", "RUNNING")
    assert rpc.supervisor.reloadConfig() == [[[], [], []]]

    config.write_text(good + '\n[programs.bad]\ncommand = "true"\nstop_timeout = "soon"\n')
    code, text = fault_of(rpc.supervisor.reloadConfig)
    assert code == 92 and "programs.bad.stop_timeout" in text
    assert fault_of(rpc.supervisor.restart)[0] == 92
    assert fault_of(lambda: rpc.supervisor.addProcessGroup("bad"))[0] == 92
    assert rig.ctl("reread")[1].startswith("ERROR: CANT_REREAD: ")
    assert rig.daemon.status("web")["state"] == "RUNNING"

    config.write_text(good)
    pid = rig.daemon.status("worker_0")["pid"]
    assert rig.ctl("reload") == (0, "Restarted supervisord\n")  # supervisor.restart
    rig.daemon.wait_event(
        lambda e: (
            e["event"] == "config_reloaded" and set(e.get("removed", ())) == {"added", "nope2"}
        )
    )
    rig.daemon.next_event(state_is("worker_0", "RUNNING"))
    assert rig.daemon.status("worker_0")["pid"] != pid
    assert rpc.supervisor.reloadConfig() == [[[], [], []]]


def test_shutdown(tmp_path: Path, sentinel: Callable[[str], SentinelProcess]) -> None:
    """shutdown stops everything and sentinel exits 0; while it stops, every call is
    SHUTDOWN_STATE and supervisorctl says so."""
    scripts = write_programs(tmp_path / "programs")
    daemon = sentinel(
        sentinel_config(
            scripts,
            extra=f"""
        [programs.stubborn]
        command = [{json.dumps(sys.executable)}, "-u", {json.dumps(str(scripts["stubborn"]))}]
        stop_timeout = "3s"
    """,
        )
    )
    daemon.wait_state("stubborn", "RUNNING")
    ctl = ctl_for(tmp_path, f"http://{http_address(daemon)}")
    assert ctl("shutdown") == (0, "Shut down\n")
    daemon.wait_event(lambda e: e["event"] == "state_changed" and e["new"] == "STOPPING")
    assert ctl("shutdown") == (0, "ERROR: already shutting down\n")
    with proxy(ctl.server) as rpc:
        assert fault_of(rpc.supervisor.getState) == (6, "SHUTDOWN_STATE")
    assert daemon.proc is not None and daemon.proc.wait(30) == 0


# --- hostile requests ---------------------------------------------------------------------


def post(address: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(
        f"http://{address}/RPC2", content=body, auth=("admin", PASSWORD), timeout=30,
        headers={"Content-Type": "text/xml", **headers},
    )  # fmt: skip


def test_a_dotted_name_runs_nothing(rig: Rig, tmp_path: Path) -> None:
    """CVE-2017-11610: attribute traversal from a method name. Each variant is UNKNOWN_METHOD and
    the command it carries never runs."""
    marker = tmp_path / "pwned"
    for name in (
        "supervisor.supervisord.options.warnings.linecache.os.system",
        "supervisor.supervisord.options.execve",
        "supervisor._update",
        "supervisor.__init__",
        "supervisor.__class__.__init__.__globals__",
        "system.namespaces",
        "os.system",
        "supervisor.getState.__call__",
        "supervisor.control.request_shutdown",
    ):
        body = xmlrpc.client.dumps((f"touch {marker}",), name).encode()
        response = post(rig.address, body)
        assert response.status_code == 200
        with pytest.raises(xmlrpc.client.Fault) as caught:
            xmlrpc.client.loads(response.content)
        assert (caught.value.faultCode, caught.value.faultString) == (1, "UNKNOWN_METHOD"), name
    assert not marker.exists()  # os.system would have run before the answer
    assert rig.daemon.proc is not None and rig.daemon.proc.poll() is None
    assert states(rig.server)["web"] == "RUNNING"


def test_xml_bomb_and_huge_bodies_are_refused_fast(rig: Rig) -> None:
    """Billion laughs, an external entity, 20 MB declared or streamed: refused in well under a
    second each, and the daemon keeps answering."""
    bomb = billion_laughs()
    external = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><methodCall><methodName>&e;</methodName></methodCall>'
    for body in (bomb, external):
        began = time.monotonic()
        response = post(rig.address, body.encode())
        assert time.monotonic() - began < 0.5
        assert response.status_code == 200 and "root:" not in response.text
        with pytest.raises(xmlrpc.client.Fault) as caught:
            xmlrpc.client.loads(response.content)
        assert caught.value.faultCode == 2

    huge = b"<methodCall><methodName>" + b"x" * (20 * 10**6) + b"</methodName></methodCall>"
    began = time.monotonic()
    refused = raw_post(rig.address, huge, chunked=False)
    assert time.monotonic() - began < 1.0 and refused.startswith(b"HTTP/1.1 413"), refused[:100]
    began = time.monotonic()
    refused = raw_post(rig.address, huge, chunked=True)
    assert time.monotonic() - began < 1.0 and refused.startswith(b"HTTP/1.1 413"), refused[:100]
    assert rig.rpc().supervisor.getAPIVersion() == "3.0"
    assert states(rig.server)["web"] == "RUNNING"


def billion_laughs() -> str:
    """10 levels of 10 references each: 10**9 "lol"s, were it expanded."""
    levels = [f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    doctype = f'<!DOCTYPE b [<!ENTITY l0 "lol">{"".join(levels)}]>'
    return f'<?xml version="1.0"?>{doctype}<methodCall><methodName>&l9;</methodName></methodCall>'


def raw_post(address: str, body: bytes, *, chunked: bool) -> bytes:
    """POST /RPC2 with a socket, as fast as the daemon lets us; what it answers (it may answer
    and close before the body is all sent)."""
    host, port = address.rsplit(":", 1)
    head = f"POST /RPC2 HTTP/1.1\r\nHost: {address}\r\nContent-Type: text/xml\r\n"
    head += f"Authorization: Basic {base64.b64encode(f'admin:{PASSWORD}'.encode()).decode()}\r\n"
    head += (
        "Transfer-Encoding: chunked\r\n\r\n" if chunked else f"Content-Length: {len(body)}\r\n\r\n"
    )
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(head.encode())
        try:
            for start in range(0, len(body), 1 << 16):
                piece = body[start : start + (1 << 16)]
                sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before it was all sent
        answer = b""
        try:
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer:
                    break
        except ConnectionResetError:
            pass
    return answer


def test_a_foreign_origin_changes_nothing(rig: Rig) -> None:
    """A page elsewhere (Origin, Sec-Fetch-Site) or a form post cannot stop a process."""
    stop = xmlrpc.client.dumps(("web",), "supervisor.stopProcess").encode()
    assert post(rig.address, stop, Origin="http://evil.example").status_code == 403
    assert post(rig.address, stop, **{"Sec-Fetch-Site": "cross-site"}).status_code == 403
    assert post(rig.address, stop, **{"Content-Type": "text/plain"}).status_code == 403
    assert post(rig.address, stop, Host="evil.example").status_code == 421
    assert states(rig.server)["web"] == "RUNNING"
    assert post(rig.address, stop, Origin=f"http://{rig.address}").status_code == 200
    assert states(rig.server)["web"] == "STOPPED"


def test_malformed_calls_are_faults(rig: Rig) -> None:
    for body in (
        b"",
        b"<methodCall>",
        b"<a/>",
        b"<methodCall><methodName>x</methodName><params><param><value><int>1.5</int></value></param></params></methodCall>",
    ):
        response = post(rig.address, body)
        assert response.status_code == 200, body
        with pytest.raises(xmlrpc.client.Fault) as caught:
            xmlrpc.client.loads(response.content)
        assert caught.value.faultCode == 2
    assert (
        rig.daemon.api(
            "POST", "/RPC2", content=b"<a/>", headers={"Content-Type": "text/xml"}
        ).status_code
        == 200
    )
    assert httpx.get(f"http://{rig.address}/RPC2", auth=("admin", PASSWORD)).status_code == 405
    assert os.path.exists(rig.daemon.socket)
