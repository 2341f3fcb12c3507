"""Opening the control plane's listeners: the unix socket and [control].http, each with the
policy its guard enforces.

The unix socket is created with its final mode (no window at 0666), in a directory that no
other user can write: otherwise another local user could create the path first, block the
start-up and receive the CLI's commands, or swap the socket. A socket left by a sentinel that
died is removed; one that answers belongs to a running sentinel, and start-up stops there.
"""

from __future__ import annotations

import grp
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

from starlette.types import ASGIApp

from sentinel.api.security import ListenerPolicy
from sentinel.api.serve import Listener
from sentinel.auth import Role
from sentinel.errors import ConfigError
from sentinel.model import ControlSection, MetricsSection

AppFactory = Callable[[ListenerPolicy], ASGIApp]


def open_listeners(
    control: ControlSection, socket_path: Path, config_file: str, build: AppFactory
) -> tuple[list[Listener], str | None]:
    """The listeners, bound and listening, and [control].http's address as bound ("HOST:PORT",
    the real port when the config says 0)."""
    anonymous = Role.named(control.anonymous)
    own_uid = os.geteuid()
    unix_policy = ListenerPolicy(True, frozenset(), frozenset(), anonymous, own_uid)
    listeners = [Listener(bind_unix(control, socket_path, config_file), build(unix_policy))]
    address = control.http_host_port
    if address is None:
        return listeners, None
    tcp = socket.create_server(address, backlog=128)
    host, port = tcp.getsockname()[:2]
    tls = control.tls_cert is not None
    names = {_literal(host), "localhost", "127.0.0.1", "[::1]", *control.allowed_hosts}
    if host in ("0.0.0.0", "::"):  # any address of this host: its names too
        names |= {socket.gethostname(), socket.getfqdn()}
    names = {name.lower() for name in names}
    scheme, default_port = ("https", 443) if tls else ("http", 80)
    origins = {f"{scheme}://{name}:{port}" for name in names}
    if port == default_port:
        origins |= {f"{scheme}://{name}" for name in names}
    policy = ListenerPolicy(False, frozenset(names), frozenset(origins), anonymous, own_uid)
    listeners.append(Listener(tcp, build(policy), control.tls_cert, control.tls_key))
    return listeners, f"{_literal(host)}:{port}"


def open_metrics_listener(metrics: MetricsSection, build: AppFactory) -> tuple[Listener, str]:
    """[metrics].listen: /metrics alone, for a central Prometheus. Any Host header is fine
    (Prometheus names its targets as it likes, and nothing here changes anything); with
    users, a scrape needs a password. The address as bound."""
    address = metrics.host_port
    assert address is not None
    sock = socket.create_server(address, backlog=128)
    host, port = sock.getsockname()[:2]
    anonymous = Role.NONE if metrics.users else Role.VIEWER
    policy = ListenerPolicy(False, None, frozenset(), anonymous, os.geteuid())
    return Listener(
        sock, build(policy), metrics.tls_cert, metrics.tls_key
    ), f"{_literal(host)}:{port}"


def bind_unix(control: ControlSection, path: Path, config_file: str) -> socket.socket:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    _check_private(path.parent, config_file)
    _remove_stale_socket(path, config_file)
    gid = _group(control.socket_group, config_file) if control.socket_group else None
    unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o777 & ~control.socket_mode)  # created with its mode: no window
    try:
        unix.bind(str(path))
    finally:
        os.umask(old_umask)
    if gid is not None:
        os.chown(path, -1, gid)
    os.chmod(path, control.socket_mode)
    unix.listen(128)
    return unix


def _check_private(directory: Path, config_file: str) -> None:
    info = directory.lstat()
    owner_ok = info.st_uid in (0, os.geteuid())
    if not stat.S_ISDIR(info.st_mode) or not owner_ok or info.st_mode & 0o022:
        raise ConfigError.single(
            config_file,
            "control.socket",
            f"{directory} may be written by other users (owner uid {info.st_uid}, mode "
            f"{stat.S_IMODE(info.st_mode):04o}): put the socket in a directory that only "
            "sentinel's user (or root) can write, like /run/sentinel",
        )


def _remove_stale_socket(path: Path, config_file: str) -> None:
    if not os.path.lexists(path):
        return
    if not stat.S_ISSOCK(path.lstat().st_mode):
        raise ConfigError.single(
            config_file, "control.socket", f"{path} exists and is not a socket: remove it"
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(str(path))
    except (ConnectionRefusedError, FileNotFoundError):
        path.unlink(missing_ok=True)  # left by a sentinel that died
        return
    finally:
        probe.close()
    raise ConfigError.single(config_file, "control.socket", f"{path}: another sentinel is running")


def _group(name: str, config_file: str) -> int:
    try:
        return grp.getgrgid(int(name)).gr_gid if name.isdigit() else grp.getgrnam(name).gr_gid
    except (KeyError, OverflowError):
        raise ConfigError.single(
            config_file, "control.socket_group", f"expected an existing group, got {name!r}"
        ) from None


def _literal(host: str) -> str:
    return f"[{host}]" if ":" in host else host
