"""Probe benchmark: many programs, one HTTP liveness probe a second each, one target server.

    python tests/benchmarks/bench_probes.py [--programs 1000] [--seconds 30]

Starts a loopback HTTP target server in its own process (it records when each probe arrives,
by the program name in the URL path) and `sentinel run` on a config of N `sleep 3600`
programs, each with `liveness = { http = http://127.0.0.1:PORT/p/NAME, period 1s, timeout 1s,
failure_threshold 3 }`. Once every program is RUNNING and has been probed, it measures over
the window:

1. the probes' actual period, from the server's arrival times (target: within 10% of 1s);
2. the daemon's CPU (utime + stime from /proc) as % of one core and per 1000 probes
   (target: at most half a core), its RSS, and the probes the server saw vs expected;
3. then it makes the server answer 503 for a few programs and measures, from sentinel's
   event stream, the delay from that switch to their `restart` (reason liveness), minus the
   bound failure_threshold x period + timeout (target: <= 0 plus a small margin).

Exit status: 0 every target met, 1 a target missed, 2 the benchmark itself failed. Everything
it starts is stopped and reaped at the end, on failure too; it becomes a child subreaper so
that even the daemon's programs come back to it if the daemon has to be killed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import multiprocessing
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx
from benchlib import (
    BenchmarkError,
    become_subreaper,
    cpu_seconds_of,
    installed_script,
    reap_leftovers,
    rss_bytes_of,
    verdict,
    wait_for,
)

PERIOD = 1.0  # the probes' configured period, timeout and failure threshold
TIMEOUT = 1.0
FAILURE_THRESHOLD = 3
BOUND = FAILURE_THRESHOLD * PERIOD + TIMEOUT  # from the switch to the restart, at most
FAILING = 10  # programs switched to 503 in the detection phase
PERIOD_TOLERANCE = 0.10  # the target: the period stays within 10%
CPU_TARGET = 0.5  # of one core
DELAY_MARGIN = 0.5  # s over the bound still counted as "<= 0" (as tests/integration allow)

STARTUP_TIMEOUT = 180.0  # s for every program to be RUNNING
FIRST_PROBES_TIMEOUT = 30.0  # s then for a first probe of every program, before going on
DETECTION_TIMEOUT = BOUND + 15.0  # s for every switched program to be restarted
SHUTDOWN_TIMEOUT = 120.0  # s for sentinel to stop everything after SIGTERM
POLL = 0.25  # s between polls of the target server while waiting
API_POLL = 1.0  # s between polls of sentinel's API: 1000 programs' status is not free

OK_RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
FAIL_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nfail"
)
MAX_REQUEST_HEAD = 16 * 1024


# --- the target server (its own process) ------------------------------------------------------


class _TargetState:
    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}  # name -> monotonic arrival times
        self.failing: set[str] = set()
        self.bad_requests = 0


class _TargetProtocol(asyncio.Protocol):
    """One connection: read the request head, note who asked and when, answer, close."""

    def __init__(self, state: _TargetState) -> None:
        self._state = state
        self._head = b""
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        assert self._transport is not None
        self._head += data
        if b"\r\n\r\n" not in self._head:
            if len(self._head) > MAX_REQUEST_HEAD:
                self._state.bad_requests += 1
                self._transport.close()
            return
        now = time.monotonic()
        parts = self._head.split(b"\r\n", 1)[0].split(b" ")
        if len(parts) != 3 or not parts[1].startswith(b"/p/"):
            self._state.bad_requests += 1
            self._transport.close()
            return
        name = parts[1][3:].decode(errors="replace")
        self._state.arrivals.setdefault(name, []).append(now)
        failing = name in self._state.failing
        self._transport.write(FAIL_RESPONSE if failing else OK_RESPONSE)
        self._transport.close()


def _serve(conn: Connection) -> None:
    """The target server's process: answers probes; obeys commands from the pipe."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the benchmark stops it through the pipe
    asyncio.run(_serve_async(conn))


