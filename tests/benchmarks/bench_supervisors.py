"""sentinel and supervisord side by side, in one run, on the same workloads.

    python tests/benchmarks/bench_supervisors.py [--quick] [--keep]

1. Restart latency: SIGKILL a child, time until its replacement runs. The child is
   `/bin/sh -c 'echo $$ > FIFO; exec sleep 3600'`; the benchmark holds the FIFO open O_RDWR
   and learns each new pid, and when it started running, from the line it writes. The
   baseline is the same child spawned directly (subprocess.Popen), timed the same way.
2. Idle CPU: the daemon's utime + stime (/proc/PID/stat) over a window, with 500
   `sleep 3600` programs RUNNING, as % of one core; and its resident memory (VmRSS).
3. Output capture, four workloads, 1 GiB each per run: zeros in 1 MiB writes
   (`dd bs=1M`); 71-byte log lines in 64 KiB writes (a program logging through a
   block-buffered stdout: writes cut lines anywhere); the same lines in 4 KiB writes (a small
   buffer); and the same lines a write each (a line-buffered program: 64 MiB per run, the
   writer is slow). The lines come from linewriter.py, run with this Python. The log rotates at
   50 MiB (50 backups: nothing is deleted, so the log files add up to what was written); wall
   time from the start request until every byte is in the log files, and the daemon's CPU
   seconds over that time -> MB/s and CPU-s per GB. Three runs each, interleaved, medians
   (--quick: one run of 256 MiB). Two baselines per workload, measured the same way between
   the runs: the writer's stdout redirected into a file (its own CPU is the kernel's cost of
   storing the bytes, which a daemon that stores them pays too), and `writer | cat > file`
   (cat's own CPU: the cost of the simplest relay that reads the pipe and writes the file).

Every daemon starts fresh in its own temp dir and is driven over its unix socket (sentinel's
HTTP API, supervisord's XML-RPC, both with httpx). Everything it starts is stopped and reaped
at the end, on failure too; the benchmark is a child subreaper, so whatever a daemon leaves
behind comes back to it and is reported, killed and reaped.

Exit status: 0 every sentinel target met, 1 a target missed, 2 the benchmark itself failed.
tests/benchmarks/README.md says what each figure means and how it is measured.
"""

from __future__ import annotations

import abc
import argparse
import contextlib
import json
import os
import platform
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx
from benchlib import (
    CLOCK_TICKS,
    BenchmarkError,
    become_subreaper,
    cpu_seconds_of,
    installed_script,
    reap_leftovers,
    rss_bytes_of,
    verdict,
    wait_for,
)

KIB = 2**10
MIB = 2**20
GB = 10**9  # rates are in decimal units: MB/s = 10**6 bytes/s, CPU-s per 10**9 bytes

# The log layout of the capture figure: explicit bytes, because "50MB" is 50 * 10**6 to
# sentinel and 50 * 2**20 to supervisord.
LOG_MAX_BYTES = 50 * MIB
LOG_BACKUPS = 50  # enough that no backup is deleted: the files add up to what was written
DEFAULT_BACKUPS = 10  # both daemons' default, for the other figures

START_TIMEOUT = 60.0  # s for a daemon to answer on its socket
ALL_RUNNING_TIMEOUT = 180.0  # s for every program to be RUNNING
SPAWN_TIMEOUT = 10.0  # s for a (re)spawned child to write its pid
SETTLE_TIMEOUT = 10.0  # s for the daemon to report the replacement RUNNING
EXIT_TIMEOUT = 30.0  # s for the writer to be reported EXITED once its bytes are stored
SHUTDOWN_TIMEOUT = 60.0  # s for a daemon to exit after SIGTERM
KILL_TIMEOUT = 30.0  # s to reap anything after SIGKILL
CAPTURE_FLOOR_RATE = 20e6  # bytes/s: the capture deadline is the size at this rate, at least
CAPTURE_MIN_DEADLINE = 60.0
BUSY_WARNING = 0.05  # cores busy elsewhere on the machine before the start: warn
RESTART_GAP = 0.15  # s of quiet after a replacement is settled, before the next kill
RESET_AFTER = "100ms"  # sentinel's backoff.reset_after in the restart figure: < RESTART_GAP
POLL = 0.25  # s between status polls while waiting for many programs
FAST_POLL = 0.005  # s between polls where the poll interval bounds the error
CAPTURE_POLL = 0.01  # s between scans of the log files: < 1% of a run, little CPU stolen

# sentinel's targets, from the issue
RESTART_P50_TARGET = 0.010  # s
RSS_TARGET = 40 * MIB  # with the idle figure's 500 programs
THROUGHPUT_FACTOR_TARGET = 1.5  # x supervisord's MB/s, on each capture workload
CPU_PER_GB_FACTOR_TARGET = 1.0  # x supervisord's CPU-s per GB, on each capture workload


@dataclass(frozen=True)
class Settings:
    restart_samples: int
    idle_programs: int
    idle_settle: float  # s after every program is RUNNING, before the window
    idle_window: float  # s
    capture_bytes: int  # per run of each workload: a whole number of every workload's writes
    capture_runs: int


