"""Steps of the wall clock under a real `sentinel run`: probes keep their period, the daemon answers.

libfaketime (LD_PRELOAD) fakes the daemon's wall clock from a file that the test rewrites while
the daemon runs; the daemon's monotonic clock stays real (FAKETIME_DONT_FAKE_MONOTONIC). The
probe target is a loopback HTTP server in the test process, which notes when each probe
arrives on the test's own monotonic clock, which no step touches.
"""

from __future__ import annotations

import collections
import contextlib
import glob
import http.server
import itertools
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_binary
from tests.integration.conftest import SentinelProcess, StartSentinel, child, wait_until

PERIOD = 0.3
# How far a gap between two probes may be from PERIOD, either way: a probe held up by a busy
# machine (its late arrival shortens the next gap) is not a scheduling fault.
TOLERANCE = 0.2
AFTER = 6  # probes to see after the step
YEAR = 365 * 86400  # libfaketime's "y"
STEPS = {"-1h": -3600, "+1h": 3600, "+10y": 10 * YEAR}
# Enough that a step which makes every job due at once shows: APScheduler's IntervalTrigger
# stalled the daemon for most of a second enumerating missed runs, and ran some probes early.
PROGRAMS = 20
NAMES = [f"app{i}" for i in range(PROGRAMS)]
SLEEPER = json.dumps(child("import time; time.sleep(3600)"))


def libfaketime() -> str:
    require_binary("faketime")  # the Debian package; it brings libfaketime
    found = sorted(glob.glob("/usr/lib/*/faketime/libfaketime.so.1"))
    if not found:
        pytest.fail("faketime is installed but libfaketime.so.1 is not where Debian puts it")
    return found[0]


class ProbeTarget:
    """A loopback HTTP server that notes when each program's probe arrives (time.monotonic)."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = collections.defaultdict(list)
        arrivals = self.arrivals

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                arrivals[self.path.rsplit("/", 1)[-1]].append(time.monotonic())
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: object) -> None:
                pass

        class Server(http.server.ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 128  # every program's probe may connect at once: none waits

        self.server = Server(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def seen(self, names: list[str]) -> dict[str, int]:
        """How many probes of each program have arrived."""
        return {name: len(self.arrivals[name]) for name in names}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def target() -> Iterator[ProbeTarget]:
    server = ProbeTarget()
    yield server
    server.close()


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for {pid}")


def kill_stalled(daemon: SentinelProcess, programs: list[int]) -> None:
    """SIGKILL a daemon that failed the test, and its programs: a stalled daemon does not act on
    SIGTERM, and one that enumerates missed runs eats memory fast."""
    assert daemon.proc is not None
    daemon.proc.kill()
    daemon.proc.wait(10)
    for pid in programs:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):  # orphaned to the test process, a subreaper
            os.waitpid(pid, 0)


def config(target: ProbeTarget) -> str:
    """PROGRAMS sleepers, each with an HTTP liveness probe every PERIOD on `target`."""
    return "".join(
        f"""
        [programs.{name}]
        command = {SLEEPER}
        environment = {{ LD_PRELOAD = "" }}  # real clock: under libfaketime time.sleep fails
        start_seconds = 0
        [programs.{name}.liveness]
        http = {{ url = "http://127.0.0.1:{target.port}/p/{name}" }}
        period = "{PERIOD}s"
        """
        for name in NAMES
    )


@pytest.mark.parametrize("step", list(STEPS))
def test_probes_keep_their_period_across_a_wall_clock_step(
    sentinel: StartSentinel, target: ProbeTarget, tmp_path: Path, step: str
) -> None:
    """After a step of the wall clock, probes still arrive once a period (no silence, no early
    or replayed run), `status` answers within a second and the daemon's memory does not grow."""
    fake_clock = tmp_path / "faketime"
    fake_clock.write_text("+0\n")
    daemon = sentinel(
        config(target),
        env={
            "LD_PRELOAD": libfaketime(),
            "FAKETIME_TIMESTAMP_FILE": str(fake_clock),
            "FAKETIME_NO_CACHE": "1",  # read the file at each call: the step lands at once
            "FAKETIME_DONT_FAKE_MONOTONIC": "1",
        },
    )
    assert daemon.proc is not None
    wait_until(lambda: min(target.seen(NAMES).values()) >= 3, what="the first probes")
    programs = [daemon.status(name)["pid"] for name in NAMES]
    rss = rss_bytes(daemon.proc.pid)
    before = target.seen(NAMES)

    fake_clock.write_text(f"{step}\n")
    try:
        # The daemon's own clock did step (else this would pass without testing anything).
        offset = STEPS[step]
        daemon.next_event(
            lambda e: (
                e["event"] == "probe_result" and abs(e["timestamp"] - offset - time.time()) < 60
            ),
            timeout=AFTER * PERIOD + 2,
        )
        wait_until(
            lambda: all(n >= before[name] + AFTER for name, n in target.seen(NAMES).items()),
            timeout=AFTER * PERIOD + 2,
            what=f"{AFTER} probes of each program after the step",
        )
        asked = time.monotonic()
        response = daemon.api("GET", "/api/v1/programs", timeout=1.0)
        answered = time.monotonic() - asked
    except BaseException:
        kill_stalled(daemon, programs)
        raise

    assert response.status_code == 200, response.text
    assert answered < 1.0, answered
    assert {p["name"]: p["state"] for p in response.json()} == dict.fromkeys(NAMES, "RUNNING")
    for name in NAMES:
        arrivals = target.arrivals[name][before[name] - 1 :]  # from the last one before the step
        gaps = [round(b - a, 3) for a, b in itertools.pairwise(arrivals)]
        assert max(gaps) <= PERIOD + TOLERANCE, f"{name} fell silent after the step: {gaps}"
        assert min(gaps) >= PERIOD - TOLERANCE, f"{name} ran early or in a burst: {gaps}"
    grown = rss_bytes(daemon.proc.pid) - rss
    assert grown < 10 * 2**20, f"the daemon grew by {grown} bytes"
