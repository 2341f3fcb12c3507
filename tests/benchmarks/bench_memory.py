"""Resident memory with idle programs: sentinel and supervisord side by side, and where
sentinel's goes.

    python tests/benchmarks/bench_memory.py [--programs 100,500] [--settle 5]

1. Each daemon runs N programs, each `sleep 3600` with start_seconds 0 (startsecs=0), for
   each N of --programs. Once every process is RUNNING and --settle seconds have passed: the
   daemon's VmRSS, RssAnon and RssFile (/proc/PID/status) and Pss (/proc/PID/smaps_rollup).
   A program's cost is the difference between the largest and the smallest N, per program.
2. Where sentinel's goes, with the largest N: its file mappings by resident size
   (/proc/PID/smaps: the interpreter, extension modules, OpenSSL), and its anonymous memory.
3. What its imports cost: a fresh interpreter imports what `sentinel run` imports, one layer
   at a time, and reads its own RSS after each; then what the code that runs only when used
   would add (probes: apscheduler; alerts: apprise). supervisord's imports, for comparison.

Target (from the issue): sentinel's VmRSS with 500 programs at most supervisord's + 10 MiB.
Exit status: 0 met, 1 missed, 2 the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from bench_supervisors import ALL_RUNNING_TIMEOUT, POLL, Daemon, Program, Sentinel, Supervisord
from benchlib import BenchmarkError, become_subreaper, reap_leftovers, verdict, wait_for

MIB = 2**20
TARGET_PROGRAMS = 500
TARGET_MARGIN = 10 * MIB  # over supervisord's VmRSS

# What `sentinel run` imports, in layers, each on top of the ones before (the order in which
# the daemon meets them): a label and the modules.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("asyncio (and ssl, which it imports)", ("asyncio",)),
    ("the command line", ("sentinel.cli", "sentinel.cli.local")),
    ("pydantic and the config's models", ("sentinel.config",)),
    ("prometheus_client and the collector", ("sentinel.metrics",)),
    ("starlette, uvicorn: the API", ("sentinel.api.app", "sentinel.api.listeners")),
    ("the rest of the daemon", ("sentinel.daemon",)),
)
# What each part costs alone: imported last, after everything else the daemon imports that
# does not need it. A label, the part, and what comes first. CORE: the daemon but its API and
# its metrics.
CORE = (
    "sentinel.cli.local",
    "sentinel.supervisor",
    "sentinel.probes.runner",
    "sentinel.notify",
)
API = ("starlette.applications", "starlette.routing", "uvicorn", "uvicorn.protocols.http.h11_impl")
PARTS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    # ssl comes with http.client, which prometheus_client and starlette import too
    ("asyncio", ("asyncio",), ("sentinel.cli", "sentinel.config", "sentinel.metrics")),
    ("pydantic and the config's models", ("sentinel.config",), ("sentinel.cli.local", *API)),
    ("prometheus_client and the collector", ("sentinel.metrics",), (*CORE, *API)),
    ("starlette and uvicorn", API, (*CORE, "sentinel.metrics")),
    ("apscheduler (imported for the first probe)", ("sentinel.scheduling",), ("sentinel.daemon",)),
    ("apprise (imported when [notify] has URLs)", ("apprise",), ("sentinel.daemon",)),
)
SUPERVISORD_IMPORTS = ("supervisor.supervisord", "supervisor.rpcinterface")

# Run in a fresh interpreter: import each step's modules, print the RSS after it (JSON lines).
IMPORTER = """
import importlib, json, sys
def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096
print(json.dumps(rss()), flush=True)
for modules in json.loads(sys.argv[1]):
    for module in modules:
        importlib.import_module(module)
    print(json.dumps(rss()), flush=True)
"""


def status_of(pid: int) -> dict[str, int]:
    """VmRSS, RssAnon, RssFile (bytes) and Pss (from smaps_rollup) of a process."""
    found = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "RssAnon", "RssFile"):
            found[key] = int(value.split()[0]) * 1024
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            found["Pss"] = int(line.split()[1]) * 1024
    return found


def mappings_of(pid: int) -> Counter[str]:
    """Resident bytes by mapping: a file's path, [heap], or [anon] for anonymous memory."""
    sizes: Counter[str] = Counter()
    where = "[anon]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and "-" in fields[0] and not fields[0].endswith(":"):  # a mapping's head
            where = fields[5] if len(fields) > 5 else "[anon]"
        elif fields and fields[0] == "Rss:":
            sizes[where] += int(fields[1]) * 1024
    return sizes