FULL = Settings(50, 500, 5.0, 20.0, 1024 * MIB, 3)
QUICK = Settings(10, 500, 3.0, 10.0, 256 * MIB, 1)


# --- programs and the two daemons -------------------------------------------------------------


@dataclass(frozen=True)
class Program:
    """One program, written out in each daemon's config language with the same meaning."""

    name: str
    argv: tuple[str, ...]
    instances: int = 1
    autostart: bool = True
    autorestart: bool = True  # always (sentinel "always", supervisord true) or never
    immediate: bool = False  # RUNNING once spawned, restarted with no delay
    max_bytes: int = LOG_MAX_BYTES
    backups: int = DEFAULT_BACKUPS

    def process_names(self) -> list[str]:
        if self.instances == 1:
            return [self.name]
        return [f"{self.name}_{i}" for i in range(self.instances)]


def log_file(logs: Path, process: str, stream: str = "stdout") -> Path:
    """Where both daemons are told to put a process's stream (then .1, .2, ... on rotation)."""
    return logs / f"{process}.{stream}.log"


def _toml_string(value: str) -> str:
    # sentinel expands ${VAR} in every string, and "$$" is a literal "$".
    return json.dumps(value.replace("$", "$$"))


class Daemon(abc.ABC):
    """A supervisor daemon in a subprocess, in its own directory, driven over a unix socket."""

    label: str

    def __init__(self, directory: Path, programs: Sequence[Program]) -> None:
        self.directory = directory
        self.logs = directory / "logs"
        self.logs.mkdir(parents=True)
        self.log_path = directory / "daemon.log"
        self.socket = directory / f"{self.label}.sock"
        self.config = self.write_config(programs)
        self.proc: subprocess.Popen[bytes] | None = None
        self.client: httpx.Client | None = None
        self.shutdown_seconds: float | None = None
        self.exit_code: int | None = None

    # --- what each daemon does its own way --------------------------------------------------

    @abc.abstractmethod
    def write_config(self, programs: Sequence[Program]) -> Path: ...

    @abc.abstractmethod
    def command(self) -> list[str]: ...

    @abc.abstractmethod
    def base_url(self) -> str: ...

    @abc.abstractmethod
    def ready(self) -> bool:
        """True once the daemon answers on its socket."""

    @abc.abstractmethod
    def states(self) -> dict[str, tuple[str, int | None]]:
        """Every process: name -> (state name, pid)."""

    @abc.abstractmethod
    def state_of(self, name: str) -> tuple[str, int | None, int | None]:
        """One process: (state name, pid, last exit code)."""

    @abc.abstractmethod
    def start_program(self, name: str) -> None:
        """Ask for a start and return at once (no waiting for RUNNING)."""

    # --- the common part --------------------------------------------------------------------

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def __enter__(self) -> Daemon:
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.directory,
            )  # fmt: skip
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url=self.base_url(),
            timeout=30,
        )

        def answering() -> bool:
            self.alive()
            if not self.socket.exists():
                return False
            try:
                return self.ready()
            except httpx.TransportError:
                return False

        wait_for(answering, START_TIMEOUT, f"{self.label} to answer on {self.socket}", FAST_POLL)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time (its programs come to us)."""
        if self.client is not None:
            self.client.close()
        if self.proc is None or self.exit_code is not None:
            return
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.proc.wait(SHUTDOWN_TIMEOUT)
            self.shutdown_seconds = time.monotonic() - began
        except subprocess.TimeoutExpired:
            print(f"{self.label} did not exit {SHUTDOWN_TIMEOUT:g}s after SIGTERM: SIGKILL")
            self.proc.kill()
            self.exit_code = self.proc.wait(KILL_TIMEOUT)

    def alive(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchmarkError(
                f"{self.label} exited with {self.proc.returncode}:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        return "\n".join(text[-lines:])

    def http(self) -> httpx.Client:
        assert self.client is not None
        return self.client

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes_of(self.pid)

    def wait_state(
        self, name: str, wanted: Callable[[str, int | None], bool], timeout: float, what: str
    ) -> tuple[str, int | None, int | None]:
        found: tuple[str, int | None, int | None] = ("", None, None)

        def check() -> bool:
            nonlocal found
            self.alive()
            found = self.state_of(name)
            return wanted(found[0], found[1])

        wait_for(check, timeout, f"{self.label}: {name} {what} (last seen {found})", FAST_POLL)
        return found


class Sentinel(Daemon):
    label = "sentinel"

    def write_config(self, programs: Sequence[Program]) -> Path:
        lines = ["[control]", f"socket = {_toml_string(str(self.socket))}", ""]
        for p in programs:
            process = p.name if p.instances == 1 else f"{p.name}_{{instance}}"
            lines += [
                f"[programs.{p.name}]",
                f"command = [{', '.join(_toml_string(a) for a in p.argv)}]",
                f"instances = {p.instances}",
                f"autostart = {str(p.autostart).lower()}",
                f'autorestart = "{"always" if p.autorestart else "never"}"',
            ]
            if p.immediate:
                # The default backoff, whose first restart after a run is at once: each kill
                # comes RESTART_GAP after the replacement is RUNNING, past reset_after, so
                # each is the first crash of a new series, as a crash after a stable run is.
                lines += ["start_seconds = 0", f'backoff = {{ reset_after = "{RESET_AFTER}" }}']
            for stream in ("stdout", "stderr"):
                target = _toml_string(str(log_file(self.logs, process, stream)))
                lines.append(
                    f"{stream} = {{ path = {target}, max_bytes = {p.max_bytes}, "
                    f"backups = {p.backups} }}"
                )
            lines.append("")
        path = self.directory / "sentinel.toml"
        path.write_text("\n".join(lines))
        return path

    def command(self) -> list[str]:
        return [*installed_script("sentinel", "sentinel"), "run", "-c", str(self.config)]

    def base_url(self) -> str:
        return "http://sentinel"

    def ready(self) -> bool:
        return self.http().get("/healthz").status_code == 200

    def states(self) -> dict[str, tuple[str, int | None]]:
        response = self.http().get("/api/v1/programs")
        response.raise_for_status()
        return {p["name"]: (p["state"], p["pid"]) for p in response.json()}

    def state_of(self, name: str) -> tuple[str, int | None, int | None]:
        response = self.http().get(f"/api/v1/programs/{name}")
        response.raise_for_status()
        p = response.json()
        return p["state"], p["pid"], p["exit_code"]

    def start_program(self, name: str) -> None:
        response = self.http().post(f"/api/v1/programs/{name}/start", params={"wait": "false"})
        response.raise_for_status()


class Supervisord(Daemon):
    label = "supervisord"

    def write_config(self, programs: Sequence[Program]) -> Path:
        d = self.directory
        lines = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "",
            "[supervisord]",
            "nodaemon=true",
            f"logfile={d / 'supervisord.log'}",
            f"pidfile={d / 'supervisord.pid'}",
            f"childlogdir={self.logs}",
            "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
            "",
            "[supervisorctl]",
            f"serverurl=unix://{self.socket}",
            "",
        ]
        for p in programs:
            process = p.name if p.instances == 1 else "%(program_name)s_%(process_num)d"
            lines += [
                f"[program:{p.name}]",
                # supervisord splits the command with shlex and expands %(...)s in it.
                f"command={shlex.join(p.argv).replace('%', '%%')}",
                f"numprocs={p.instances}",
                f"process_name={process}",
                f"autostart={str(p.autostart).lower()}",
                f"autorestart={str(p.autorestart).lower()}",
                f"startsecs={0 if p.immediate else 1}",
            ]
            for stream in ("stdout", "stderr"):
                lines += [
                    f"{stream}_logfile={log_file(self.logs, process, stream)}",
                    f"{stream}_logfile_maxbytes={p.max_bytes}",
                    f"{stream}_logfile_backups={p.backups}",
                ]
            lines.append("")
        config = d / "supervisord.conf"
        config.write_text("\n".join(lines))
        return config

    def command(self) -> list[str]:
        script = installed_script("supervisord", "supervisor.supervisord")
        return [*script, "-n", "-c", str(self.config)]

    def base_url(self) -> str:
        return "http://localhost"

    def rpc(self, method: str, *params: Any) -> Any:
        """One XML-RPC call, over the unix socket with httpx; a Fault is raised as such."""
        body = xmlrpc.client.dumps(params, method)
        response = self.http().post("/RPC2", content=body, headers={"Content-Type": "text/xml"})
        response.raise_for_status()
        result, _ = xmlrpc.client.loads(response.content)
        return result[0]

    def ready(self) -> bool:
        return bool(self.rpc("supervisor.getState")["statename"] == "RUNNING")

    def states(self) -> dict[str, tuple[str, int | None]]:
        return {
            p["name"]: (p["statename"], p["pid"] or None)
            for p in self.rpc("supervisor.getAllProcessInfo")
        }

    def state_of(self, name: str) -> tuple[str, int | None, int | None]:
        p = self.rpc("supervisor.getProcessInfo", name)
        return p["statename"], p["pid"] or None, p["exitstatus"]

    def start_program(self, name: str) -> None:
        self.rpc("supervisor.startProcess", name, False)


DAEMONS: tuple[type[Daemon], ...] = (Sentinel, Supervisord)
DIRECT = "direct"  # a capture baseline: the writer's stdout is the file, no daemon between


# --- measuring --------------------------------------------------------------------------------


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all CPUs, not idle nor iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS  # user nice system IDLE IOWAIT


def others_busy(seconds: float) -> float:
    """The machine's busy CPU, in cores, over `seconds` while the benchmark sleeps: what
    else runs here (and would disturb the figures)."""
    busy0, t0 = machine_busy(), time.monotonic()
    time.sleep(seconds)
    return (machine_busy() - busy0) / (time.monotonic() - t0)


def run_ns_of(pid: int) -> int:
    """Nanoseconds on a CPU, summed over the live threads (the scheduler's own count:
    precise where utime + stime come in ticks; a thread that exits takes its share along)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError, IndexError):
            total += int((task / "schedstat").read_text().split()[0])
    return total


