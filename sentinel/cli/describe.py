"""What the command line says about processes and events, in words, for people.

Machines get `--json`; these are the readable forms: the status table and the event lines.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sentinel.cli.output import GREEN, RED, YELLOW, Cell, Style, duration, table
from sentinel.snapshot import ProcessSnapshot
from sentinel.states import Health, ProcessState

STATE_COLOURS: dict[ProcessState, str | None] = {
    ProcessState.RUNNING: GREEN,
    ProcessState.STARTING: YELLOW,
    ProcessState.STOPPING: YELLOW,
    ProcessState.BACKOFF: YELLOW,
    ProcessState.EXITED: RED,
    ProcessState.FATAL: RED,
    ProcessState.UNKNOWN: RED,
    ProcessState.STOPPED: None,  # stopped on purpose: nothing to look at
}
HEALTH_COLOURS = {Health.HEALTHY: GREEN, Health.UNHEALTHY: RED}
EVENT_COLOURS = {
    "fatal": RED,
    "waiting": YELLOW,
    "unhealthy": RED,
    "flapping": RED,
    "restart": YELLOW,
    "backoff": YELLOW,
    "recovered": GREEN,
    "healthy": GREEN,
}


def status_table(rows: Sequence[tuple[str | None, ProcessSnapshot]], style: Style) -> list[str]:
    """NAME, STATE, PID, UPTIME, RESTARTS, (HEALTH, READY), DETAIL; HOST first when each row
    has one; HEALTH and READY when a process has probes."""
    hosts = bool(rows) and all(host is not None for host, _ in rows)
    probes = any(p.configured_probes for _, p in rows)
    header = ["NAME", "STATE", "PID", "UPTIME", "RESTARTS"]
    header = (["HOST"] if hosts else []) + header + (["HEALTH", "READY"] if probes else [])
    lines = []
    for host, p in rows:
        cells: list[Cell | str] = [host or ""] if hosts else []
        cells += [
            p.name,
            Cell(p.state.name, STATE_COLOURS.get(p.state)),
            "-" if p.pid is None else str(p.pid),
            duration(p.uptime_seconds) if p.pid is not None else "-",
            str(p.restarts),
        ]
        if probes:
            cells += _probe_cells(p)
        cells.append(detail(p))
        lines.append(cells)
    return table([*header, "DETAIL"], lines, style)


def _probe_cells(p: ProcessSnapshot) -> list[Cell | str]:
    if not p.configured_probes:
        return ["-", "-"]
    ready = Cell("yes", GREEN) if p.ready else Cell("no", YELLOW)
    return [Cell(p.health.value, HEALTH_COLOURS.get(p.health)), ready]


def detail(p: ProcessSnapshot) -> str:
    """Why a process is where it is (how its last run ended, why it stopped), flapping, the
    backoff left; running, what its probes saw (failures, and passes with a warning)."""
    parts = []
    if p.flapping:
        parts.append("flapping")
    if p.state not in (ProcessState.RUNNING, ProcessState.STARTING):
        parts.append(p.detail)  # running, it tells how the run before ended: see `events`
    if p.state is ProcessState.BACKOFF:
        parts.append(f"next start in {p.backoff_remaining_seconds:.3g}s")
    if p.state is ProcessState.RUNNING:  # probes run only then; out of it, the detail says
        parts.append(p.failing_probes)  # why it left (`liveness failed 3x: ...`)
    if p.state in (ProcessState.RUNNING, ProcessState.STARTING, ProcessState.STOPPING):
        parts.append(p.notify_phase)  # what the program says of itself, over sd_notify
        parts.append(p.notify_status)
    return "; ".join(part for part in parts if part)


def outcome(
    verb: str,
    ok: bool,
    waited: bool,
    process: ProcessSnapshot,
    roll: Mapping[str, Any] | None = None,
) -> str:
    """What a start, stop or restart (rolling: `roll` says how its program's went) did to
    one process."""
    if not waited:
        return f"{verb} requested"
    if roll is not None and roll.get("stopped_at") == process.name:
        return f"ERROR (the rolling restart stopped here: {roll.get('detail', '')})"
    if roll is not None and process.name in roll.get("left", ()):
        return f"not restarted (the rolling restart stopped at {roll.get('stopped_at')})"
    if ok:
        return {"start": "started", "stop": "stopped", "restart": "restarted"}[verb]
    return f"ERROR ({process.state.name}: {process.detail or 'no detail'})"


def local_time(timestamp: float) -> str:
    """A unix time as the operator's wall clock reads it, to the millisecond."""
    seconds = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
    return f"{seconds}.{int(timestamp * 1000) % 1000:03d}"


def event_line(
    event: Mapping[str, Any],
    host: str | None,
    style: Style,
    clock: Callable[[float], str] = local_time,
) -> str:
    """One event as a line: local time, (host,) process, event, what happened."""
    kind = str(event.get("event", "?"))
    when = clock(float(event.get("timestamp", 0.0)))
    process = style.line(str(event.get("process", "-")))
    head = [when] + ([host] if host is not None else [])
    text = style.line(event_text(event))
    painted = style.paint(kind, EVENT_COLOURS.get(kind)) + " " * (14 - len(kind))
    return f"{'  '.join(head)}  {process.ljust(16)} {painted} {text}".rstrip(" ")


def event_text(e: Mapping[str, Any]) -> str:
    """What an event says, in words."""
    kind = e.get("event")
    if kind == "state_changed":
        pid = f" (pid {e['pid']})" if e.get("pid") else ""
        reason = f": {e['reason']}" if e.get("reason") else ""
        return f"{e.get('old')} -> {e.get('new')}{pid}{reason}"
    if kind == "restart":
        detail = f": {e['detail']}" if e.get("detail") else ""
        return f"{e.get('reason')}, restart #{e.get('restarts')}{detail}"
    if kind == "backoff":
        return f"attempt {e.get('attempt')}, next start in {float(e.get('delay', 0)):.3g}s"
    if kind == "flapping":
        stopped = "; stopped (FATAL)" if e.get("stopped") else ""
        return f"{e.get('restarts')} restarts in {float(e.get('window', 0)):g}s{stopped}"
    if kind == "probe_result":
        verdict = ("warning" if e.get("warning") else "ok") if e.get("ok") else "failed"
        latency = float(e.get("latency", 0)) * 1000
        return f"{e.get('probe')} {verdict} in {latency:.0f}ms: {e.get('detail', '')}"
    if kind == "unhealthy":
        return f"{e.get('probe')} failed {e.get('failures')}x: {e.get('detail', '')}"
    if kind == "notification":
        return f"{e.get('result')} {e.get('target') or ''}: {e.get('title', '')}"
    if kind == "config_reloaded":
        return "; ".join(reload_lines(e)) if e.get("ok") else f"rejected: {e.get('error', '')}"
    if kind in ("fatal", "recovered", "healthy", "warning"):
        return str(e.get("detail", ""))
    if kind in ("waiting",):
        return str(e.get("detail", "") or "no longer waiting")
    if kind == "readiness":
        return f"{'ready' if e.get('ready') else 'not ready'}: {e.get('detail', '')}"
    if kind == "rolling":
        return f"{e.get('program')} {e.get('phase')} ({e.get('done')}/{e.get('total')}): " + str(
            e.get("detail", "")
        )
    if kind == "notify":
        said = [
            k.upper() + "=1" for k in ("ready", "reloading", "stopping", "watchdog") if e.get(k)
        ]
        said += ["WATCHDOG=trigger"] if e.get("watchdog_trigger") else []
        said += [f"MAINPID={e['mainpid']}"] if e.get("mainpid") is not None else []
        said += [f"STATUS={e['status']}"] if e.get("status") is not None else []
        return f"from pid {e.get('sender')}: " + " ".join(said)
    skip = {"event", "timestamp", "process", "group"}
    return " ".join(f"{k}={v}" for k, v in e.items() if k not in skip)


def reload_lines(result: Mapping[str, Any]) -> list[str]:
    """What a reload changed: `added: a, b`, `removed: -`, `changed: c`."""
    return [f"{key}: {', '.join(result.get(key) or []) or '-'}" for key in RELOAD_KEYS]


RELOAD_KEYS = ("added", "removed", "changed")
