"""Serving the API with uvicorn on the daemon's own event loop (the only uvicorn importer).

One uvicorn server per listener (the unix socket, and [control].http with TLS if configured),
each with its own connection cap. uvicorn's `Server.serve()` would install its own
SIGINT/SIGTERM handlers and wake up ten times a second for housekeeping; the daemon owns the
signals and should cost nothing when idle. So this drives each server's startup and shutdown
directly, with no tick and no Date header (the one thing the tick maintains).

The HTTP protocol is uvicorn's h11 one with three additions, made through uvicorn's `http`
option and asyncio's protocol callbacks:
- a connection over the cap is closed as soon as it is accepted, so a flood of idle
  connections cannot take the daemon's file descriptors;
- a request head must arrive within HEADER_TIMEOUT of the connection (or of the previous
  response), so an idle or trickling client cannot hold one for ever;
- on the unix socket, the peer's pid, uid and gid (SO_PEERCRED) go into the request's scope
  state, for the guard to know who is calling.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass

import h11
import uvicorn
from starlette.types import ASGIApp
from uvicorn.protocols.http.h11_impl import H11Protocol

from sentinel.api.security import PEER
from sentinel.limits import CONNECTIONS_PER_LISTENER

HEADER_TIMEOUT = 10.0  # seconds for a request head to arrive
KEEP_ALIVE = 5.0  # seconds an idle keep-alive connection stays open
MAX_HEAD = 16 * 1024  # bytes of request line and headers


class _GuardedH11(H11Protocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > CONNECTIONS_PER_LISTENER:
            transport.abort()
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family == socket.AF_UNIX:
            raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            self.app_state = {**self.app_state, PEER: struct.unpack("3i", raw)}
        self._head_timer: asyncio.TimerHandle | None = None
        self._await_head()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._await_head()

    def connection_lost(self, exc: Exception | None) -> None:
        timer = getattr(self, "_head_timer", None)
        if timer is not None:
            timer.cancel()
        super().connection_lost(exc)

    def _await_head(self) -> None:
        if self.transport.is_closing():
            return
        if self._head_timer is not None:
            self._head_timer.cancel()
        self._head_timer = self.loop.call_later(HEADER_TIMEOUT, self._head_overdue)

    def _head_overdue(self) -> None:
        self._head_timer = None
        if self.conn.their_state is h11.IDLE:  # no whole request head since the timer began
            self.transport.close()


@dataclass(frozen=True)
class Listener:
    """A bound, listening socket and what serves it."""

    sock: socket.socket
    app: ASGIApp
    tls_cert: str | None = None
    tls_key: str | None = None


class ControlServer:
    def __init__(self, listeners: Sequence[Listener]) -> None:
        self._servers: list[tuple[uvicorn.Server, socket.socket]] = []
        for listener in listeners:
            config = uvicorn.Config(
                listener.app,
                http=_GuardedH11,
                log_config=None,
                access_log=False,
                lifespan="off",
                date_header=False,
                server_header=False,
                timeout_keep_alive=int(KEEP_ALIVE),
                timeout_graceful_shutdown=2,
                h11_max_incomplete_event_size=MAX_HEAD,
                ssl_certfile=listener.tls_cert,
                ssl_keyfile=listener.tls_key,
            )
            config.load()
            server = uvicorn.Server(config)
            server.lifespan = config.lifespan_class(config)
            self._servers.append((server, listener.sock))

    async def start(self) -> None:
        """Accept connections on the sockets, which are bound and listening already."""
        for server, sock in self._servers:
            await server.startup(sockets=[sock])

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (2 s at most), close the sockets."""
        await asyncio.gather(*(server.shutdown(sockets=[sock]) for server, sock in self._servers))
