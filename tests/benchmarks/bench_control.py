"""The control plane: sentinel and supervisord side by side, in one run.

    python tests/benchmarks/bench_control.py [--programs 500] [--restart 100] [--calls 100]

1. Status of every process with full detail, N `sleep 3600` programs (default 500), once all
   are RUNNING: `--calls` requests one after the other over the daemon's unix socket (httpx,
   the same client for both). sentinel over JSON (`GET /api/v1/programs`) and over XML-RPC
   (`supervisor.getAllProcessInfo` on /RPC2); supervisord over its XML-RPC. Round trips
   (p50, p90) and the daemon's CPU per call (its threads' scheduler time,
   /proc/PID/task/*/schedstat, over the calls: steadier than a wall clock on a busy machine).
2. The daemon's resident memory with those N programs RUNNING (VmRSS).
3. `restart all` of `--restart` programs (default 100) with start_seconds 0 (startsecs=0):
   from the request until every process runs again with a new pid. sentinel: one
   `POST /api/v1/all/restart`; supervisord: what `supervisorctl restart all` sends
   (stopAllProcesses, then startAllProcesses, each waiting). Median of 5.

Exit status: 0 every sentinel target met, 1 a target missed, 2 the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import statistics
import sys
import tempfile
import time
import xmlrpc.client
from collections.abc import Callable
from pathlib import Path

from bench_supervisors import (
    ALL_RUNNING_TIMEOUT,
    POLL,
    Daemon,
    Program,
    Sentinel,
    Spread,
    Supervisord,
    run_ns_of,
)
from benchlib import BenchmarkError, become_subreaper, reap_leftovers, verdict, wait_for

JSON_P50_TARGET = 0.005  # s, status of 500 over JSON
XMLRPC_P50_TARGET = 0.020  # s, getAllProcessInfo of 500
RESTART_TARGET = 0.2  # s, restart all of 100
RSS_TARGET = 40 * 2**20  # bytes, with 500 programs
RESTART_RUNS = 5


def all_running(daemon: Daemon, names: set[str], old: dict[str, int | None]) -> Callable[[], bool]:
    """True once every process runs, each with a pid other than in `old`."""

    def check() -> bool:
        daemon.alive()
        states = daemon.states()
        return states.keys() == names and all(
            state == "RUNNING" and pid is not None and pid != old.get(name)
            for name, (state, pid) in states.items()
        )

    return check


def timed_calls(daemon: Daemon, call: Callable[[], object], calls: int) -> tuple[Spread, float]:
    """(round trips, daemon CPU seconds per call)."""
    call()  # a first call off the record
    trips = []
    ns0 = run_ns_of(daemon.pid)
    for _ in range(calls):
        began = time.perf_counter()
        call()
        trips.append(time.perf_counter() - began)
    return Spread.of(trips), (run_ns_of(daemon.pid) - ns0) / 1e9 / calls


def xmlrpc_call(daemon: Daemon, method: str, *params: object) -> object:
    body = xmlrpc.client.dumps(params, method)
    response = daemon.http().post("/RPC2", content=body, headers={"Content-Type": "text/xml"})
    response.raise_for_status()
    (result,), _ = xmlrpc.client.loads(response.content)
    return result


def status_and_memory(kind: type[Daemon], directory: Path, programs: int, calls: int) -> None:
    program = Program("idle", ("sleep", "3600"), instances=programs)
    names = set(program.process_names())
    with kind(directory, [program]) as daemon:
        wait_for(all_running(daemon, names, {}), ALL_RUNNING_TIMEOUT, "all RUNNING", POLL)
        rss = daemon.rss_bytes()
        print(f"  {kind.label}: resident memory with {programs} programs: {rss / 2**20:.1f} MiB")
        RESULTS[f"{kind.label} rss"] = rss

        def rpc() -> object:
            infos = xmlrpc_call(daemon, "supervisor.getAllProcessInfo")
            assert isinstance(infos, list) and len(infos) == programs
            return infos

        if kind is Sentinel:

            def json_status() -> object:
                response = daemon.http().get("/api/v1/programs")
                response.raise_for_status()
                return response.content

            trips, cpu = timed_calls(daemon, json_status, calls)
            print(f"  sentinel: JSON status of {programs}: {trips.ms()}; CPU {cpu * 1e3:.2f} ms")
            RESULTS["sentinel json"] = trips.p50
        trips, cpu = timed_calls(daemon, rpc, calls)
        print(
            f"  {kind.label}: getAllProcessInfo of {programs}: {trips.ms()}; CPU {cpu * 1e3:.2f} ms"
        )
        RESULTS[f"{kind.label} xmlrpc"] = trips.p50


def restart_all(kind: type[Daemon], directory: Path, programs: int) -> None:
    program = Program("batch", ("sleep", "3600"), instances=programs, immediate=True)
    names = set(program.process_names())
    with kind(directory, [program]) as daemon:
        wait_for(all_running(daemon, names, {}), ALL_RUNNING_TIMEOUT, "all RUNNING", POLL)
        times = []
        for _ in range(RESTART_RUNS):
            old = {name: pid for name, (_, pid) in daemon.states().items()}
            began = time.perf_counter()
            if kind is Sentinel:
                daemon.http().post("/api/v1/all/restart").raise_for_status()
            else:
                xmlrpc_call(daemon, "supervisor.stopAllProcesses", True)
                xmlrpc_call(daemon, "supervisor.startAllProcesses", True)
            wait_for(all_running(daemon, names, old), ALL_RUNNING_TIMEOUT, "restarted", 0.002)
            times.append(time.perf_counter() - began)
        median = statistics.median(times)
        shown = ", ".join(f"{t * 1e3:.0f}" for t in times)
        print(f"  {kind.label}: restart all of {programs}: median {median * 1e3:.0f} ms ({shown})")
        RESULTS[f"{kind.label} restart"] = median


RESULTS: dict[str, float] = {}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--restart", type=int, default=100)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bench-control-"))
    try:
        print(f"1-2. status and memory, {args.programs} programs", flush=True)
        for kind in (Sentinel, Supervisord):
            status_and_memory(kind, root / f"{kind.label}-status", args.programs, args.calls)
        print(f"3. restart all, {args.restart} programs", flush=True)
        for kind in (Sentinel, Supervisord):
            restart_all(kind, root / f"{kind.label}-restart", args.restart)
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        found = reap_leftovers()
        if found:
            print(f"killed and reaped leftover processes: {'; '.join(found)}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    targets = [
        ("JSON status p50 < 5 ms", RESULTS["sentinel json"] < JSON_P50_TARGET),
        ("getAllProcessInfo p50 < 20 ms", RESULTS["sentinel xmlrpc"] < XMLRPC_P50_TARGET),
        ("restart all < 0.2 s", RESULTS["sentinel restart"] < RESTART_TARGET),
        ("RSS <= 40 MiB", RESULTS["sentinel rss"] <= RSS_TARGET),
    ]
    for what, met in targets:
        print(f"sentinel target: {what}: {verdict(met)}")
    return 0 if all(met for _, met in targets) else 1


if __name__ == "__main__":
    sys.exit(main())
