"""The HTTP API (Starlette): status, commands, logs, the event stream, reload and shutdown,
the OpenAPI document that describes them (openapi.py), and Supervisor's XML-RPC on /RPC2
(xmlrpc.py, rpcinterface.py).

Built by `create_app(control, policy, credentials, audit)`, one app per listener, behind the
listener's `Guard` (security.py); the daemon serves it with uvicorn on its own event loop.
Every route says which role it needs; every query parameter is checked (400, never 500);
log reads are bounded (a length cap, read off the loop); calls that change something are
audited.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse as _StarletteJSON
from starlette.responses import Response, StreamingResponse
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp

from sentinel import __version__
from sentinel.api.control import BadRequest, Control, LogReader, RollOutcome
from sentinel.api.params import (
    FOLLOW,
    HISTORY,
    LENGTH,
    MAX_LOG_READ,
    OFFSET,
    ROLLING,
    STREAM,
    TAIL_BYTES,
    WAIT,
)
from sentinel.api.security import Guard, ListenerPolicy, audit, requires
from sentinel.api.ui.routes import WebUI
from sentinel.audit import AuditLog
from sentinel.auth import Credentials, Role
from sentinel.errors import ConfigError, NoSuchProcess
from sentinel.events import Event
from sentinel.metrics import CONTENT_TYPE
from sentinel.model import parse_signal


class JSONResponse(_StarletteJSON):
    """JSON written by orjson: the status of 500 processes is 0.2 ms of encoding instead of
    2 ms with the standard library's encoder (the same text: compact, UTF-8, no NaN)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class _Endpoints:
    def __init__(self, control: Control) -> None:
        self.control = control
        self.processes = control.processes

    async def metrics(self, _: Request) -> Response:
        # What the loop owns is copied on the loop; the /proc walk of every process tree and
        # the formatting happen off it.
        metrics = self.control.metrics
        sample = metrics.sample()
        body = await asyncio.to_thread(lambda: metrics.render(sample) + metrics.render_own())
        return Response(body, media_type=CONTENT_TYPE)

    async def healthz(self, _: Request) -> Response:
        """sentinel's own health: 503 while an essential program is down (a container's
        health check), 200 otherwise."""
        down = self.control.essential_down()
        body = {
            "status": "down" if down else "ok",
            "version": __version__,
            "http": self.control.http_address,
            "essential_down": down,
        }
        return JSONResponse(body, status_code=503 if down else 200)

    async def openapi(self, _: Request) -> Response:
        # Imported when asked for: the document is built from the code at import.
        from sentinel.api.openapi import DOCUMENT  # noqa: PLC0415

        return JSONResponse(DOCUMENT)

    async def programs(self, _: Request) -> Response:
        return JSONResponse([p.to_dict() for p in self.processes.snapshots()])

    async def program(self, request: Request) -> Response:
        (snapshot,) = self.processes.snapshots([self._process(request)])
        return JSONResponse(snapshot.to_dict())

    def _process(self, request: Request) -> str:
        """The process named in the path. A name there is one process: a selection like
        `all` or `GROUP:*` is not one (the group and `all` routes take those)."""
        name: str = request.path_params["name"]
        if self.processes.select([name]) != [name]:
            raise NoSuchProcess(f"no such process: {name}")
        return name

    def command(self, action: str) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            return await self._command(request, action)

        return endpoint

    async def _command(self, request: Request, action: str) -> Response:
        params = request.path_params
        rolling = action == "restart" and ROLLING.read(request)
        if "name" in params and rolling:
            selection = params["name"]  # a process, or a program's processes
        elif "name" in params:
            selection = self._process(request)
        elif "group" in params:
            selection = f"{params['group']}:*"
        else:
            selection = "all"
        wait = WAIT.read(request)
        sig = await _requested_signal(request) if action == "signal" else None
        rolls: list[dict[str, Any]] | None = None
        if rolling:  # its selection may name a program, which select() does not take
            results, outcomes = await self.processes.rolling_restart([selection], wait)
            names = list(results)
            rolls = [_roll_result(o) for o in outcomes]
            return self._answer(request, "rolling restart", selection, names, results, rolls=rolls)
        names = self.processes.select([selection])
        if sig is not None:
            results = self.processes.signal(names, sig)
        elif action == "start":
            results = await self.processes.start(names, wait)
        elif action == "stop":
            results = await self.processes.stop(names, wait)
        else:
            results = await self.processes.restart(names, wait)
        what = action if sig is None else f"signal {sig.name}"
        return self._answer(request, what, selection, names, results)

    def _answer(
        self,
        request: Request,
        what: str,
        selection: str,
        names: list[str],
        results: dict[str, bool],
        *,
        rolls: list[dict[str, Any]] | None = None,
    ) -> Response:
        failed = sorted(name for name, ok in results.items() if not ok)
        audit(request, what, selection, f"failed: {', '.join(failed)}" if failed else "ok")
        answer: dict[str, Any] = {
            "ok": not failed,
            "results": results,
            "processes": [p.to_dict() for p in self.processes.snapshots(names)],
        }
        if rolls is not None:
            answer["rolling"] = rolls
        return JSONResponse(answer)

    def _log_of(self, request: Request) -> LogReader:
        stream = STREAM.read(request)
        capture = self.processes.log(self._process(request), stream)
        if capture is None:
            raise NoSuchProcess(f'the {stream} of this process is not captured (path = "none")')
        return capture

    async def read_log(self, request: Request) -> Response:
        """Like Supervisor's readProcessLog: a negative offset counts from the end; length 0
        reads to the end. At most MAX_LOG_READ bytes: the offset header says where to go on."""
        capture = self._log_of(request)
        offset = OFFSET.read(request)
        length = LENGTH.read(request)
        length = MAX_LOG_READ if length == 0 else min(length, MAX_LOG_READ)
        data, end = await asyncio.to_thread(capture.read, offset, length)
        return Response(
            data, media_type="application/octet-stream", headers={"X-Log-Offset": str(end)}
        )

    async def follow_log(self, request: Request) -> Response:
        capture = self._log_of(request)

        async def chunks() -> AsyncIterator[str]:
            data, offset = await asyncio.to_thread(capture.read, -TAIL_BYTES, 0)
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
                while True:  # in bounded chunks, however much arrived meanwhile
                    data, new_offset = await asyncio.to_thread(capture.read, offset, MAX_LOG_READ)
                    if new_offset < offset:  # rotated: the current file starts over
                        data, new_offset = await asyncio.to_thread(capture.read, 0, MAX_LOG_READ)
                    offset = new_offset
                    if not data:
                        break
                    yield _sse({"data": data.decode(errors="replace")})

        return StreamingResponse(chunks(), media_type="text/event-stream")

    async def events(self, request: Request) -> Response:
        """SSE: the last `history` events, then (unless follow=false) every new one."""
        queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=10000)
        history = HISTORY.read(request)
        follow = FOLLOW.read(request)

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

    async def reload(self, request: Request) -> Response:
        try:
            result = await self.control.reload()
        except ConfigError as exc:
            audit(request, "reload", "config", "rejected")
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        audit(request, "reload", "config", "ok")
        return JSONResponse(result.to_dict())

    async def reexec(self, request: Request) -> Response:
        try:
            await self.control.reexec()
        except ConfigError as exc:
            audit(request, "reexec", "sentinel", "rejected")
            return JSONResponse({"ok": False, "error": str(exc)}, status_code=400)
        audit(request, "reexec", "sentinel", "ok")
        return JSONResponse({"ok": True}, status_code=202)

    async def shutdown(self, request: Request) -> Response:
        audit(request, "shutdown", "sentinel", "ok")
        self.control.request_shutdown()
        return JSONResponse({"ok": True}, status_code=202)


