"""The HTTP API (Starlette): status, commands, logs, the event stream, reload and shutdown.

Built by `create_app(control)`; the daemon serves it with uvicorn on its own event loop.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from sentinel import __version__
from sentinel.bus import EventBus
from sentinel.errors import ConfigError, NoSuchProcess
from sentinel.events import ConfigReloaded, Event
from sentinel.metrics import CONTENT_TYPE, SentinelCollector
from sentinel.model import parse_signal
from sentinel.snapshot import ProcessSnapshot

TAIL_BYTES = 1600  # what `tail` shows by default, as supervisorctl does


class LogReader(Protocol):
    """A process's captured output (logs.LogCapture)."""

    @property
    def written(self) -> int: ...

    def read(self, offset: int, length: int) -> tuple[bytes, int]: ...

    async def wait_written(self, after: int) -> int: ...


class Processes(Protocol):
    """The supervised processes, by name (supervisor.Supervisor)."""

    def select(self, names: Iterable[str]) -> list[str]: ...

    def snapshots(self, names: Iterable[str] = ...) -> list[ProcessSnapshot]: ...

    def log(self, name: str, stream: str) -> LogReader | None: ...

    async def start(self, names: Iterable[str], wait: bool = ...) -> dict[str, bool]: ...

    async def stop(self, names: Iterable[str], wait: bool = ...) -> dict[str, bool]: ...

    async def restart(self, names: Iterable[str], wait: bool = ...) -> dict[str, bool]: ...

    def signal(self, names: Iterable[str], sig: signal.Signals) -> dict[str, bool]: ...


class Control(Protocol):
    """What the API needs from the daemon."""

    @property
    def processes(self) -> Processes: ...

    bus: EventBus
    closing: asyncio.Event  # set when the daemon shuts down: ends the streams
    metrics: SentinelCollector
    http_address: str | None  # where [control].http listens, as bound

    @property
    def recent(self) -> Sequence[Event]:
        """The last events, oldest first."""

    async def reload(self) -> ConfigReloaded: ...

    def request_shutdown(self) -> None: ...