@dataclass(frozen=True)
class Spread:
    """Order statistics of samples, in the samples' unit."""

    n: int
    minimum: float
    p50: float
    p90: float
    maximum: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> Spread:
        if len(samples) < 2:
            raise BenchmarkError(f"too few samples: {len(samples)}")
        deciles = statistics.quantiles(samples, n=10, method="inclusive")
        return cls(len(samples), min(samples), statistics.median(samples), deciles[8], max(samples))

    def ms(self) -> str:
        return (
            f"n={self.n} min {self.minimum * 1e3:.2f} p50 {self.p50 * 1e3:.2f} "
            f"p90 {self.p90 * 1e3:.2f} max {self.maximum * 1e3:.2f} ms"
        )


# --- figure 1: restart latency ----------------------------------------------------------------


class PidFifo:
    """The named pipe each spawn of the test child writes its pid to.

    Held open O_RDWR: the child's open for writing never blocks, and the pipe never reports
    EOF between children.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        os.mkfifo(path, 0o600)
        self._fd = os.open(path, os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
        self._buffer = b""

    def child_argv(self) -> tuple[str, ...]:
        return ("/bin/sh", "-c", f"echo $$ > {shlex.quote(str(self.path))}; exec sleep 3600")

    def read_pid(self, timeout: float) -> tuple[int, float]:
        """The next pid written, and when it arrived (perf_counter)."""
        deadline = time.perf_counter() + timeout
        arrived = time.perf_counter()
        while b"\n" not in self._buffer:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                raise BenchmarkError(f"no pid arrived on {self.path} within {timeout:g}s")
            readable, _, _ = select.select([self._fd], [], [], remaining)
            arrived = time.perf_counter()
            if readable:
                with contextlib.suppress(BlockingIOError):
                    self._buffer += os.read(self._fd, 4096)
        line, _, self._buffer = self._buffer.partition(b"\n")
        return int(line), arrived

    def unexpected(self) -> bytes:
        """Whatever arrived that nobody read: a spawn the benchmark did not cause."""
        with contextlib.suppress(BlockingIOError):
            self._buffer += os.read(self._fd, 4096)
        extra, self._buffer = self._buffer, b""
        return extra

    def close(self) -> None:
        os.close(self._fd)


def direct_spawns(directory: Path, samples: int) -> list[float]:
    """The baseline: Popen the same child, time until its pid line arrives."""
    directory.mkdir()
    fifo = PidFifo(directory / "pid.fifo")
    latencies = []
    try:
        for _ in range(samples):
            began = time.perf_counter()
            child = subprocess.Popen(fifo.child_argv(), stdin=subprocess.DEVNULL)
            try:
                pid, arrived = fifo.read_pid(SPAWN_TIMEOUT)
            finally:
                child.kill()
                child.wait(KILL_TIMEOUT)
            if pid != child.pid:
                raise BenchmarkError(f"direct spawn: pid {pid} arrived for child {child.pid}")
            latencies.append(arrived - began)
            time.sleep(RESTART_GAP)
    finally:
        fifo.close()
    return latencies


def restarts(kind: type[Daemon], directory: Path, samples: int) -> list[float]:
    """SIGKILL the child `samples` times; each time, until its replacement's line arrives."""
    directory.mkdir()
    fifo = PidFifo(directory / "pid.fifo")
    program = Program("flap", fifo.child_argv(), immediate=True)
    latencies = []
    try:
        with kind(directory, [program]) as daemon:
            pid, _ = fifo.read_pid(START_TIMEOUT)

            def running(pid: int) -> None:
                daemon.wait_state(
                    "flap", lambda s, p: s == "RUNNING" and p == pid, SETTLE_TIMEOUT, "RUNNING"
                )

            running(pid)
            for _ in range(samples):
                began = time.perf_counter()
                os.kill(pid, signal.SIGKILL)
                new_pid, arrived = fifo.read_pid(SPAWN_TIMEOUT)
                latencies.append(arrived - began)
                running(new_pid)
                pid = new_pid
                time.sleep(RESTART_GAP)
            extra = fifo.unexpected()
            if extra:
                raise BenchmarkError(f"{kind.label}: spawns nobody asked for wrote {extra!r}")
    finally:
        fifo.close()
    return latencies


