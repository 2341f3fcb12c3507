"""File descriptors: raise the soft limit as far as allowed, and refuse a config that cannot fit.

systemd's default soft limit is 1024 (its hard one, 524288), and every supervised process
costs sentinel a few descriptors for as long as it is configured, so a few hundred programs
used to end in EMFILE tracebacks half way through start-up. At start (as supervisord's
`minfds` does) the soft limit is raised to the hard one; then a config that needs more than
that is refused with the numbers and what to raise, before anything starts.
"""

from __future__ import annotations

import resource

from sentinel.errors import ConfigError
from sentinel.model import Config, ProcessSpec

# Per captured stream: the pipe's two ends (the write end is kept for the next spawn) and the
# log file.
FDS_PER_STREAM = 3
# The daemon's own: stdio, the event loop, the signal pipe, sockets, the notifier's and the
# default executor's threads' files, /proc reads in flight, exec probes' pipes.
BASE_FDS = 64
CONNECTIONS_PER_LISTENER = 128  # api.serve's cap: each may hold a descriptor


def raise_soft_limit() -> int:
    """Raise RLIMIT_NOFILE's soft limit to the hard one; the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 20)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def descriptors_of(spec: ProcessSpec) -> int:
    """What one process costs sentinel in file descriptors while it is configured (an
    inherited stream has no log file of its own; an sd_notify socket is one more)."""
    files = (spec.stdout_log is not None) + (spec.stderr_log is not None)
    inherited = (spec.stdout_inherit is not None) + (spec.stderr_inherit is not None)
    return FDS_PER_STREAM * files + (FDS_PER_STREAM - 1) * inherited + spec.settings.notify


def needed(config: Config) -> int:
    listeners = 1 + (config.control.http is not None)
    return (
        BASE_FDS
        + CONNECTIONS_PER_LISTENER * listeners
        + sum(descriptors_of(spec) for spec in config.processes)
    )


def check_fits(config: Config, limit: int | None = None) -> None:
    """ConfigError if the config needs more descriptors than the (soft) limit allows."""
    if limit is None:
        limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    need = needed(config)
    if limit != resource.RLIM_INFINITY and need > limit:
        advice = max(need * 2, 4096)
        raise ConfigError.single(
            str(config.path),
            "programs",
            f"{len(config.processes)} processes need about {need} file descriptors and the "
            f"limit is {limit}: raise it (systemd: LimitNOFILE={advice}; a shell: "
            f"ulimit -n {advice}; a container: --ulimit nofile={advice})",
        )
