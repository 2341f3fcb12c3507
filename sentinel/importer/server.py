"""[supervisord], [unix_http_server] and [inet_http_server] -> [sentinel] and [control]; and
the sections that have no equivalent, each with what to use instead.

supervisord's one user (per server) may do everything: it becomes a [control] user with the
admin role. A clear-text password is hashed (scrypt, `sentinel.auth.hash_password`) and never
written out; a {SHA} hash is kept, since sentinel checks those, with a warning: unsalted SHA-1
falls to a dictionary in seconds.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

from sentinel.importer.programs import DaemonDefaults
from sentinel.importer.sections import Context, Section
from sentinel.importer.tomlout import Table
from sentinel.importer.values import Template, boolean, expand, key_value_pairs, log_level, octal
from sentinel.model import is_loopback

_SHA = re.compile(r"\{SHA\}[0-9a-fA-F]{40}")
_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@\-]{0,63}")  # sentinel's User.name
_LOGS = 'sentinel logs to stderr (the journal under systemd); log_format = "json" for a shipper'
# [supervisord] keys with no equivalent: (what to do instead, the value that needs nothing)
SUPERVISORD_DROPPED: dict[str, tuple[str, bool | None]] = {
    "logfile": (_LOGS, None),
    "logfile_maxbytes": (_LOGS, None),
    "logfile_backups": (_LOGS, None),
    "pidfile": ("sentinel writes no pidfile: systemd knows its pid", None),
    "nodaemon": ("sentinel runs in the foreground: under systemd, or as a container's PID 1", True),
    "silent": ("sentinel's log goes to stderr", False),
    "minfds": ("set LimitNOFILE= in sentinel's systemd unit: its programs inherit it", None),
    "minprocs": ("set LimitNPROC= in sentinel's systemd unit", None),
    "identifier": ("no equivalent", None),
    "nocleanup": ("sentinel leaves old logs alone when it starts", True),
    "strip_ansi": ("sentinel logs what programs print, escape codes included", False),
}
SUPERVISORD_KEYS = {
    *SUPERVISORD_DROPPED,
    "environment",
    "childlogdir",
    "loglevel",
    "umask",
    "directory",
    "user",
}
MAIN_RPC = "supervisor.rpcinterface:make_main_rpcinterface"
OTHER_SECTIONS = {
    "supervisorctl": "supervisorctl's own settings: sentinel's CLI finds the daemon through "
    "[control]",
    "fcgi-program:": "sentinel opens no sockets for its programs: run the FastCGI server on "
    "a socket of its own, as a program",
    "ctlplugin:": "supervisorctl plugins have no equivalent in sentinel's CLI",
    "rpcinterface:": "sentinel's control API has no plugins: a plugin becomes a client of it",
}


def daemon(ctx: Context, document: Table) -> DaemonDefaults:
    """[supervisord]: its environment for every program, its log directory and level."""
    if "supervisord" not in ctx.conf.parser:
        Section(ctx, "supervisord", {}).warn(
            None, "no [supervisord] section: supervisord would refuse the file"
        )
        return DaemonDefaults()
    section = Section(ctx, "supervisord", {"host_node_name": ctx.node})
    environment = section.template("environment")
    if environment is not None:
        lookup = section.lookup_for("environment")
        try:  # supervisord expands this value twice: once as it reads it, once as environment
            again = [
                expand(p, lookup).parts if isinstance(p, str) else (p,) for p in environment.parts
            ]
            ctx.environment = key_value_pairs(Template(tuple(x for ps in again for x in ps)))
        except ValueError as exc:
            raise section.error("environment", str(exc)) from None
    settings = Table()
    log_dir = section.template("childlogdir")
    if log_dir is not None:
        settings.set("log_dir", log_dir.toml(), "childlogdir: where the AUTO logs go")
    level = section.typed("loglevel", log_level)
    if level is not None:
        settings.set("log_level", level)
    if settings.keys():
        document.set("sentinel", settings)
    user = section.text("user")
    if user is not None:
        section.warn("user", f"run sentinel itself as {user} (User= in its systemd unit)")
    for key in sorted(set(ctx.conf.keys("supervisord")) - SUPERVISORD_KEYS):
        section.warn(key, "not a supervisord key: ignored, as supervisord ignores it")
    for key, (advice, harmless) in SUPERVISORD_DROPPED.items():
        if section.has(key):
            value = section.typed(key, boolean) if harmless is not None else None
            if harmless is None or value != harmless:
                section.warn(key, advice)
    nodaemon = section.typed("nodaemon", boolean)
    if nodaemon:  # supervisord changes directory and umask only when it daemonizes
        return DaemonDefaults()
    return DaemonDefaults(section.template("directory"), section.typed("umask", octal))


def control(ctx: Context, document: Table, hasher: Callable[[str], str]) -> None:
    """[unix_http_server] and [inet_http_server] -> [control]."""
    table = Table()
    users: list[dict[str, str]] = []
    unix = ctx.conf.sections("unix_http_server")
    inet = ctx.conf.sections("inet_http_server")
    for name in unix[1:] + inet[1:]:
        Section(ctx, name, {}).warn(None, "sentinel serves one socket and one http address")
    if unix:
        section = Section(ctx, unix[0], {})
        _unix(section, table)
        mode = table.get("socket_mode") or "0700"  # supervisord's default
        if not _user(section, users, hasher) and int(mode, 8) & 0o077:
            _anonymous(section, "local users who can open the socket")
    if inet:
        section = Section(ctx, inet[0], {})
        asked = _user(section, users, hasher)
        _inet(section, table, with_users=bool(users), asked=asked)
    if users:
        table.set("users", users)
    if table.keys():
        document.set("control", table)


def other_sections(ctx: Context) -> None:
    """Sections sentinel has no use for, each with what to use instead."""
    known = (
        *("supervisord", "program:", "group:", "eventlistener:", "include"),
        *("unix_http_server", "inet_http_server"),
    )
    for name in ctx.conf.sections():
        section = Section(ctx, name, {})
        advice = next((a for p, a in OTHER_SECTIONS.items() if name.startswith(p)), None)
        if name.startswith("rpcinterface:"):
            factory = ctx.conf.raw(name, "supervisor.rpcinterface_factory")
            if factory is not None and factory.strip() == MAIN_RPC:
                continue  # the supervisor.* methods: sentinel's own control API
        if advice is not None:
            section.warn(None, f"not translated: {advice}")
        elif not name.startswith(known):
            section.warn(None, "not a supervisord section: ignored, as supervisord ignores it")


def _unix(section: Section, table: Table) -> None:
    path = section.template("file")
    if path is None:
        raise section.error("file", "supervisord needs the socket's path")
    text = path.toml().strip()
    directory = os.path.dirname((path.literal or "").strip())
    if not text.startswith("/"):
        section.warn("file", "a relative path: sentinel reads it from the config file's directory")
    if directory and _writable_by_others(directory):
        section.warn(
            "file",
            f"{directory} may be written by other users, and sentinel refuses a socket there: "
            "kept sentinel's default (sentinel.sock beside this file); point supervisorctl's "
            "serverurl there",
        )
    else:
        table.set("socket", text)
    mode = section.typed("chmod", octal)
    if mode is not None:
        table.set("socket_mode", f"{mode:04o}")
    owner = section.text("chown")
    if owner is not None:
        user, _, group = owner.partition(":")
        if group:
            table.set("socket_group", group)
        section.warn("chown", f"the socket belongs to sentinel's user, not {user}")


def _inet(section: Section, table: Table, with_users: bool, asked: bool) -> None:
    """The http address; on the network only with users (sentinel refuses it otherwise)."""
    port_text = section.text("port")
    if port_text is None:
        raise section.error("port", "supervisord needs a port")
    host, _, port = port_text.rpartition(":")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise section.error("port", f"expected [HOST:]PORT, got {port_text!r}")
    host = host.lower() if host not in ("", "*") else "0.0.0.0"
    if is_loopback(host.strip("[]")):
        table.set("http", f"{host}:{port}")
        if not asked:
            _anonymous(section, "anyone on this host")
    elif with_users:
        table.set("http", f"{host}:{port}")
        section.warn(
            "port",
            "passwords cross the network in clear: give sentinel tls_cert and tls_key in [control]",
        )
    else:
        table.set("http", f"127.0.0.1:{port}")
        section.warn(
            "port",
            f"supervisord served {host} with no password; sentinel serves the network only to "
            "users with passwords: it listens on 127.0.0.1 until you add [control] users "
            "(`sentinel hash-password`)",
        )


def _anonymous(section: Section, who: str) -> None:
    section.warn(
        None,
        f"without a username, supervisord let {who} control every program; sentinel lets them "
        'see only (anonymous_role = "viewer"): add [control] users, or set anonymous_role',
    )


def _user(section: Section, users: list[dict[str, str]], hasher: Callable[[str], str]) -> bool:
    """Add the section's user to `users`; whether supervisord asked for a password there."""
    name, password = section.text("username"), section.text("password")
    if name is None and password is None:
        return False
    if name is None or password is None:
        raise section.error(None, "supervisord needs both username and password, or neither")
    if not _USER_NAME.fullmatch(name):
        section.warn(
            "username",
            f"{name!r} cannot be a sentinel user name (letters, digits, _ . @ -): left out",
        )
        return True
    if password.startswith("{SHA}"):
        if not _SHA.fullmatch(password):
            section.warn("password", "not a {SHA} hash supervisord can check: user left out")
            return True
        section.warn(
            "password",
            "a {SHA} hash is unsalted SHA-1: replace it with one from `sentinel hash-password`",
        )
        stored = password
    else:
        stored = hasher(password)
    for user in users:
        if user["name"] == name:
            section.warn("username", f"{name} is already a user, from another section: kept that")
            return True
    users.append({"name": name, "password_hash": stored, "role": "admin"})
    return True


def _writable_by_others(directory: str) -> bool:
    """Whether sentinel would refuse a socket in `directory` (api/listeners.py's rule); one
    that does not exist yet, sentinel makes for itself."""
    try:
        info = Path(directory).stat()
    except OSError:
        return False
    return bool(info.st_mode & (stat.S_IWGRP | stat.S_IWOTH))