# --- figure 2: idle CPU -----------------------------------------------------------------------


@dataclass(frozen=True)
class Idle:
    cpu_share: float  # of one core
    cpu_seconds: float
    scheduler_share: float  # of one core, from schedstat
    threads: int
    others: float  # cores busy on the machine in the window, besides the daemon
    window: float
    rss: int
    all_running_after: float  # s from the daemon answering to every program RUNNING
    shutdown_seconds: float | None


def idle(kind: type[Daemon], directory: Path, settings: Settings) -> Idle:
    program = Program("idle", ("sleep", "3600"), instances=settings.idle_programs)
    names = set(program.process_names())
    daemon = kind(directory, [program])
    with daemon:

        def all_running() -> bool:
            daemon.alive()
            states = daemon.states()
            return states.keys() == names and all(s == "RUNNING" for s, _ in states.values())

        after = wait_for(
            all_running, ALL_RUNNING_TIMEOUT, f"{kind.label}: {len(names)} programs RUNNING", POLL
        )
        time.sleep(settings.idle_settle)
        cpu0, ns0, t0 = daemon.cpu_seconds(), run_ns_of(daemon.pid), time.monotonic()
        busy0 = machine_busy()
        time.sleep(settings.idle_window)
        cpu1, ns1, t1 = daemon.cpu_seconds(), run_ns_of(daemon.pid), time.monotonic()
        busy1 = machine_busy()
        daemon.alive()
        rss = daemon.rss_bytes()
        threads = len(list(Path(f"/proc/{daemon.pid}/task").iterdir()))
    window = t1 - t0
    return Idle(
        (cpu1 - cpu0) / window,
        cpu1 - cpu0,
        (ns1 - ns0) / 1e9 / window,
        threads,
        (busy1 - busy0 - (cpu1 - cpu0)) / window,
        window,
        rss,
        after,
        daemon.shutdown_seconds,
    )