async def _serve_async(conn: Connection) -> None:
    loop = asyncio.get_running_loop()
    state = _TargetState()
    server = await loop.create_server(
        lambda: _TargetProtocol(state), "127.0.0.1", 0, backlog=4096, reuse_address=True
    )
    port: int = server.sockets[0].getsockname()[1]
    stopped = asyncio.Event()

    def on_command() -> None:
        try:
            command, args = conn.recv()
        except (EOFError, OSError):  # the benchmark is gone
            stopped.set()
            return
        if command == "fail":
            state.failing.update(args)
            conn.send((time.time(), time.monotonic()))
        elif command == "heal":
            state.failing.difference_update(args)
            conn.send(None)
        elif command == "seen":
            conn.send((len(state.arrivals), state.bad_requests))
        elif command == "arrivals":
            since, until = args
            conn.send(
                {
                    name: [t for t in times if since <= t <= until]
                    for name, times in state.arrivals.items()
                }
            )
        else:  # "stop"
            conn.send(None)
            stopped.set()

    loop.add_reader(conn.fileno(), on_command)
    conn.send(port)
    try:
        await stopped.wait()
    finally:
        loop.remove_reader(conn.fileno())
        server.close()
        await server.wait_closed()


class TargetServer:
    """The benchmark's handle on the target server process."""

    def __init__(self) -> None:
        # fork: no resource tracker process, no re-import of this script; we have no threads.
        context = multiprocessing.get_context("fork")
        self._conn, child_conn = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_conn,), name="probe-target")
        self.process.start()
        child_conn.close()
        self.port: int = self._ask_port()

    def _ask_port(self) -> int:
        try:
            if not self._conn.poll(30):
                raise BenchmarkError("the target server did not start within 30s")
            port: int = self._conn.recv()
        except (EOFError, OSError) as exc:
            raise BenchmarkError(f"the target server died: {exc!r}") from exc
        return port

    def _call(self, command: str, args: Any = None, timeout: float = 30.0) -> Any:
        try:
            self._conn.send((command, args))
            if not self._conn.poll(timeout):
                raise BenchmarkError(f"the target server did not answer {command!r} in {timeout}s")
            return self._conn.recv()
        except (EOFError, OSError) as exc:
            raise BenchmarkError(f"the target server died: {exc!r}") from exc

    def fail(self, names: Iterable[str]) -> tuple[float, float]:
        """Answer 503 to these programs from now on; returns (unix time, monotonic) of now."""
        wall, mono = self._call("fail", list(names))
        return float(wall), float(mono)

    def heal(self, names: Iterable[str]) -> None:
        self._call("heal", list(names))

    def seen(self) -> tuple[int, int]:
        """(programs probed at least once, malformed requests)."""
        programs, bad = self._call("seen")
        return int(programs), int(bad)

    def arrivals(self, since: float, until: float) -> dict[str, list[float]]:
        result: dict[str, list[float]] = self._call("arrivals", (since, until))
        return result

    def stop(self) -> None:
        if self.process.is_alive():
            with contextlib.suppress(BenchmarkError):
                self._call("stop", timeout=10)
        self.process.join(10)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(10)
        self._conn.close()


# --- sentinel -------------------------------------------------------------------------------


def write_config(directory: Path, programs: int, port: int) -> Path:
    path = directory / "sentinel.toml"
    # Output is not captured ("none"): the sleepers write nothing, and this measures probes.
    path.write_text(
        textwrap.dedent(f"""\
            [sentinel]
            log_level = "info"

            [control]
            socket = "sentinel.sock"

            [programs.p]
            command = "sleep 3600"
            instances = {programs}
            start_seconds = 0
            stop_timeout = "5s"
            backoff = {{ initial = "0s" }}
            stdout = {{ path = "none" }}
            stderr = {{ path = "none" }}

            [programs.p.liveness]
            http = {{ url = "http://127.0.0.1:{port}/p/p_{{instance}}" }}
            period = "{PERIOD:g}s"
            timeout = "{TIMEOUT:g}s"
            failure_threshold = {FAILURE_THRESHOLD}
        """)
    )
    return path


def program_names(programs: int) -> list[str]:
    return [f"p_{i}" for i in range(programs)]  # instances > 1: NAME_0 .. NAME_{n-1}


