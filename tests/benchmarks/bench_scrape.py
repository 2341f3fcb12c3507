"""Scrape time and size of /metrics with N programs (default 1000), each with a liveness probe.

    python tests/benchmarks/bench_scrape.py [--programs 1000] [--scrapes 30]

Starts a real `sentinel run` on a temporary config (tiny sleepers, TCP liveness probes every
10 s against a loopback listener this script holds), waits until every process is RUNNING,
then times GET /metrics over [control].http (TCP, as Prometheus scrapes), several times.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


def scrape(host: str, port: int) -> bytes:
    """GET /metrics over TCP as Prometheus does, with a client that costs next to nothing
    (so that the figure is sentinel's: an HTTP library in Python would add its own parsing)."""
    # The Host names the listener, as Prometheus's does: the control plane answers 421 to any
    # other (its DNS-rebinding guard).
    request = f"GET /metrics HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    with socket.create_connection((host, port)) as sock:
        sock.sendall(request.encode())
        chunks = []
        while chunk := sock.recv(1 << 20):
            chunks.append(chunk)
    head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"scrape failed: {head[:80]!r}")
    return body


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--scrapes", type=int, default=30)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    port = listener.getsockname()[1]
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "sentinel.toml"
        config.write_text(f"""
[control]
socket = "sentinel.sock"
http = "127.0.0.1:0"
[programs.sleeper]
command = ["sleep", "3600"]
instances = {args.programs}
start_seconds = 0
stdout = {{ path = "none" }}
stderr = {{ path = "none" }}
[programs.sleeper.liveness]
tcp = {{ port = {port} }}
period = "10s"
""")
        daemon = subprocess.Popen(
            [sys.executable, "-m", "sentinel", "run", "-c", str(config)], stderr=subprocess.DEVNULL
        )
        client = httpx.Client(
            transport=httpx.HTTPTransport(uds=f"{tmp}/sentinel.sock"),
            base_url="http://sentinel",
            timeout=30,
        )
        try:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    states = [p["state"] for p in client.get("/api/v1/programs").json()]
                    if states.count("RUNNING") == args.programs:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
            else:
                raise SystemExit("the programs did not all reach RUNNING within 120 s")
            host, _, http_port = client.get("/healthz").json()["http"].rpartition(":")
            scrape(host, int(http_port))  # warm-up
            times, size = [], 0
            for _ in range(args.scrapes):
                began = time.perf_counter()
                body = scrape(host, int(http_port))
                times.append(time.perf_counter() - began)
                size = len(body)
            series = sum(1 for line in body.decode().splitlines() if line and line[0] != "#")
            times.sort()
            print(f"programs: {args.programs}, scrapes: {args.scrapes}")
            print(
                f"scrape time: p50 {statistics.median(times) * 1000:.1f} ms, "
                f"p90 {times[int(len(times) * 0.9)] * 1000:.1f} ms, max {times[-1] * 1000:.1f} ms"
            )
            print(f"scrape size: {size / 1024:.0f} KiB, {series} series")
        finally:
            client.close()
            daemon.send_signal(signal.SIGTERM)
            daemon.wait(120)
            listener.close()
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