class _Endpoints:
    def __init__(self, control: Control) -> None:
        self.control = control
        self.processes = control.processes

    async def metrics(self, _: Request) -> Response:
        # What the loop owns is copied on the loop; the /proc walk of every process tree and
        # the formatting happen off it.
        metrics = self.control.metrics
        body = await asyncio.to_thread(metrics.render, metrics.sample())
        return Response(body, media_type=CONTENT_TYPE)

    async def healthz(self, _: Request) -> Response:
        return JSONResponse(
            {"status": "ok", "version": __version__, "http": self.control.http_address}
        )

    async def programs(self, _: Request) -> Response:
        return JSONResponse([p.to_dict() for p in self.processes.snapshots()])

    async def program(self, request: Request) -> Response:
        (snapshot,) = self.processes.snapshots([request.path_params["name"]])
        return JSONResponse(snapshot.to_dict())

    async def command(self, request: Request) -> Response:
        params = request.path_params
        if "name" in params:
            selection = params["name"]
        elif "group" in params:
            selection = f"{params['group']}:*"
        else:
            selection = "all"
        action = params["action"]
        if action not in _ACTIONS:
            return _error(404, f"no such command: {action} (one of {', '.join(_ACTIONS)})")
        names = self.processes.select([selection])
        wait = request.query_params.get("wait", "true").lower() not in ("false", "0", "no")
        if action == "signal":
            results = self.processes.signal(names, await _requested_signal(request))
        elif action == "start":
            results = await self.processes.start(names, wait)
        elif action == "stop":
            results = await self.processes.stop(names, wait)
        else:
            results = await self.processes.restart(names, wait)
        return JSONResponse(
            {
                "ok": all(results.values()),
                "results": results,
                "processes": [p.to_dict() for p in self.processes.snapshots(names)],
            }
        )

    def _log_of(self, request: Request) -> LogReader | None:
        stream = request.query_params.get("stream", "stdout")
        return self.processes.log(request.path_params["name"], stream)

    async def read_log(self, request: Request) -> Response:
        capture = self._log_of(request)
        if capture is None:
            return _error(404, 'this process\'s output is not captured (path = "none")')
        offset = int(request.query_params.get("offset", -TAIL_BYTES))
        length = int(request.query_params.get("length", 0))
        data, end = capture.read(offset, length)
        return Response(
            data, media_type="application/octet-stream", headers={"X-Log-Offset": str(end)}
        )

    async def follow_log(self, request: Request) -> Response:
        capture = self._log_of(request)
        if capture is None:
            return _error(404, 'this process\'s output is not captured (path = "none")')

        async def chunks() -> AsyncIterator[str]:
            data, offset = capture.read(-TAIL_BYTES, 0)
            written = capture.written
            yield _sse({"data": data.decode(errors="replace")})
            while not self.control.closing.is_set():
                waiting = asyncio.ensure_future(capture.wait_written(written))
                closing = asyncio.ensure_future(self.control.closing.wait())
                try:
                    await asyncio.wait([waiting, closing], return_when=asyncio.FIRST_COMPLETED)
                finally:  # also when the client goes away: no task is left behind
                    closing.cancel()
                    if not waiting.done():
                        waiting.cancel()
                if not waiting.done():
                    return
                if waiting.exception() is not None:  # CaptureClosed: removed, or shutting down
                    return
                written = waiting.result()
                data, new_offset = capture.read(offset, 0)
                if new_offset < offset:  # rotated: the current file starts over
                    data, new_offset = capture.read(0, 0)
                offset = new_offset
                if data:
                    yield _sse({"data": data.decode(errors="replace")})

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def events(self, request: Request) -> Response:
        """SSE: the last `history` events, then (unless follow=false) every new one."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10000)
        history = int(request.query_params.get("history", 0))
        follow = request.query_params.get("follow", "true").lower() not in ("false", "0", "no")

        def enqueue(event: Event) -> None:
            if not queue.full():  # a reader that cannot keep up loses events, not the daemon
                queue.put_nowait(event)

        async def stream() -> AsyncIterator[str]:
            # Subscribe and snapshot the history in one step: no event is missed or repeated.
            unsubscribe = self.control.bus.subscribe(enqueue)
            past = list(self.control.recent)[-history:] if history > 0 else []
            try:
                yield ": connected\n\n"
                for event in past:
                    yield _sse(event.to_dict(), event.kind)
                while follow and not self.control.closing.is_set():
                    getting = asyncio.ensure_future(queue.get())
                    closing = asyncio.ensure_future(self.control.closing.wait())
                    await asyncio.wait([getting, closing], return_when=asyncio.FIRST_COMPLETED)
                    closing.cancel()
                    if not getting.done():
                        getting.cancel()
                        return
                    event = getting.result()
                    yield _sse(event.to_dict(), event.kind)
            finally:
                unsubscribe()

        return StreamingResponse(stream(), media_type="text/event-stream")

    async def reload(self, _: Request) -> Response:
        try:
            result = await self.control.reload()
        except ConfigError as exc:
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        return JSONResponse(result.to_dict())

    async def shutdown(self, _: Request) -> Response:
        self.control.request_shutdown()
        return JSONResponse({"ok": True}, status_code=202)


def create_app(control: Control) -> Starlette:
    e = _Endpoints(control)
    commands = "{action:str}"
    routes = [
        Route("/healthz", e.healthz),
        Route("/metrics", e.metrics),
        Route("/api/v1/programs", e.programs),
        Route("/api/v1/programs/{name:str}", e.program),
        Route("/api/v1/programs/{name:str}/log", e.read_log),
        Route("/api/v1/programs/{name:str}/log/follow", e.follow_log),
        Route("/api/v1/programs/{name:str}/" + commands, e.command, methods=["POST"]),
        Route("/api/v1/groups/{group:str}/" + commands, e.command, methods=["POST"]),
        Route("/api/v1/all/" + commands, e.command, methods=["POST"]),
        Route("/api/v1/events", e.events),
        Route("/api/v1/reload", e.reload, methods=["POST"]),
        Route("/api/v1/shutdown", e.shutdown, methods=["POST"]),
    ]
    handlers = {
        NoSuchProcess: lambda _, exc: _error(404, str(exc)),
        _BadRequest: lambda _, exc: _error(400, str(exc)),
    }
    return Starlette(routes=routes, exception_handlers=handlers)


class _BadRequest(Exception):
    pass


_ACTIONS = ("start", "stop", "restart", "signal")


async def _requested_signal(request: Request) -> signal.Signals:
    name = request.query_params.get("signal")
    if name is None and await request.body():
        name = (await request.json()).get("signal")
    if not name:
        raise _BadRequest('name the signal: ?signal=HUP or {"signal": "HUP"}')
    try:
        return parse_signal(name.upper() if not name.isdigit() else int(name))
    except ValueError as exc:
        raise _BadRequest(str(exc)) from None


def _error(status: int, message: str) -> Response:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def _sse(data: object, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"