class Sentinel:
    """`sentinel run -c CONFIG` in a subprocess, its log in a file, its API over the socket."""

    def __init__(self, config: Path) -> None:
        self.socket = config.parent / "sentinel.sock"
        self.log_path = config.parent / "sentinel.log"
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [*installed_script("sentinel", "sentinel"), "run", "-c", str(config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=config.parent,
            )  # fmt: skip
        self.pid = self.proc.pid
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)),
            base_url="http://sentinel",
            timeout=30,
        )

    def alive(self) -> None:
        if self.proc.poll() is not None:
            raise BenchmarkError(f"sentinel exited with {self.proc.returncode}:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    def programs(self) -> list[dict[str, Any]]:
        response = self.client.get("/api/v1/programs")
        response.raise_for_status()
        result: list[dict[str, Any]] = response.json()
        return result

    def recent_events(self) -> list[dict[str, Any]]:
        """The event history (probe results excluded by sentinel), as SSE, without following."""
        response = self.client.get("/api/v1/events", params={"history": "1000", "follow": "false"})
        response.raise_for_status()
        return [
            json.loads(line[len("data: ") :])
            for line in response.text.splitlines()
            if line.startswith("data: ")
        ]

    def cpu_seconds(self) -> float:
        return cpu_seconds_of(self.pid)

    def rss_bytes(self) -> int:
        return rss_bytes_of(self.pid)

    def shutdown(self) -> tuple[int, float]:
        """SIGTERM, then wait for the exit; (exit code, seconds it took)."""
        began = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(SHUTDOWN_TIMEOUT)
        finally:
            self.client.close()
        return code, time.monotonic() - began

    def kill(self) -> None:
        """The last resort: SIGKILL (its programs then come back to us, the subreaper)."""
        self.client.close()
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(30)


# --- figures --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PeriodStats:
    intervals: int
    median: float
    p1: float
    p99: float
    within: float  # share of intervals within PERIOD_TOLERANCE of PERIOD
    probes: int  # probes that arrived in the window
    programs_probed: int

    @property
    def ok(self) -> bool:
        low, high = PERIOD * (1 - PERIOD_TOLERANCE), PERIOD * (1 + PERIOD_TOLERANCE)
        return self.intervals > 0 and low <= self.p1 and self.p99 <= high


def period_stats(arrivals: dict[str, list[float]]) -> PeriodStats:
    intervals = [b - a for times in arrivals.values() for a, b in itertools.pairwise(times)]
    probes = sum(len(times) for times in arrivals.values())
    probed = sum(1 for times in arrivals.values() if times)
    if len(intervals) < 2:  # an overloaded daemon may not get a probe through at all
        nan = float("nan")
        return PeriodStats(len(intervals), nan, nan, nan, 0.0, probes, probed)
    cuts = statistics.quantiles(intervals, n=100, method="inclusive")
    low, high = PERIOD * (1 - PERIOD_TOLERANCE), PERIOD * (1 + PERIOD_TOLERANCE)
    within = sum(low <= i <= high for i in intervals) / len(intervals)
    median = statistics.median(intervals)
    return PeriodStats(len(intervals), median, cuts[0], cuts[98], within, probes, probed)


@dataclass(frozen=True)
class Census:
    """What the API says of all programs at one moment."""

    states: dict[str, int]
    health: dict[str, int]
    restarts: int

    @classmethod
    def of(cls, daemon: Sentinel) -> Census:
        programs = daemon.programs()
        states: dict[str, int] = {}
        health: dict[str, int] = {}
        for p in programs:
            states[p["state"]] = states.get(p["state"], 0) + 1
            health[p.get("health", "?")] = health.get(p.get("health", "?"), 0) + 1
        return cls(states, health, sum(int(p["restarts"]) for p in programs))


def seconds_or_na(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}s"


def counts(table: dict[str, int]) -> str:
    return ", ".join(f"{n} {key}" for key, n in sorted(table.items(), key=lambda kv: -kv[1]))


# --- the run --------------------------------------------------------------------------------


def start_up(daemon: Sentinel, server: TargetServer, programs: int) -> None:
    """Wait for every program to be RUNNING, then for their first probes (or a deadline)."""
    began = time.monotonic()

    def all_running() -> bool:
        daemon.alive()
        if not daemon.socket.exists():
            return False
        try:
            states = daemon.programs()
        except httpx.TransportError:
            return False
        return len(states) == programs and all(s["state"] == "RUNNING" for s in states)

    wait_for(all_running, STARTUP_TIMEOUT, f"all {programs} programs to be RUNNING", API_POLL)
    running_after = time.monotonic() - began
    # A daemon that cannot keep up never probes some programs: measure that, do not wait on it.
    with contextlib.suppress(BenchmarkError):
        wait_for(lambda: server.seen()[0] >= programs, FIRST_PROBES_TIMEOUT, "first probes", POLL)
    probed, _ = server.seen()
    probed_after = time.monotonic() - began
    print(
        f"startup: all {programs} RUNNING after {running_after:.1f}s; {probed} of {programs} "
        f"programs probed after {probed_after:.1f}s"
        + ("" if probed >= programs else " (gave up waiting for the rest)"),
        flush=True,
    )


def steady_state(daemon: Sentinel, server: TargetServer, programs: int, seconds: float) -> bool:
    """The window: probe period, probe count, daemon CPU and RSS. True if the targets hold."""
    server_pid = server.process.pid
    assert server_pid is not None
    before = Census.of(daemon)
    cpu0, server_cpu0, t0 = daemon.cpu_seconds(), cpu_seconds_of(server_pid), time.monotonic()
    time.sleep(seconds)
    cpu1, server_cpu1, t1 = daemon.cpu_seconds(), cpu_seconds_of(server_pid), time.monotonic()
    daemon.alive()
    after = Census.of(daemon)
    window, cpu = t1 - t0, cpu1 - cpu0
    stats = period_stats(server.arrivals(t0, t1))
    expected = programs * window / PERIOD
    cpu_ok = cpu / window <= CPU_TARGET
    per_1000 = f"{cpu / stats.probes * 1000:.3f}" if stats.probes else "n/a"
    print(
        f"probe period ({stats.intervals} intervals of {stats.programs_probed} programs): "
        f"median {seconds_or_na(stats.median)}, p1 {seconds_or_na(stats.p1)}, "
        f"p99 {seconds_or_na(stats.p99)}; "
        f"within +-{PERIOD_TOLERANCE:.0%} of {PERIOD:g}s: {stats.within:.1%}  "
        f"[target: p1..p99 within +-{PERIOD_TOLERANCE:.0%}] {verdict(stats.ok)}"
    )
    print(
        f"probes seen by the server: {stats.probes} in {window:.1f}s, expected "
        f"{expected:.0f} ({stats.probes / expected:.1%}); malformed requests: {server.seen()[1]}"
    )
    print(
        f"daemon CPU: {cpu / window:.1%} of one core ({cpu:.2f} CPU-s in {window:.1f}s); "
        f"{per_1000} CPU-s per 1000 probes (= cores per 1000 probes/s)  "
        f"[target: <= {CPU_TARGET:.0%} of one core] {verdict(cpu_ok)}"
    )
    print(f"daemon RSS: {daemon.rss_bytes() / 2**20:.1f} MiB")
    print(f"target server CPU: {(server_cpu1 - server_cpu0) / window:.1%} of one core")
    print(
        f"restarts of these always-healthy programs during the window: "
        f"{after.restarts - before.restarts}; at its end: {counts(after.states)}; "
        f"health {counts(after.health)}"
    )
    return stats.ok and cpu_ok


def detection(daemon: Sentinel, server: TargetServer, names: list[str]) -> bool:
    """Switch a few programs' answers to 503; time their liveness restarts against the bound."""
    failing = [names[i * len(names) // FAILING] for i in range(min(FAILING, len(names)))]
    switch_wall, switch_mono = server.fail(failing)
    restarts: dict[str, dict[str, Any]] = {}
    last_poll = switch_wall
    maybe_lost = False

    def all_restarted() -> bool:
        nonlocal last_poll, maybe_lost
        daemon.alive()
        polled = time.time()
        events = daemon.recent_events()
        # The history holds the last 1000 events: if its oldest is newer than our last poll,
        # events in between may have been pushed out before we saw them.
        maybe_lost |= bool(events) and events[0]["timestamp"] > last_poll
        last_poll = polled
        for event in events:
            if (
                event.get("event") == "restart"
                and event.get("reason") == "liveness"
                and event.get("process") in failing
                and event["timestamp"] >= switch_wall
            ):
                restarts.setdefault(event["process"], event)
        return len(restarts) == len(failing)

    with contextlib.suppress(BenchmarkError):
        wait_for(all_restarted, DETECTION_TIMEOUT, "the restarts", POLL)
    server.heal(failing)
    print(
        f"detection-to-restart ({len(failing)} programs switched to 503; bound = "
        f"failure_threshold {FAILURE_THRESHOLD} x period {PERIOD:g}s + timeout {TIMEOUT:g}s "
        f"= {BOUND:g}s):",
        end=" ",
    )
    if not restarts:
        print(f"no liveness restart within {DETECTION_TIMEOUT:g}s  {verdict(False)}")
        return False
    over = sorted(e["timestamp"] - switch_wall - BOUND for e in restarts.values())
    missing = len(failing) - len(restarts)
    delay_ok = missing == 0 and over[-1] <= DELAY_MARGIN
    print(
        f"delay - bound: median {statistics.median(over):+.2f}s, max {over[-1]:+.2f}s"
        + (f", {missing} not restarted within {DETECTION_TIMEOUT:g}s" if missing else "")
        + f"  [target: <= 0 + {DELAY_MARGIN:g}s] {verdict(delay_ok)}"
    )
    # Where the time went, from the server's side: the switch -> the first failing probe,
    # and the third failing probe's arrival -> the restart event.
    failed = server.arrivals(switch_mono, switch_mono + DETECTION_TIMEOUT)
    to_wall = switch_wall - switch_mono
    first = [failed[n][0] - switch_mono for n in restarts if failed.get(n)]
    after_third = [
        e["timestamp"] - (failed[n][FAILURE_THRESHOLD - 1] + to_wall)
        for n, e in restarts.items()
        if len(failed.get(n, [])) >= FAILURE_THRESHOLD
    ]
    by_503 = sum("HTTP 503" in e.get("detail", "") for e in restarts.values())
    print(
        f"  restarts whose detail is the 503: {by_503} of {len(restarts)}"
        + (
            f"; switch -> first failing probe: median {statistics.median(first):.2f}s, "
            f"max {max(first):.2f}s"
            if first
            else ""
        )
        + (
            f"; 3rd failing probe -> restart event: median {statistics.median(after_third):.3f}s,"
            f" max {max(after_third):.3f}s"
            if after_third
            else ""
        )
        + ("; (some events may have been missed: the history turned over)" if maybe_lost else "")
    )
    return delay_ok


def measure(args: argparse.Namespace, directory: Path) -> bool:
    """The whole benchmark; True if every target was met."""
    programs, seconds = args.programs, args.seconds
    print(
        f"sentinel probe benchmark: {programs} programs (sleep 3600), HTTP liveness every "
        f"{PERIOD:g}s to one loopback server, {seconds:g}s window; "
        f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
        flush=True,
    )
    server = TargetServer()
    daemon: Sentinel | None = None
    stopped = False
    try:
        daemon = Sentinel(write_config(directory, programs, server.port))
        start_up(daemon, server, programs)
        time.sleep(args.settle)  # past the start-up burst: the window measures steady state
        steady_ok = steady_state(daemon, server, programs, seconds)
        detection_ok = detection(daemon, server, program_names(programs))
        code, took = daemon.shutdown()
        stopped = True
        print(f"shutdown: SIGTERM -> sentinel exited {code} after {took:.1f}s")
        if code != 0:
            raise BenchmarkError(f"sentinel exited with {code}:\n{daemon.log_tail()}")
        return steady_ok and detection_ok
    finally:
        if daemon is not None and not stopped:
            try:
                daemon.shutdown()
            except subprocess.TimeoutExpired:
                daemon.kill()
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--programs", type=int, default=1000, help="programs (default 1000)")
    parser.add_argument("--seconds", type=float, default=30.0, help="window (default 30)")
    parser.add_argument(
        "--settle", type=float, default=5.0, help="wait after the first probes (default 5)"
    )
    args = parser.parse_args(argv)
    if args.programs < 2 or args.seconds < 3 * PERIOD or not 0 <= args.settle <= 120:
        parser.error(f"expected --programs >= 2, --seconds >= {3 * PERIOD:g}, --settle 0..120")
    become_subreaper()
    try:
        with tempfile.TemporaryDirectory(prefix="bench-probes-") as tmp:
            met = measure(args, Path(tmp))
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        leftovers = reap_leftovers()
        if leftovers:
            print(f"killed and reaped leftover processes: {'; '.join(leftovers)}", file=sys.stderr)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