# --- figure 3: output capture -----------------------------------------------------------------


@dataclass(frozen=True)
class Capture:
    seconds: float
    cpu_seconds: float
    total: int

    @property
    def mb_per_second(self) -> float:
        return self.total / 1e6 / self.seconds

    @property
    def cpu_per_gb(self) -> float:
        return self.cpu_seconds / (self.total / GB)


LINE_WRITER = Path(__file__).resolve().with_name("linewriter.py")


@dataclass(frozen=True)
class Workload:
    """What the writer of the capture figure writes to its stdout, and in which writes."""

    key: str  # in program names and the report
    title: str
    write_size: int  # bytes per write(2)
    lines: bool  # 71-byte log lines (linewriter.py), else zeros (dd)
    most: int | None = None  # bytes per run at most: for a writer too slow for the full size

    def total(self, run_bytes: int) -> int:
        """What this workload writes in a run of `run_bytes`: a whole number of writes."""
        size = run_bytes if self.most is None else min(run_bytes, self.most)
        return size // self.write_size * self.write_size

    def argv(self, total: int) -> tuple[str, ...]:
        """The writer of `total` bytes: the program of both daemons, and of the baselines."""
        if self.lines:
            return (sys.executable, str(LINE_WRITER), str(self.write_size), str(total))
        count = total // self.write_size
        return ("dd", "if=/dev/zero", f"bs={self.write_size}", f"count={count}", "status=none")


WORKLOADS = (
    Workload("zeros", "zeros in 1 MiB writes (dd)", MIB, lines=False),
    # 64 KiB is no multiple of 71: lines straddle writes, as they do out of a stdio buffer.
    Workload("lines64k", "71-byte lines in 64 KiB writes", 64 * KIB, lines=True),
    Workload("lines4k", "71-byte lines in 4 KiB writes", 4 * KIB, lines=True),
    # A line-buffered program: a write, and a wake-up of the daemon, per line. Its writer
    # makes some 50 MB/s at best, so a run is 64 MiB.
    Workload("lines1", "71-byte lines, a write per line", 71, lines=True, most=64 * MIB),
)
RELAY = "cat relay"  # the second baseline: writer | cat > file


def writer(workload: Workload, run: int, total: int) -> Program:
    return Program(
        f"{workload.key}_{run}",
        workload.argv(total),
        autostart=False,
        autorestart=False,
        immediate=True,
        backups=LOG_BACKUPS,
    )


def stored(logs: Path, name: str) -> int:
    """Bytes in the process's stdout log and its backups."""
    prefix = log_file(logs, name).name
    total = 0
    with os.scandir(logs) as entries:
        for entry in entries:
            if entry.name == prefix or entry.name.startswith(prefix + "."):
                with contextlib.suppress(FileNotFoundError):  # renamed under us by a rotation
                    total += entry.stat().st_size
    return total


def capture_deadline(total: int) -> float:
    return max(CAPTURE_MIN_DEADLINE, total / CAPTURE_FLOOR_RATE)


def prime_page_cache(directory: Path, total: int) -> None:
    """Write and delete `total` bytes, so that every run finds memory in the same state.

    On a VM that hands freed memory back to the host, the first GB written after a pause
    costs the writer (here: the daemon) several times the CPU of the next one.
    """
    scratch = directory / "scratch"
    try:
        subprocess.run(
            ["dd", "if=/dev/zero", f"of={scratch}", f"bs={MIB}", f"count={total // MIB}"],
            stdin=subprocess.DEVNULL, capture_output=True, check=True,
            timeout=capture_deadline(total),
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError) as exc:
        raise BenchmarkError(f"cannot write {scratch}: {exc}") from exc
    finally:
        scratch.unlink(missing_ok=True)


def capture_once(daemon: Daemon, name: str, total: int) -> Capture:
    """Start the writer; wait until all its bytes are in the log files; then delete them."""
    if stored(daemon.logs, name) != 0:
        raise BenchmarkError(f"{daemon.label}: {name}'s log is not empty before its run")
    prime_page_cache(daemon.directory, total)
    deadline = time.perf_counter() + capture_deadline(total)
    cpu0, began = daemon.cpu_seconds(), time.perf_counter()
    daemon.start_program(name)
    done = 0.0
    while True:
        now = time.perf_counter()
        # A scan racing a rotation's renames can see a file twice or miss one: a second
        # scan must agree before the bytes count as stored.
        if stored(daemon.logs, name) == total and stored(daemon.logs, name) == total:
            done = now
            break
        if now > deadline:
            raise BenchmarkError(
                f"{daemon.label}: {stored(daemon.logs, name)} of {total} bytes stored after "
                f"{now - began:.1f}s"
            )
        daemon.alive()
        time.sleep(CAPTURE_POLL)
    cpu1 = daemon.cpu_seconds()
    state, _, code = daemon.wait_state(
        name, lambda s, _: s in ("EXITED", "FATAL", "BACKOFF"), EXIT_TIMEOUT, "EXITED"
    )
    if (state, code) != ("EXITED", 0):
        raise BenchmarkError(f"{daemon.label}: the writer ended {state} with exit code {code}")
    if stored(daemon.logs, name) != total:
        raise BenchmarkError(f"{daemon.label}: {stored(daemon.logs, name)} bytes, not {total}")
    for path in daemon.logs.glob(log_file(daemon.logs, name).name + "*"):
        path.unlink()
    return Capture(done - began, cpu1 - cpu0, total)


