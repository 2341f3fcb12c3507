"""The real supervisord on a corpus config, and a real sentinel on its import: the same
processes, in the same groups, settling in the same states."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import tomllib
import xmlrpc.client
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from sentinel.importer import translate
from sentinel.importer.tomlout import Table, dumps
from tests.conftest import require_binary
from tests.integration.conftest import SentinelProcess, wait_until

FIXTURES = Path(__file__).parent.parent / "fixtures" / "supervisord"
# the corpus configs whose programs are small real children (sleep, sh) that run anywhere
RUNNABLE = ["single", "numprocs", "groups", "include", "environment", "logging", "restart"]
SETTLED = {"RUNNING", "EXITED", "FATAL", "STOPPED"}
# s RUNNING before a process counts as settled: longer than any of them runs before exiting,
# and than supervisord takes to notice an exit (up to a second: its loop polls)
UP_FOR = 2.5
TIMEOUT = 30.0

Seen = dict[str, tuple[str, str, int | None]]  # process name -> (group, state, exit code)


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory with a short path: a unix socket's path may not be longer than 107 bytes."""
    path = Path(tempfile.mkdtemp(prefix="import-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Supervisord:
    """`supervisord -n -c CONF` as a real process, asked over XML-RPC on its unix socket."""

    def __init__(self, conf: Path) -> None:
        self.conf = conf
        self.socket = conf.parent / "supervisor.sock"
        self.log = conf.parent / "supervisord.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), base_url="http://localhost"
        )

    def start(self) -> None:
        binary = require_binary("supervisord", str(Path(sys.executable).parent))
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [binary, "-n", "-c", str(self.conf)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.conf.parent,
            )  # fmt: skip
        wait_until(self._answers, TIMEOUT, "supervisord's socket")

    def _answers(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"supervisord exited: {self.log.read_text()}")
        # A plain connect first: httpx leaks the socket of a failed unix-socket connect.
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return bool(self.rpc("supervisor.getState")["statename"] == "RUNNING")

    def rpc(self, method: str, *params: Any) -> Any:
        body = xmlrpc.client.dumps(params, method)
        response = self.client.post("/RPC2", content=body, headers={"Content-Type": "text/xml"})
        response.raise_for_status()
        return xmlrpc.client.loads(response.content)[0][0]

    def processes(self) -> tuple[Seen, bool]:
        """Every process, and whether each has settled."""
        infos = self.rpc("supervisor.getAllProcessInfo")
        seen = {
            p["name"]: (
                p["group"],
                p["statename"],
                p["exitstatus"] if p["statename"] == "EXITED" else None,
            )
            for p in infos
        }
        settled = all(_settled(p["statename"], p["now"] - p["start"]) for p in infos)
        return seen, settled

    def stop(self) -> None:
        self.client.close()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(TIMEOUT)


def _settled(state: str, uptime: float) -> bool:
    return state in SETTLED and (state != "RUNNING" or uptime >= UP_FOR)


def sentinel_processes(daemon: SentinelProcess) -> tuple[Seen, bool]:
    programs = daemon.api("GET", "/api/v1/programs").json()
    seen = {
        p["name"]: (p["group"], p["state"], p["exit_code"] if p["state"] == "EXITED" else None)
        for p in programs
    }
    return seen, all(_settled(p["state"], p["uptime_seconds"]) for p in programs)


def settle(processes: Callable[[], tuple[Seen, bool]], what: str) -> Seen:
    """The processes once every one has settled (polled, with a deadline)."""
    found: Seen = {}

    def check() -> bool:
        nonlocal found
        found, settled = processes()
        return settled

    try:
        wait_until(check, TIMEOUT, f"{what} to settle")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last seen: {found}") from None
    return found


def imported_config(conf: Path, run_dir: Path) -> str:
    """The import of `conf`, with sentinel's socket, logs and state in `run_dir`."""
    data = tomllib.loads(translate(conf).text)
    data.setdefault("control", {})["socket"] = str(run_dir / "sentinel.sock")
    data.setdefault("sentinel", {}).update(
        log_dir=str(run_dir / "logs"), state_dir=str(run_dir / "state")
    )
    return dumps(Table.of(data))


@pytest.mark.parametrize("case", RUNNABLE)
def test_sentinel_runs_the_import_as_supervisord_runs_the_original(
    case: str, short_dir: Path
) -> None:
    """Process names, groups, settled states (and exit codes) are the same under both."""
    theirs_dir, ours_dir = short_dir / "supervisord", short_dir / "sentinel"
    shutil.copytree(FIXTURES / case, theirs_dir)
    shutil.copytree(FIXTURES / case, ours_dir)
    (ours_dir / "run").mkdir(mode=0o700)
    supervisord = Supervisord(theirs_dir / "supervisord.conf")
    sentinel = SentinelProcess(
        ours_dir / "run", imported_config(ours_dir / "supervisord.conf", ours_dir / "run")
    )
    code = None
    try:
        supervisord.start()
        sentinel.start()
        theirs = settle(supervisord.processes, "supervisord")
        ours = settle(lambda: sentinel_processes(sentinel), "sentinel")
    finally:
        supervisord.stop()
        if sentinel.proc is not None:
            code = sentinel.terminate()
    assert code == 0, sentinel.log()
    assert ours == theirs
    assert ours
