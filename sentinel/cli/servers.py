"""Where the daemons are, for client commands.

In order, the first that names any:
1. the command line: `-s/--server` (repeatable) and `--hosts FILE`, together;
2. `$SENTINEL_SERVERS` (comma-separated);
3. `$SENTINEL_SERVER`;
4. the `[control]` socket of the config file (`-c`, `./sentinel.toml`,
   `/etc/sentinel/sentinel.toml`), read alone: see `config.control_socket`.

A server is a unix socket path (`unix://` in front is allowed), an `http(s)://` URL, or a bare
`HOST:PORT`, which means `http://HOST:PORT`. Answers are labelled with their host (a HOST
column, a `host` key) when there is more than one server, or when the servers came as a list
(`--hosts`, `$SENTINEL_SERVERS`), so that a script reading a fleet's output keeps its shape when
the list shrinks to one.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sentinel.errors import ControlError

_HOST_PORT = re.compile(r"(?:[A-Za-z0-9][A-Za-z0-9.\-]*|\[[0-9A-Fa-f:.]+\]):\d{1,5}")
_COMMENT = re.compile(r"(?:^|\s)#.*$")


@dataclass(frozen=True)
class Server:
    """One daemon's control API: a unix socket or an http(s) base URL."""

    url: str | None = None  # "http://web1.internal:9001"
    socket: str | None = None  # "/run/sentinel/sentinel.sock"

    @property
    def label(self) -> str:
        """How output names it: the socket path, or the URL's host and port."""
        if self.socket is not None:
            return self.socket
        assert self.url is not None
        parts = urlsplit(self.url)
        return (parts.netloc.rpartition("@")[2] or self.url) + parts.path.rstrip("/")


def parse_server(text: str) -> Server:
    text = text.strip()
    if not text:
        raise ControlError("an empty server: give a socket path or an http URL")
    if text.startswith("unix://"):
        return Server(socket=text.removeprefix("unix://"))
    if text.startswith(("http://", "https://")):
        return Server(url=text)
    if _HOST_PORT.fullmatch(text):
        return Server(url=f"http://{text}")
    if "://" in text:
        raise ControlError(f"{text}: expected a socket path, or an http:// or https:// URL")
    return Server(socket=text)


@dataclass(frozen=True)
class Servers:
    servers: tuple[Server, ...]
    fleet: bool  # label each answer with its host


def read_hosts(path: str) -> list[str]:
    """The servers a hosts file names: one a line; blank lines and `# comments` skipped."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ControlError(f"{path}: cannot read: {exc.strerror}") from None
    names = [_COMMENT.sub("", line).strip() for line in text.splitlines()]
    found = [name for name in names if name]
    if not found:
        raise ControlError(f"{path}: names no server")
    return found


def find_servers(
    given: Sequence[str],
    hosts_file: str | None,
    config: str | None,
    environ: Mapping[str, str],
) -> Servers:
    """The daemons a client command talks to (see the module docstring for the order)."""
    names = list(given)
    listed = hosts_file is not None
    if hosts_file is not None:
        names += read_hosts(hosts_file)
    if not names and environ.get("SENTINEL_SERVERS", "").strip():
        names = [n for n in environ["SENTINEL_SERVERS"].split(",") if n.strip()]
        listed = True
    if not names and environ.get("SENTINEL_SERVER", "").strip():
        names = [environ["SENTINEL_SERVER"]]
    if not names:
        # Imported here: the config's models (pydantic) cost a fifth of a second, which a
        # command given -s need not pay.
        from sentinel.config import control_socket  # noqa: PLC0415

        names = [str(control_socket(_config_path(config), environ))]
    servers = tuple(dict.fromkeys(parse_server(n) for n in names))
    return Servers(servers, fleet=listed or len(servers) > 1)


def _config_path(explicit: str | None) -> Path:
    from sentinel.config import DEFAULT_LOCATIONS  # noqa: PLC0415 (see find_servers)

    if explicit is not None:
        return Path(explicit)
    for candidate in DEFAULT_LOCATIONS:
        if candidate.exists():
            return candidate
    raise ControlError(
        "which daemon? Give -s SOCKET|URL (or --hosts FILE), set SENTINEL_SERVER, or -c CONFIG "
        "(no ./sentinel.toml or /etc/sentinel/sentinel.toml here)"
    )