def reap(child: subprocess.Popen[bytes], what: str) -> float:
    """Wait for a child of ours; its CPU seconds (utime + stime). Raises if it failed."""
    _, status, usage = os.wait4(child.pid, 0)
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait
    if child.returncode != 0:
        raise BenchmarkError(f"{what} exited {child.returncode}")
    return usage.ru_utime + usage.ru_stime


def direct_write(directory: Path, workload: Workload, total: int) -> Capture:
    """The first baseline: the writer's stdout redirected into a file, no daemon.

    Its CPU is the writer's own, most of it what the kernel charges for storing the bytes
    (page cache, file system): a daemon that stores its child's output pays at least that on
    top of reading it.
    """
    prime_page_cache(directory, total)
    target = directory / "direct.out"
    try:
        with target.open("wb") as out:
            began = time.perf_counter()
            child = subprocess.Popen(workload.argv(total), stdin=subprocess.DEVNULL, stdout=out)
        cpu = reap(child, f"direct write: {workload.key} writer")
        seconds = time.perf_counter() - began
        if target.stat().st_size != total:
            raise BenchmarkError(f"direct write: {target.stat().st_size} bytes, not {total}")
    finally:
        target.unlink(missing_ok=True)
    return Capture(seconds, cpu, total)


def cat_relay(directory: Path, workload: Workload, total: int) -> Capture:
    """The second baseline: `writer | cat > file`, until cat exits; cat's own CPU.

    The simplest relay in the data path: read(2) from the pipe, write(2) into the file, as a
    daemon that copies through its own memory does, with nothing else to do.
    """
    prime_page_cache(directory, total)
    target = directory / "relay.out"
    try:
        with target.open("wb") as out:
            began = time.perf_counter()
            source = subprocess.Popen(
                workload.argv(total), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE
            )
            assert source.stdout is not None
            try:
                cat = subprocess.Popen(["cat"], stdin=source.stdout, stdout=out)
            finally:
                # cat's alone now: its end of file is the writer's exit (and with no cat, the
                # writer dies of a broken pipe)
                source.stdout.close()
        cpu = reap(cat, "cat relay: cat")
        seconds = time.perf_counter() - began
        reap(source, f"cat relay: {workload.key} writer")
        if target.stat().st_size != total:
            raise BenchmarkError(f"cat relay: {target.stat().st_size} bytes, not {total}")
    finally:
        target.unlink(missing_ok=True)
    return Capture(seconds, cpu, total)


CaptureResults = dict[str, dict[str, list[Capture]]]  # workload -> daemon or baseline -> runs


def captures(root: Path, settings: Settings) -> CaptureResults:
    """Both daemons up at once; for each run and workload, both daemons' captures (which one
    goes first alternates) and then the two baselines."""
    total, runs = settings.capture_bytes, settings.capture_runs
    programs = {
        (run, w.key): writer(w, run, w.total(total)) for run in range(runs) for w in WORKLOADS
    }
    # At most one run's bytes are on disk at once (the scratch file of the page-cache priming,
    # a run's log files, a baseline's file: each is deleted before the next is written), plus
    # the last log file of each finished writer, which a daemon may still hold open.
    needed = total + len(DAEMONS) * len(programs) * LOG_MAX_BYTES + 2**30  # 1 GiB to spare
    free = shutil.disk_usage(root).free
    if free < needed:
        raise BenchmarkError(
            f"{root}: {free / 2**30:.1f} GiB free, the capture needs {needed / 2**30:.1f} GiB"
        )
    results: CaptureResults = {
        w.key: {label: [] for label in (*(kind.label for kind in DAEMONS), DIRECT, RELAY)}
        for w in WORKLOADS
    }

    def record(workload: Workload, run: int, label: str, result: Capture, note: str) -> None:
        results[workload.key][label].append(result)
        print(
            f"  {workload.key} run {run + 1}/{runs} {label}: {result.mb_per_second:.0f} MB/s, "
            f"{result.cpu_per_gb:.3f} CPU-s/GB ({note}{result.seconds:.2f}s)",
            flush=True,
        )

    with contextlib.ExitStack() as stack:
        daemons = [
            stack.enter_context(kind(root / f"capture-{kind.label}", list(programs.values())))
            for kind in DAEMONS
        ]
        for run in range(runs):
            for i, workload in enumerate(WORKLOADS):
                # Which daemon goes first alternates from one run of a workload to the next
                # (and from one workload to the next, for the single run of --quick).
                size = workload.total(total)
                for daemon in daemons if (run + i) % 2 == 0 else daemons[::-1]:
                    result = capture_once(daemon, programs[run, workload.key].name, size)
                    record(workload, run, daemon.label, result, "")
                result = direct_write(root, workload, size)
                record(workload, run, DIRECT, result, "the writer's own CPU; ")
                result = cat_relay(root, workload, size)
                record(workload, run, RELAY, result, "cat's own CPU; ")
    return results


