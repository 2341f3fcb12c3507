"""getAllProcessInfo with N programs (default 500), sentinel and supervisord side by side.

    python tests/benchmarks/bench_xmlrpc.py [--programs 500] [--calls 100]

Each daemon runs N `sleep 3600` programs (bench_supervisors.py's configs); once all are
RUNNING, the script POSTs supervisor.getAllProcessInfo to /RPC2 over the daemon's unix socket
(httpx, the same client for both) `--calls` times, one after the other, and reports the
round trip (p50, p90) and the daemon's CPU per call: its threads' scheduler time
(/proc/PID/task/*/schedstat) over the calls, divided by their number. On a busy machine the
CPU figure is the steadier one: it does not count the time the daemon waits for a core.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
import xmlrpc.client
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

TARGET = 0.020  # s of the daemon's CPU per getAllProcessInfo of 500 processes, at most


def measure(kind: type[Daemon], directory: Path, programs: int, calls: int) -> tuple[Spread, float]:
    """(round trips, daemon CPU seconds per call) for getAllProcessInfo."""
    program = Program("idle", ("sleep", "3600"), instances=programs)
    names = set(program.process_names())
    with kind(directory, [program]) as daemon:

        def all_running() -> bool:
            daemon.alive()
            states = daemon.states()
            return states.keys() == names and all(s == "RUNNING" for s, _ in states.values())

        wait_for(all_running, ALL_RUNNING_TIMEOUT, f"{kind.label}: {programs} RUNNING", POLL)
        body = xmlrpc.client.dumps((), "supervisor.getAllProcessInfo")
        headers = {"Content-Type": "text/xml"}

        def call() -> bytes:
            response = daemon.http().post("/RPC2", content=body, headers=headers)
            response.raise_for_status()
            return response.content

        answer = call()  # a first call off the record; and a check of what comes back
        (infos,), _ = xmlrpc.client.loads(answer)
        if len(infos) != programs:
            raise BenchmarkError(f"{kind.label}: {len(infos)} processes, not {programs}")
        trips = []
        ns0 = run_ns_of(daemon.pid)
        for _ in range(calls):
            began = time.perf_counter()
            call()
            trips.append(time.perf_counter() - began)
        cpu = (run_ns_of(daemon.pid) - ns0) / 1e9 / calls
    return Spread.of(trips), cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--calls", type=int, default=100)
    args = parser.parse_args()
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bench-xmlrpc-"))
    results = {}
    try:
        for kind in (Sentinel, Supervisord):
            trips, cpu = measure(kind, root / kind.label, args.programs, args.calls)
            results[kind.label] = cpu
            print(
                f"{kind.label}: getAllProcessInfo, {args.programs} processes: round trip "
                f"{trips.ms()}; daemon CPU {cpu * 1e3:.2f} ms per call",
                flush=True,
            )
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        found = reap_leftovers()
        if found:
            print(f"killed and reaped leftover processes: {'; '.join(found)}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    met = results["sentinel"] <= TARGET
    print(f"sentinel target: daemon CPU per call <= {TARGET * 1e3:g} ms: {verdict(met)}")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
