"""Process states (Supervisor's names and codes, so its clients work), health, restart reasons."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class ProcessState(enum.IntEnum):
    STOPPED = 0  # not running; stopped by a user, or never started
    STARTING = 10  # spawned, not yet up for start_seconds
    RUNNING = 20  # up for at least start_seconds
    BACKOFF = 30  # waiting out the backoff delay before the next start
    STOPPING = 40  # stop signal sent, waiting for the exit (SIGKILL after stop_timeout)
    EXITED = 100  # exited from RUNNING and autorestart said not to restart
    FATAL = 200  # could not be started after start_retries retries
    UNKNOWN = 1000  # never set by sentinel; kept because Supervisor's clients know it


RUNNING_STATES = frozenset({ProcessState.STARTING, ProcessState.RUNNING, ProcessState.STOPPING})
STOPPED_STATES = frozenset({ProcessState.STOPPED, ProcessState.EXITED, ProcessState.FATAL})


class Health(enum.StrEnum):
    UNKNOWN = "unknown"  # no liveness probe, or no verdict yet
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


class RestartReason(enum.StrEnum):
    EXITED = "exited"  # the process exited (or failed to start) and autorestart said restart
    LIVENESS = "liveness"  # the liveness probe failed failure_threshold times in a row
    MANUAL = "manual"  # a user asked for a restart
    RELOAD = "reload"  # the config changed on reload
    WATCHDOG = "watchdog"  # a program with `watchdog` sent no WATCHDOG=1 within it (sd_notify)


@dataclass(frozen=True)
class ProbeResult:
    """One probe run, as data: a failed probe is a result, not an exception."""

    ok: bool
    latency: float  # seconds, from the start of the check to its verdict
    detail: str  # what a person needs to know: "HTTP 503", "connection refused", plugin output
    warning: bool = False  # passed, but worth reporting (a Nagios WARNING)