# --- leftovers --------------------------------------------------------------------------------


def check_leftovers(after: str, leftovers: list[str]) -> None:
    found = reap_leftovers()
    if found:
        print(f"  LEFTOVERS after {after}, killed and reaped: {'; '.join(found)}", flush=True)
        leftovers.extend(f"{after}: {f}" for f in found)


# --- the report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    figure: str
    sentinel: float
    supervisord: float
    digits: int
    baseline: bool = False  # the same for both: no ratio


def print_table(rows: Sequence[Row]) -> None:
    """A Markdown table: figure | sentinel | supervisord | ratio (sentinel / supervisord)."""
    header = ("figure", "sentinel", "supervisord", "ratio")
    cells = [
        (
            r.figure,
            f"{r.sentinel:.{r.digits}f}",
            f"{r.supervisord:.{r.digits}f}",
            "-" if r.baseline or not r.supervisord else f"{r.sentinel / r.supervisord:.3g}",
        )
        for r in rows
    ]
    widths = [max(len(c[i]) for c in [header, *cells]) for i in range(4)]

    def line(c: Sequence[str]) -> str:
        values = (f"{v:>{w}}" for v, w in zip(c[1:], widths[1:], strict=True))
        return f"| {c[0]:<{widths[0]}} | {' | '.join(values)} |"

    print(line(header))
    print(f"|{'-' * (widths[0] + 2)}|" + "|".join("-" * (w + 1) + ":" for w in widths[1:]) + "|")
    for c in cells:
        print(line(c))


def times(value: float, reference: float) -> str:
    """`value` as a multiple of `reference`: "2.41x"."""
    return f"{value / reference:.2f}x" if reference else "-"


def version_of(argv: list[str]) -> str:
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    return (
        (result.stdout or result.stderr).strip().splitlines()[0]
        if result.stdout or result.stderr
        else "?"
    )


