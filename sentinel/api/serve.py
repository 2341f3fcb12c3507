"""Serving the API with uvicorn on the daemon's own event loop (the only uvicorn importer).

uvicorn's `Server.serve()` would install its own SIGINT/SIGTERM handlers and wake up ten times
a second for housekeeping; the daemon owns the signals and should cost nothing when idle. So
this drives the server's startup and shutdown directly, with no tick and no Date header (the
one thing the tick maintains).
"""

from __future__ import annotations

import socket

import uvicorn
from starlette.types import ASGIApp


class ControlServer:
    def __init__(self, app: ASGIApp, sockets: list[socket.socket]) -> None:
        self._sockets = sockets
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            date_header=False,
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        config.load()
        self._server = uvicorn.Server(config)
        self._server.lifespan = config.lifespan_class(config)

    async def start(self) -> None:
        """Accept connections on the sockets, which are bound and listening already."""
        await self._server.startup(sockets=self._sockets)

    async def stop(self) -> None:
        """Stop accepting, let requests in flight finish (2 s at most), close the sockets."""
        await self._server.shutdown(sockets=self._sockets)
