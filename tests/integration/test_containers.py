"""sentinel as a container runs it: programs' lines on its own output (a pipe, a terminal or a
file), essential programs that end it with their status, /healthz for the health check, and
PID 1 in a PID namespace of its own (the shipped Dockerfile's entry point)."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import require_binary
from tests.integration.conftest import child, pid_alive, wait_until

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "conf" / "container" / "Dockerfile"
CONTAINER_CONFIG = ROOT / "conf" / "container" / "sentinel.toml"
SENTINEL = [sys.executable, "-m", "sentinel"]

# Half a line, a pause, the rest: a writer whose lines arrive in pieces.
TALKER = """
    import sys, time
    for n in range({count}):
        line = "{name}-%d " % n + "x" * (n % 97)
        sys.stdout.write(line[: len(line) // 2]); sys.stdout.flush()
        time.sleep(0.0005)
        sys.stdout.write(line[len(line) // 2 :] + "\\n"); sys.stdout.flush()
"""


def talkers(count: int, prefix: bool = True) -> str:
    programs = ""
    for name in ("alpha", "beta"):
        code = json.dumps(child(TALKER.format(count=count, name=name)))
        programs += f"""
            [programs.{name}]
            command = {code}
            start_seconds = 0
            autorestart = "never"
            stdout = {{ path = "inherit", prefix = {str(prefix).lower()} }}
        """
    return programs


def write_config(directory: Path, body: str) -> Path:
    path = directory / "sentinel.toml"
    path.write_text(textwrap.dedent(body))
    return path


def answering(socket_path: Path) -> bool:
    """A plain connect first: httpx leaks the socket of a failed unix-socket connect."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(socket_path))
        except OSError:
            return False
    return True


def api(socket_path: Path, path: str) -> httpx.Response:
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://sentinel", timeout=10) as client:
        return client.get(path)


def shutdown(socket_path: Path) -> None:
    transport = httpx.HTTPTransport(uds=str(socket_path))
    with httpx.Client(transport=transport, base_url="http://sentinel", timeout=10) as client:
        client.post("/api/v1/shutdown")


def exited(socket_path: Path, names: tuple[str, ...]) -> bool:
    """Whether every named process has EXITED (polled: sentinel's events go to its log here)."""
    if not answering(socket_path):
        return False
    states = {p["name"]: p["state"] for p in api(socket_path, "/api/v1/programs").json()}
    return all(states.get(name) == "EXITED" for name in names)


def check_lines(output: bytes, count: int, prefix: bool = True) -> None:
    """Every line whole, as its program wrote it (prefixed), none lost, none mixed."""
    lines = output.decode().splitlines()
    pattern = re.compile(
        r"^(?:(alpha|beta) \| )?(alpha|beta)-(\d+) (x*)$"
        if prefix
        else r"^()(alpha|beta)-(\d+) (x*)$"
    )
    seen: dict[str, list[int]] = {"alpha": [], "beta": []}
    for line in lines:
        match = pattern.match(line)
        assert match, f"a line mixed or cut: {line!r}"
        program, name, n, xs = match.groups()
        if prefix:
            assert program == name
        assert len(xs) == int(n) % 97
        seen[name].append(int(n))
    assert seen == {"alpha": list(range(count)), "beta": list(range(count))}


def test_inherited_lines_into_a_pipe_stay_whole(tmp_path: Path) -> None:
    """Two programs writing lines in pieces into sentinel's stdout, a pipe: each line whole
    and prefixed with its process, every line there, in each program's order."""
    count = 400
    config = write_config(tmp_path, talkers(count))
    proc = subprocess.Popen(
        [*SENTINEL, "run", "-c", str(config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_until(lambda: exited(tmp_path / "sentinel.sock", ("alpha", "beta")), timeout=30)
        shutdown(tmp_path / "sentinel.sock")
        output, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    check_lines(output, count)


def test_inherited_lines_into_a_file(tmp_path: Path) -> None:
    """The same into a file (`sentinel run > out.log`), without prefixes."""
    count = 200
    config = write_config(tmp_path, talkers(count, prefix=False))
    out = tmp_path / "out.log"
    with out.open("wb") as stdout:
        proc = subprocess.Popen(
            [*SENTINEL, "run", "-c", str(config)],
            stdout=stdout, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    wait_until(lambda: exited(tmp_path / "sentinel.sock", ("alpha", "beta")), timeout=30)
    shutdown(tmp_path / "sentinel.sock")
    assert proc.wait(30) == 0
    check_lines(out.read_bytes(), count, prefix=False)


def test_inherited_lines_onto_a_terminal(tmp_path: Path) -> None:
    """And onto a terminal (`docker run -t`): /dev/stdout as the path works too (it used to
    kill sentinel at start-up with "Illegal seek")."""
    config = write_config(
        tmp_path,
        f"""
        [programs.hello]
        command = {json.dumps(child("print('hello from the program')"))}
        start_seconds = 0
        autorestart = "never"
        stdout = {{ path = "/dev/stdout", prefix = true }}
        """,
    )
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [*SENTINEL, "run", "-c", str(config)],
        stdout=follower, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(follower)
    seen = b""
    try:
        deadline = time.monotonic() + 30
        while b"hello from the program" not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1)
            if ready:
                seen += os.read(leader, 4096)
        assert b"hello | hello from the program\r\n" in seen, seen
    finally:
        shutdown(tmp_path / "sentinel.sock")
        assert proc.wait(30) == 0
        os.close(leader)


def test_two_streams_in_one_file_is_a_config_error(tmp_path: Path) -> None:
    """Two programs given one log file would overwrite each other: an error naming both."""
    config = write_config(
        tmp_path,
        """
        [programs.a]
        command = "true"
        stdout = { path = "shared.log" }
        [programs.b]
        command = "true"
        stderr = { path = "shared.log" }
        """,
    )
    result = subprocess.run(
        [*SENTINEL, "check-config", "-c", str(config)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 1
    assert (
        f"{config}: programs.b.stderr.path: {tmp_path / 'shared.log'} is also "
        "programs.a.stdout.path's file" in result.stderr
    )


RAN = 'autorestart = "never"\nstart_seconds = "100ms"'  # up, then ends for good
NEVER_UP = 'start_seconds = "1s"\nstart_retries = 1\nbackoff = { initial = "10ms" }'


@pytest.mark.parametrize(
    ("code", "settings", "status", "state"),
    [
        ("raise SystemExit(3)", RAN, 3, "EXITED"),
        ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", RAN, 137, "EXITED"),
        ("raise SystemExit(4)", NEVER_UP, 4, "FATAL"),
    ],
)
def test_an_essential_program_ends_sentinel_with_its_status(
    tmp_path: Path, code: str, settings: str, status: int, state: str
) -> None:
    """When an essential program ends for good (EXITED) or gives up (FATAL), sentinel stops the
    rest and exits with its status (128 + N for signal N), as a container should end."""
    helper_pid = tmp_path / "helper.pid"
    config = write_config(
        tmp_path,
        f"""
        [programs.main]
        command = {json.dumps(child(f"import time; time.sleep(0.3); {code}"))}
        essential = true
        {settings}
        [programs.helper]
        command = {json.dumps(child(f"import os, time; open({str(helper_pid)!r}, 'w').write(str(os.getpid())); time.sleep(3600)"))}
        start_seconds = 0
        """,
    )
    proc = subprocess.Popen(
        [*SENTINEL, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )  # fmt: skip
    try:
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == status, stderr
    assert f"main is essential and {state}" in stderr
    assert not pid_alive(int(helper_pid.read_text()))  # the rest was stopped first
    assert "helper: RUNNING -> STOPPING" in stderr


def test_healthz_is_503_while_an_essential_program_is_down(tmp_path: Path) -> None:
    """A container's health check: 503, naming the program, while it is not RUNNING."""
    gate = tmp_path / "gate"
    config = write_config(
        tmp_path,
        f"""
        [programs.main]
        command = {json.dumps(child(f"import os, sys, time; os.path.exists({str(gate)!r}) or sys.exit(1); time.sleep(3600)"))}
        essential = true
        start_seconds = "200ms"
        start_retries = 100
        backoff = {{ initial = "100ms", max = "100ms" }}
        """,
    )
    proc = subprocess.Popen(
        [*SENTINEL, "run", "-c", str(config)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    sock = tmp_path / "sentinel.sock"
    try:

        def health() -> httpx.Response | None:
            return api(sock, "/healthz") if answering(sock) else None

        down = wait_until(lambda: (r := health()) is not None and r, what="an answer")
        assert down.status_code == 503 and down.json()["essential_down"] == ["main"]
        gate.touch()
        wait_until(lambda: (r := health()) is not None and r.status_code == 200, timeout=20)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0


def _entrypoint(config: Path) -> list[str]:
    """The shipped Dockerfile's ENTRYPOINT, with this checkout's sentinel and `config`."""
    lines = DOCKERFILE.read_text().splitlines()
    line = next(text for text in lines if text.startswith("ENTRYPOINT"))
    argv: list[str] = json.loads(line.removeprefix("ENTRYPOINT"))
    assert argv[:3] == ["sentinel", "run", "-c"]
    return [*SENTINEL, "run", "-c", str(config)]


@pytest.fixture
def as_pid_1() -> Iterator[str]:
    if os.geteuid() != 0:
        pytest.skip("a PID namespace needs root")
    yield require_binary("unshare")


def children_of(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(p) for p in (task / "children").read_text().split()]
    return found


def zombies_under(pid: int) -> list[int]:
    zombies = []
    for p in children_of(pid):
        try:
            stat = Path(f"/proc/{p}/stat").read_text()
        except FileNotFoundError:
            continue  # reaped between the listing and the read: not a zombie
        if stat.rsplit(")", 1)[1].split()[0] == "Z":
            zombies.append(p)
    return zombies


def test_the_shipped_container_runs_as_pid_1(tmp_path: Path, as_pid_1: str) -> None:
    """The Dockerfile's entry point with its config, as PID 1 of a PID namespace: programs'
    lines on its output, prefixed; orphans reaped (no zombie stays); SIGTERM stops every
    program and sentinel exits 0."""
    text = CONTAINER_CONFIG.read_text().replace("/run/sentinel", str(tmp_path))
    orphans = json.dumps(
        child("""
            import os, time
            while True:  # a double fork: each grandchild is orphaned, then exits
                if os.fork() == 0:
                    if os.fork() == 0:
                        time.sleep(0.05)
                    os._exit(0)
                os.wait()
                time.sleep(0.1)
        """)
    )
    text += f'\n[programs.orphans]\ncommand = {orphans}\nstdout = {{ path = "none" }}\n'
    config = tmp_path / "sentinel.toml"
    config.write_text(text)
    proc = subprocess.Popen(
        [as_pid_1, "--pid", "--fork", "--mount-proc", *_entrypoint(config)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        (inner,) = wait_until(lambda: children_of(proc.pid), what="sentinel inside")
        status = Path(f"/proc/{inner}/status").read_text()
        (nspid,) = [line.split()[-1] for line in status.splitlines() if line.startswith("NSpid:")]
        assert nspid == "1", "sentinel is not PID 1 in its namespace"
        sock = tmp_path / "sentinel.sock"
        wait_until(lambda: answering(sock) and api(sock, "/healthz").status_code == 200, timeout=30)
        assert proc.stdout is not None
        line = proc.stdout.readline()
        while b"ticker | tick" not in line:
            line = proc.stdout.readline()
        # Orphans come and go every 0.1 s: none stays a zombie under PID 1.
        for _ in range(20):
            wait_until(lambda: not zombies_under(inner), timeout=2, what="no zombie")
        os.kill(inner, signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    shutil.rmtree(tmp_path / "logs", ignore_errors=True)
