"""Soak: 500 programs (a tenth crash-looping), a TCP liveness probe on each, for 10 minutes
(`--minutes` to shorten). Reports the slope of sentinel's RSS, open fds and threads, checks
that no log line was lost and that every restart is counted alike in metrics and status.

    python tests/benchmarks/bench_soak.py --minutes 3
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

PROGRAMS = 500
CRASHERS = PROGRAMS // 10
STEADY = "i=0; while :; do echo line $i; i=$((i+1)); sleep 1; done"
CRASHER = "echo start; sleep 2; exit 3"


def config(port: int) -> str:
    out = ['[sentinel]\nlog_level = "warning"\n']
    for n in range(PROGRAMS):
        crash = n < CRASHERS
        out.append(
            f"[programs.p{n:03d}]\ncommand = {json.dumps(['sh', '-c', CRASHER if crash else STEADY])}\n"
            f'start_seconds = "1s"\nbackoff = {{ initial = "1s", max = "4s" }}\n'
            f"[programs.p{n:03d}.liveness]\ntcp = {{ port = {port} }}\n"
            'period = "5s"\n'
        )
    return "".join(out)


def sample(pid: int) -> tuple[float, int, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    rss = int(re.search(r"VmRSS:\s+(\d+)", status)[1]) / 1024  # type: ignore[index]
    threads = int(re.search(r"Threads:\s+(\d+)", status)[1])  # type: ignore[index]
    return rss, len(list(Path(f"/proc/{pid}/fd").iterdir())), threads


def slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope, per minute."""
    n = len(points)
    mx = sum(t for t, _ in points) / n
    my = sum(v for _, v in points) / n
    den = sum((t - mx) ** 2 for t, _ in points) or 1.0
    return sum((t - mx) * (v - my) for t, v in points) / den * 60


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--minutes", type=float, default=10.0)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory)
        (root / "sentinel.toml").write_text(config(port))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "run", "-c", str(root / "sentinel.toml")],
            cwd=root, stderr=(root / "stderr").open("wb"),
        )  # fmt: skip
        client = httpx.Client(transport=httpx.HTTPTransport(uds=str(root / "sentinel.sock")))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (root / "sentinel.sock").exists():
            time.sleep(0.2)
        start = time.monotonic()
        points: list[tuple[float, float, int, int]] = []
        try:
            while time.monotonic() - start < args.minutes * 60:
                try:
                    while True:
                        listener.accept()[0].close()
                except BlockingIOError:
                    pass
                rss, fds, threads = sample(daemon.pid)
                points.append((time.monotonic() - start, rss, fds, threads))
                time.sleep(1.0)
            status = client.get("http://s/api/v1/programs", timeout=60).json()
            metrics = client.get("http://s/metrics", timeout=60).text
        finally:
            daemon.terminate()
            daemon.wait(120)
        warm = [p for p in points if p[0] >= min(60.0, args.minutes * 20)]  # past start-up
        in_status = sum(p["restarts"] for p in status)
        in_metrics = sum(
            float(v)
            for v in re.findall(r"^sentinel_program_restarts_total\{.*\} (\S+)$", metrics, re.M)
        )
        lost = 0
        for n in range(CRASHERS, PROGRAMS):
            lines = (root / "logs" / f"p{n:03d}.stdout.log").read_text().split("\n")
            numbers = [int(x.split()[1]) for x in lines if x.startswith("line ")]
            lost += (numbers[-1] + 1 - len(numbers)) if numbers else 1
        print(f"minutes: {args.minutes:g}, samples: {len(points)}")
        print(
            f"RSS: {warm[0][1]:.1f} -> {warm[-1][1]:.1f} MiB, slope {slope([(p[0], p[1]) for p in warm]):+.3f} MiB/min"
        )
        print(
            f"open fds: {warm[0][2]} -> {warm[-1][2]}, slope {slope([(p[0], p[2]) for p in warm]):+.3f}/min"
        )
        print(
            f"threads: {warm[0][3]} -> {warm[-1][3]}, slope {slope([(p[0], p[3]) for p in warm]):+.3f}/min"
        )
        print(f"restarts: status {in_status}, metrics {in_metrics:g}")
        print(f"log lines lost: {lost}")
        return 0 if lost == 0 and in_status == in_metrics else 1


if __name__ == "__main__":
    sys.exit(main())
