"""What the web UI costs the daemon: its CPU with 500 programs, with and without a browser
watching, idle and in a crash loop.

    python tests/benchmarks/bench_webui.py [--programs 500] [--window 20]

`sentinel run` with N `sleep 3600` programs and 10 programs that exit at once
(`sh -c 'exit 1'`, start_seconds 0, backoff 100-300 ms: several restarts a second each), not
started at first. Once every sleeper is RUNNING, the daemon's CPU (its threads' scheduler
time, /proc/PID/task/*/schedstat) over `--window` seconds in each phase:

1. idle, no page open;
2. idle, the main page open in headless Chromium (Debian's);
3. idle, the main page and a process page open (the process page streams its history and
   the CPU and memory samples run);
4. the crash loop running, no page open;
5. the crash loop running, the main page open.

The phases with a page minus those without are the page's cost. Target: a watched idle
daemon under 2% of a core, and a watched crash loop under 5% more than an unwatched one.

Exit status: 0 every target met, 1 a target missed, 2 the benchmark itself failed.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from bench_supervisors import run_ns_of
from benchlib import BenchmarkError, become_subreaper, installed_script, reap_leftovers, verdict
from playwright.sync_api import sync_playwright

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
IDLE_TARGET = 0.02  # of a core: a watched idle daemon
CRASH_EXTRA_TARGET = 0.05  # of a core: what watching a crash loop adds


def config(directory: Path, programs: int) -> Path:
    path = directory / "sentinel.toml"
    path.write_text(
        f"""
[control]
socket = "sentinel.sock"
http = "127.0.0.1:0"

[programs.idle]
command = ["sleep", "3600"]
instances = {programs}
start_seconds = 0

[programs.crash]
command = ["sh", "-c", "exit 1"]
instances = 10
start_seconds = 0
autostart = false
backoff = {{ initial = "100ms", max = "300ms" }}
"""
    )
    return path


def cpu_over(pid: int, window: float) -> float:
    """The daemon's CPU over `window` seconds, in cores."""
    ns0, t0 = run_ns_of(pid), time.monotonic()
    time.sleep(window)
    return (run_ns_of(pid) - ns0) / 1e9 / (time.monotonic() - t0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", type=int, default=500)
    parser.add_argument("--window", type=float, default=20.0)
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)")
        return 2
    become_subreaper()
    directory = Path(tempfile.mkdtemp(prefix="bench-webui-"))
    log = (directory / "daemon.log").open("wb")
    daemon = subprocess.Popen(
        [*installed_script("sentinel", "sentinel"), "run", "-c", str(config(directory, args.programs))],
        stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=directory,
    )  # fmt: skip
    transport = httpx.HTTPTransport(uds=str(directory / "sentinel.sock"))
    api = httpx.Client(transport=transport, base_url="http://sentinel", timeout=30)
    figures: dict[str, float] = {}
    try:
        base = wait_running(daemon, api, args.programs)
        print(f"{args.programs} programs RUNNING; {args.window:g} s a phase")
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            figures["1. idle, no page"] = phase(daemon.pid, args.window)
            main_page = browser.new_page()
            main_page.goto(base)
            main_page.wait_for_function("() => document.querySelectorAll('#rows tr').length > 0")
            figures["2. idle, main page"] = phase(daemon.pid, args.window)
            process_page = browser.new_page()
            process_page.goto(f"{base}/ui/process/idle_0")
            figures["3. idle, main and process pages"] = phase(daemon.pid, args.window)
            process_page.close()
            main_page.close()
            time.sleep(2)  # the hub stops with its last page
            api.post("/api/v1/groups/crash/start", params={"wait": "false"}).raise_for_status()
            time.sleep(3)
            figures["4. crash loop, no page"] = phase(daemon.pid, args.window)
            main_page = browser.new_page()
            main_page.goto(base)
            main_page.wait_for_function("() => document.querySelectorAll('#rows tr').length > 0")
            figures["5. crash loop, main page"] = phase(daemon.pid, args.window)
            browser.close()
    except BenchmarkError as exc:
        print(f"benchmark failed: {exc}")
        return 2
    finally:
        api.close()
        daemon.terminate()
        daemon.wait(60)
        log.close()
        reap_leftovers()
    for name, cores in figures.items():
        print(f"{name:<36} {cores:7.2%} of a core")
    idle = figures["2. idle, main page"]
    extra = figures["5. crash loop, main page"] - figures["4. crash loop, no page"]
    ok_idle, ok_crash = idle <= IDLE_TARGET, extra <= CRASH_EXTRA_TARGET
    print(
        f"watched idle daemon: {idle:.2%} of a core (target {IDLE_TARGET:.0%}): {verdict(ok_idle)}"
    )
    print(
        f"watching the crash loop adds {extra:.2%} (target {CRASH_EXTRA_TARGET:.0%}): {verdict(ok_crash)}"
    )
    shutil.rmtree(directory, ignore_errors=True)
    return 0 if ok_idle and ok_crash else 1


def phase(pid: int, window: float) -> float:
    time.sleep(2)  # settle
    return cpu_over(pid, window)


def wait_running(daemon: subprocess.Popen[bytes], api: httpx.Client, programs: int) -> str:
    """The UI's base URL, once every sleeper is RUNNING."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise BenchmarkError(f"sentinel exited with {daemon.returncode}")
        try:
            states = [p["state"] for p in api.get("/api/v1/programs").json()]
            address = api.get("/healthz").json()["http"]
        except httpx.TransportError:
            time.sleep(0.2)
            continue
        if states.count("RUNNING") >= programs:
            return f"http://{address}"
        time.sleep(0.2)
    raise BenchmarkError("the programs did not all start within 120 s")


if __name__ == "__main__":
    sys.exit(main())