def rss_after(steps: list[tuple[str, ...]]) -> list[int]:
    """A fresh interpreter's RSS before any step, then after each step's imports."""
    result = subprocess.run(
        [sys.executable, "-c", IMPORTER, json.dumps(steps)],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchmarkError(f"importing {steps} failed:\n{result.stderr[-2000:]}")
    return [int(line) for line in result.stdout.splitlines()]


def mib(size: float) -> str:
    return f"{size / MIB:6.1f} MiB"


MAPPINGS: dict[int, Counter[str]] = {}  # sentinel's, by number of programs


def idle(kind: type[Daemon], directory: Path, programs: int, settle: float) -> dict[str, int]:
    """The daemon's memory with `programs` idle programs, all RUNNING; the mappings of
    sentinel's are kept in MAPPINGS."""
    listed = [Program(f"p{i}", ("sleep", "3600"), immediate=True) for i in range(programs)]
    names = {p.name for p in listed}
    with kind(directory, listed) as daemon:

        def all_running() -> bool:
            daemon.alive()
            states = daemon.states()
            return states.keys() == names and all(s == "RUNNING" for s, _ in states.values())

        wait_for(all_running, ALL_RUNNING_TIMEOUT, f"{programs} programs RUNNING", POLL)
        time.sleep(settle)
        daemon.alive()
        found = status_of(daemon.pid)
        if kind is Sentinel:
            MAPPINGS[programs] = mappings_of(daemon.pid)
    shown = "  ".join(f"{key} {mib(found[key])}" for key in ("VmRSS", "RssAnon", "RssFile", "Pss"))
    print(f"  {kind.label:11} {programs:4} programs: {shown}", flush=True)
    return found


def report_mappings(programs: int) -> None:
    sizes = MAPPINGS[programs]
    print(f"2. sentinel's resident memory by mapping, {programs} programs")
    shown = 0
    for where, size in sizes.most_common():
        if size < 256 * 1024:
            break
        print(f"  {mib(size)}  {where}")
        shown += size
    print(f"  {mib(sum(sizes.values()) - shown)}  everything else (smaller files)")


def report_imports() -> None:
    print("3. imports, a layer at a time in a fresh interpreter: RSS after it, and its share")
    sizes = rss_after([modules for _, modules in LAYERS])
    print(f"  {mib(sizes[0])}             the interpreter")
    for (label, _), before, after in zip(LAYERS, sizes, sizes[1:], strict=False):
        print(f"  {mib(after)}  {mib(after - before)}  {label}")
    print("   each part imported last, after the rest of what the daemon imports without it")
    for label, part, first in PARTS:
        before, after = rss_after([first, part])[1:]
        print(f"  {mib(after - before)}  {label}")
    print(f"  supervisord: {mib(rss_after([SUPERVISORD_IMPORTS])[1]).strip()} after its imports")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", default=f"100,{TARGET_PROGRAMS}")
    parser.add_argument("--settle", type=float, default=5.0)
    args = parser.parse_args()
    counts = sorted({int(n) for n in args.programs.split(",")})
    become_subreaper()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="bench-memory-"))
    found: dict[tuple[str, int], dict[str, int]] = {}
    try:
        print("1. resident memory with idle programs", flush=True)
        for programs in counts:
            for kind in (Sentinel, Supervisord):
                directory = root / f"{kind.label}-{programs}"
                found[kind.label, programs] = idle(kind, directory, programs, args.settle)
        if len(counts) > 1:
            low, high = counts[0], counts[-1]
            for kind in (Sentinel, Supervisord):
                grown = found[kind.label, high]["VmRSS"] - found[kind.label, low]["VmRSS"]
                per = grown / (high - low) / 1024
                print(f"  {kind.label:11} per program: {per:.1f} KiB")
        report_mappings(counts[-1])
        report_imports()
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}", file=sys.stderr)
        return 2
    finally:
        left = reap_leftovers()
        if left:
            print(f"killed and reaped leftover processes: {'; '.join(left)}", file=sys.stderr)
        shutil.rmtree(root, ignore_errors=True)
    if TARGET_PROGRAMS not in counts:
        return 0
    ours = found["sentinel", TARGET_PROGRAMS]["VmRSS"]
    limit = found["supervisord", TARGET_PROGRAMS]["VmRSS"] + TARGET_MARGIN
    met = ours <= limit
    print(
        f"sentinel target: VmRSS with {TARGET_PROGRAMS} programs at most supervisord's + 10 MiB "
        f"({mib(limit).strip()}): {mib(ours).strip()}: {verdict(met)}"
    )
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