def checkout() -> str:
    """The commit of the sentinel checkout this file is in, and whether sentinel/ has changes."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
        changes = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--", "sentinel"],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout.strip()  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return f"commit {commit}{' + uncommitted changes in sentinel/' if changes else ''}"


def cpu_model() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "?"


def run(settings: Settings, root: Path, leftovers: list[str]) -> bool:
    """Every figure; True if sentinel met every target."""
    sentinel_version = version_of([*installed_script("sentinel", "sentinel"), "--version"])
    supervisord_version = version_of(
        [*installed_script("supervisord", "supervisor.supervisord"), "--version"]
    )
    print(
        f"sentinel vs supervisord, {time.strftime('%Y-%m-%d %H:%M %Z')}: {sentinel_version} "
        f"({checkout()}), supervisord {supervisord_version}; Python {platform.python_version()}, "
        f"Linux {platform.release()}, {os.cpu_count()} x {cpu_model()}; work dir {root}",
        flush=True,
    )

    others = others_busy(2.0)
    if others > BUSY_WARNING:
        print(
            f"WARNING: something else keeps {others:.0%} of a core busy on this machine: "
            f"the figures will be disturbed",
            flush=True,
        )
    print(f"1. restart latency, {settings.restart_samples} SIGKILLs each", flush=True)
    direct = Spread.of(direct_spawns(root / "direct", settings.restart_samples))
    check_leftovers("the direct spawns", leftovers)
    print(f"  direct spawn: {direct.ms()}", flush=True)
    restart: dict[str, Spread] = {}
    for kind in DAEMONS:
        restart[kind.label] = Spread.of(
            restarts(kind, root / f"restart-{kind.label}", settings.restart_samples)
        )
        check_leftovers(f"{kind.label} (restarts)", leftovers)
        print(f"  {kind.label}: {restart[kind.label].ms()}", flush=True)

    print(
        f"2. idle CPU, {settings.idle_programs} x sleep 3600, {settings.idle_window:g}s window "
        f"after {settings.idle_settle:g}s settling",
        flush=True,
    )
    idles: dict[str, Idle] = {}
    for kind in DAEMONS:
        result = idles[kind.label] = idle(kind, root / f"idle-{kind.label}", settings)
        check_leftovers(f"{kind.label} (idle)", leftovers)
        shutdown = f"{result.shutdown_seconds:.1f}s" if result.shutdown_seconds else "killed"
        print(
            f"  {kind.label}: {result.cpu_share:.3%} of one core ({result.cpu_seconds:.2f} CPU-s "
            f"in {result.window:.1f}s; scheduler's count {result.scheduler_share:.3%}, "
            f"{result.threads} threads; the rest of the machine {result.others:.1%}), RSS {result.rss / MIB:.1f} MiB; all RUNNING after "
            f"{result.all_running_after:.1f}s; SIGTERM -> exit {shutdown}",
            flush=True,
        )

    print(
        f"3. output capture, {len(WORKLOADS)} workloads ("
        + "; ".join(f"{w.key}: {w.title}" for w in WORKLOADS)
        + f"), {settings.capture_bytes // MIB} MiB per run, rotation at "
        f"{LOG_MAX_BYTES // MIB} MiB, {settings.capture_runs} run(s) each",
        flush=True,
    )
    capture = captures(root, settings)
    check_leftovers("the capture daemons", leftovers)
    # workload -> daemon or baseline -> the median of the runs
    rate = {
        w: {k: statistics.median(c.mb_per_second for c in runs) for k, runs in by.items()}
        for w, by in capture.items()
    }
    cpu_gb = {
        w: {k: statistics.median(c.cpu_per_gb for c in runs) for k, runs in by.items()}
        for w, by in capture.items()
    }

    s, v = "sentinel", "supervisord"
    rows = [
        Row("restart latency p50, ms", restart[s].p50 * 1e3, restart[v].p50 * 1e3, 2),
        Row("restart latency p90, ms", restart[s].p90 * 1e3, restart[v].p90 * 1e3, 2),
        Row("direct spawn p50, ms (baseline)", direct.p50 * 1e3, direct.p50 * 1e3, 2, True),
        Row(
            f"idle CPU, {settings.idle_programs} programs, % of a core",
            idles[s].cpu_share * 100,
            idles[v].cpu_share * 100,
            3,
        ),
        Row(
            "  the same, scheduler's count (schedstat)",
            idles[s].scheduler_share * 100,
            idles[v].scheduler_share * 100,
            3,
        ),
        Row(
            f"RSS, {settings.idle_programs} idle programs, MiB",
            idles[s].rss / MIB,
            idles[v].rss / MIB,
            1,
        ),
    ]
    for w in WORKLOADS:
        r, c = rate[w.key], cpu_gb[w.key]
        rows += [
            Row(f"capture, {w.title}: MB/s", r[s], r[v], 0),
            Row("  daemon CPU, CPU-s per GB", c[s], c[v], 3),
            Row("  writer straight to a file (baseline): MB/s", r[DIRECT], r[DIRECT], 0, True),
            Row("    the writer's own CPU, CPU-s per GB", c[DIRECT], c[DIRECT], 3, True),
            Row("  writer into cat into a file (baseline): MB/s", r[RELAY], r[RELAY], 0, True),
            Row("    cat's own CPU, CPU-s per GB", c[RELAY], c[RELAY], 3, True),
        ]
    print()
    print_table(rows)
    print(
        f"ratio = sentinel / supervisord; MB = 10**6 bytes, GB = 10**9 bytes; capture figures: "
        f"the median of {settings.capture_runs} run(s) of {settings.capture_bytes // MIB} MiB"
        + "".join(
            f" ({w.key}: {w.total(settings.capture_bytes) / MIB:.0f} MiB)"
            for w in WORKLOADS
            if w.total(settings.capture_bytes) != settings.capture_bytes
        )
    )
    print(
        f"direct spawn of the same child: p50 {direct.p50 * 1e3:.2f} ms, p90 {direct.p90 * 1e3:.2f} ms"
    )

    targets = [
        (
            f"restart p50 < {RESTART_P50_TARGET * 1e3:g} ms",
            restart[s].p50 < RESTART_P50_TARGET,
        ),
        ("idle CPU <= supervisord's", idles[s].cpu_share <= idles[v].cpu_share),
        (
            f"RSS with {settings.idle_programs} idle programs <= {RSS_TARGET // MIB} MiB",
            idles[s].rss <= RSS_TARGET,
        ),
    ]
    for w in WORKLOADS:
        r, c = rate[w.key], cpu_gb[w.key]
        targets += [
            (
                f"{w.key} capture throughput >= {THROUGHPUT_FACTOR_TARGET:g}x supervisord's "
                f"({times(r[s], r[v])})",
                r[s] >= THROUGHPUT_FACTOR_TARGET * r[v],
            ),
            (
                f"{w.key} capture CPU per GB <= {CPU_PER_GB_FACTOR_TARGET:g}x supervisord's "
                f"({times(c[s], c[v])})",
                c[s] <= CPU_PER_GB_FACTOR_TARGET * c[v],
            ),
        ]
    targets.append(("no process left behind", not leftovers))
    print("sentinel targets:")
    for target, ok in targets:
        print(f"  {target}: {verdict(ok)}")
    return all(ok for _, ok in targets)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 restarts, 10s idle window, one 256 MiB capture run per workload",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (daemon logs)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    become_subreaper()
    # SIGTERM unwinds like Ctrl-C: every daemon is stopped by the finally blocks.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bench-supervisors-"))
    leftovers: list[str] = []
    try:
        met = run(settings, root, leftovers)
    except BenchmarkError as exc:
        sys.stdout.flush()
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        sys.stdout.flush()
        found = reap_leftovers()
        if found:
            print(f"killed and reaped leftover processes: {'; '.join(found)}", file=sys.stderr)
        if args.keep:
            print(f"work dir kept: {root}", file=sys.stderr)
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