def create_app(
    control: Control,
    policy: ListenerPolicy,
    credentials: Credentials,
    audit_log: AuditLog | None,
) -> ASGIApp:
    """The API for one listener, behind its guard: the JSON routes, Supervisor's XML-RPC on
    /RPC2, where each method checks its own role (xmlrpc.py), and on a TCP listener the web
    UI (ui/), whose sessions the guard reads."""
    handlers: dict[Any, Any] = {
        NoSuchProcess: lambda _, exc: _error(404, str(exc)),
        BadRequest: lambda _, exc: _error(400, str(exc)),
    }
    routes: list[BaseRoute] = [
        *api_routes(control),
        Route("/RPC2", _xmlrpc(control), methods=["POST"]),
    ]
    sessions = None
    if not policy.unix:  # the web UI is for browsers, which reach [control].http only
        ui = WebUI(control, credentials)
        routes += ui.routes()
        sessions = ui.sessions
    app = Starlette(routes=routes, exception_handlers=handlers)
    return Guard(app, policy, credentials, audit_log, sessions)


def create_metrics_app(
    control: Control, policy: ListenerPolicy, credentials: Credentials
) -> ASGIApp:
    """[metrics].listen's app: GET /metrics and nothing else, behind its own guard."""
    e = _Endpoints(control)
    app = Starlette(routes=[Route("/metrics", requires(Role.VIEWER, e.metrics))])
    return Guard(app, policy, credentials, None)


def _xmlrpc(control: Control) -> Callable[[Request], Awaitable[Response]]:
    """The /RPC2 endpoint, built on its first call: the XML-RPC interface and its parsers
    cost the daemon memory and start-up time that a sentinel nobody reaches with
    supervisorctl does not need."""
    built: list[Callable[[Request], Awaitable[Response]]] = []

    async def endpoint(request: Request) -> Response:
        if not built:
            from sentinel.api.rpcinterface import SupervisorNamespace  # noqa: PLC0415
            from sentinel.api.xmlrpc import XmlRpc  # noqa: PLC0415

            built.append(XmlRpc(SupervisorNamespace(control).methods()).endpoint)
        return await built[0](request)

    return endpoint


def api_routes(control: Control) -> list[Route]:
    """The JSON API's routes, each behind the role it needs (openapi.py describes them)."""
    e = _Endpoints(control)
    viewer, operator, admin = Role.VIEWER, Role.OPERATOR, Role.ADMIN
    routes = [
        Route("/healthz", e.healthz),  # for monitors of sentinel itself: no role needed
        Route("/api/v1/openapi.json", requires(viewer, e.openapi)),
        Route("/metrics", requires(viewer, e.metrics)),
        Route("/api/v1/programs", requires(viewer, e.programs)),
        Route("/api/v1/programs/{name:str}", requires(viewer, e.program)),
        Route("/api/v1/programs/{name:str}/log", requires(admin, e.read_log)),
        Route("/api/v1/programs/{name:str}/log/follow", requires(admin, e.follow_log)),
        Route("/api/v1/events", requires(viewer, e.events)),
        Route("/api/v1/reload", requires(admin, e.reload), methods=["POST"]),
        Route("/api/v1/shutdown", requires(admin, e.shutdown), methods=["POST"]),
        Route("/api/v1/reexec", requires(admin, e.reexec), methods=["POST"]),
    ]
    for prefix in ("/api/v1/programs/{name:str}/", "/api/v1/groups/{group:str}/", "/api/v1/all/"):
        routes += [
            Route(prefix + verb, requires(operator, e.command(verb)), methods=["POST"])
            for verb in ACTIONS
        ]
    return routes


ACTIONS = ("start", "stop", "restart", "signal")


async def _requested_signal(request: Request) -> signal.Signals:
    """The signal the query names, else the JSON body. A body is checked even when the query
    names the signal: what a caller got wrong is refused, never ignored."""
    in_body = await _body_signal(request) if await request.body() else None
    in_query = request.query_params.get("signal")
    if in_query is not None:
        return _signal_named(in_query)
    if in_body is None:
        raise BadRequest('name the signal: ?signal=HUP or {"signal": "HUP"}')
    return in_body


async def _body_signal(request: Request) -> signal.Signals:
    try:
        body = await request.json()
    except ValueError:
        body = None
    name = body.get("signal") if isinstance(body, dict) else None
    if not isinstance(name, str):
        raise BadRequest('expected a JSON body like {"signal": "HUP"}')
    return _signal_named(name)


def _signal_named(name: str) -> signal.Signals:
    try:
        return parse_signal(int(name) if name.isascii() and name.isdigit() else name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _roll_result(outcome: RollOutcome) -> dict[str, Any]:
    return {
        "program": outcome.program,
        "restarted": list(outcome.restarted),
        "stopped_at": outcome.stopped_at,
        "left": list(outcome.left),
        "detail": outcome.detail,
    }


def _error(status: int, message: str) -> Response:
    return JSONResponse({"ok": False, "error": message}, status_code=status)


def _sse(data: object, event: str | None = None) -> str:
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"
