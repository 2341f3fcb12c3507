"""The web UI's routes: the pages, logging in and out, the live stream, and the actions.

Served on [control].http only (browsers do not reach the unix socket), behind the same guard
as the API, with the same roles: a viewer sees, an operator also starts, stops, restarts and
signals, an admin also reloads and reads logs (the process page's log is the API's log
stream, which asks for admin). Everything that changes something is a POST of a form with
the session's CSRF token, which the guard checks; a GET changes nothing.
"""

from __future__ import annotations

import asyncio
import re
import signal
import urllib.parse
from collections.abc import AsyncIterator, Awaitable
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
    StreamingResponse,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinel.api.control import BadRequest, Control
from sentinel.api.security import (
    GUARD,
    PRINCIPAL,
    Guard,
    TooManyLogins,
    audit,
    principal_of,
    refusal,
)
from sentinel.api.ui.history import Recorder
from sentinel.api.ui.live import KEEP_ALIVE, Hub
from sentinel.api.ui.sessions import Sessions
from sentinel.auth import Credentials, Principal, Role
from sentinel.errors import ConfigError, NoSuchProcess
from sentinel.model import parse_signal

if TYPE_CHECKING:
    from sentinel.api.ui.pages import Pages

ACTIONS = ("start", "stop", "restart", "signal")
# The signals the page offers; the action takes any that `sentinel signal` takes.
SIGNALS = ("HUP", "INT", "TERM", "USR1", "USR2", "QUIT", "KILL", "STOP", "CONT")


class WebUI:
    """The UI of one listener: its sessions, its history of the processes, its live hub."""

    def __init__(self, control: Control, credentials: Credentials) -> None:
        self._control = control
        self._has_users = bool(credentials)
        self.sessions = Sessions(credentials)
        self.history = Recorder()
        control.bus.subscribe(self.history.on_event)
        self.hub = Hub(control, self.history)
        self._pages: Pages | None = None

    def routes(self) -> list[BaseRoute]:
        static = StaticFiles(packages=[("sentinel.api.ui", "static")])
        return [
            Route("/", self.main_page),
            Route("/ui/process/{name:str}", self.process_page),
            Route("/ui/login", self.login_page, methods=["GET"]),
            Route("/ui/login", self.login, methods=["POST"]),
            Route("/ui/logout", self.logout, methods=["POST"]),
            Route("/ui/stream", self.stream),
            Route("/ui/programs/{name:str}/{action:str}", self.act, methods=["POST"]),
            Route("/ui/groups/{group:str}/{action:str}", self.act, methods=["POST"]),
            Route("/ui/all/{action:str}", self.act, methods=["POST"]),
            Route("/ui/reload", self.reload, methods=["POST"]),
            Mount("/ui/static", app=_StaticHeaders(static)),
        ]

    # --- pages ------------------------------------------------------------------------------

    async def main_page(self, request: Request) -> Response:
        return self._page(request, "main.html", title="sentinel")

    async def process_page(self, request: Request) -> Response:
        name = request.path_params["name"]
        if not self._exists(name):
            return self._html(request, "error.html", 404, title="No such process", name=name)
        return self._page(request, "process.html", title=name, process=name)

    async def login_page(self, request: Request) -> Response:
        return self._html(request, "login.html", 200, title="Log in", error="", name="")

    def _exists(self, name: str) -> bool:
        try:
            return self._control.processes.select([name]) == [name]
        except NoSuchProcess:
            return False

    def _page(self, request: Request, template: str, **context: object) -> Response:
        principal = principal_of(request)
        if principal.role < Role.VIEWER:
            if not principal.authenticated:
                target = "/ui/login?" + urllib.parse.urlencode({"next": request.url.path})
                return RedirectResponse(target, status_code=303)
            return self._html(request, "error.html", 403, title="Not allowed", name="")
        return self._html(request, template, 200, **context)

    def _html(self, request: Request, template: str, status: int, **context: object) -> Response:
        """A page, with a session for its forms (a new one when the browser has none)."""
        if self._pages is None:
            from sentinel.api.ui.pages import Pages  # noqa: PLC0415 (jinja2, when first asked)

            self._pages = Pages()
        from sentinel.api.ui.pages import HEADERS  # noqa: PLC0415

        principal = principal_of(request)
        session = self.sessions.read(request.scope)
        new = session is None
        if session is None:
            session = self.sessions.create()
        body = self._pages.render(
            template,
            user=principal.name,
            role=principal.role.label,
            logged_in=bool(session.user) and session.user == principal.name,
            has_users=self._has_users,
            can_operate=principal.role >= Role.OPERATOR,
            can_admin=principal.role >= Role.ADMIN,
            csrf=self.sessions.token(session),
            signals=SIGNALS,
            next=_local(request.query_params.get("next", "/")),
            **context,
        )
        response = HTMLResponse(body, status_code=status, headers=HEADERS)
        if new:
            self.sessions.send(response, request.scope, session)
        return response

    # --- logging in and out -----------------------------------------------------------------

    async def login(self, request: Request) -> Response:
        form = await _form(request)
        name, password = form.get("name", ""), form.get("password", "")
        target = _local(form.get("next", "/"))
        guard = request.scope[GUARD]
        assert isinstance(guard, Guard)
        try:
            principal = await guard.login(name, password) if name and password else None
        except TooManyLogins:
            return self._html(request, "login.html", 429, title="Log in", name=name,
                              error="Too many logins at once: try again in a moment.")  # fmt: skip
        if principal is None:
            guard.record(request.scope, "login", name, "refused: wrong user name or password")
            return self._html(request, "login.html", 401, title="Log in", name=name,
                              error="Wrong user name or password.")  # fmt: skip
        old = self.sessions.read(request.scope)
        if old is not None:
            self.sessions.end(old)
        response = RedirectResponse(target, status_code=303)
        self.sessions.start(response, request.scope, principal.name)
        _audit_as(request, principal, "login", principal.name, "ok")
        return response

    async def logout(self, request: Request) -> Response:
        session = self.sessions.read(request.scope)
        response = RedirectResponse("/ui/login", status_code=303)
        if session is not None:
            self.sessions.end(session)
            audit(request, "logout", session.user, "ok")
        self.sessions.start(response, request.scope)
        return response

    # --- live -------------------------------------------------------------------------------

    async def stream(self, request: Request) -> Response:
        """Server-sent events: `rows` (the table's changes) and, with ?process=NAME, `history`."""
        denied = refusal(request, Role.VIEWER)
        if denied is not None:  # no basic-auth prompt from a script's request: the page logs in
            if "www-authenticate" in denied.headers:
                del denied.headers["www-authenticate"]
            return denied
        process = request.query_params.get("process")
        if process is not None and not self._exists(process):
            raise NoSuchProcess(f"no such process: {process}")
        session = self.sessions.read(request.scope)
        by_session = session is not None and bool(session.user)
        closing = self._control.closing

        async def messages() -> AsyncIterator[str]:
            # Joined here, not before: a client gone before the stream starts leaves nothing.
            subscription = self.hub.join(process)
            try:
                yield "retry: 2000\n\n"
                while not closing.is_set():
                    if by_session and self.sessions.read(request.scope) is None:
                        return  # the session expired or was logged out: the page asks again
                    message = await _next_or_closing(subscription.next(KEEP_ALIVE), closing)
                    yield message if message is not None else ": keep-alive\n\n"
            finally:
                subscription.close()

        return StreamingResponse(
            messages(),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    # --- actions ----------------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        """start, stop, restart or signal a process, a group or all; answers at once (the page
        shows the states change as they do)."""
        denied = refusal(request, Role.OPERATOR)
        if denied is not None:
            return denied
        params = request.path_params
        action = params["action"]
        if action not in ACTIONS:
            raise NoSuchProcess(f"no such action: {action}")
        if "name" in params:
            if not self._exists(params["name"]):
                raise NoSuchProcess(f"no such process: {params['name']}")
            selection = params["name"]
        elif "group" in params:
            selection = f"{params['group']}:*"
        else:
            selection = "all"
        form = await _form(request)
        processes = self._control.processes
        names = processes.select([selection])
        sig = _signal(form.get("signal", "")) if action == "signal" else None
        if sig is not None:
            results = processes.signal(names, sig)
        elif action == "start":
            results = await processes.start(names, wait=False)
        elif action == "stop":
            results = await processes.stop(names, wait=False)
        else:
            results = await processes.restart(names, wait=False)
        failed = sorted(name for name, ok in results.items() if not ok)
        what = action if sig is None else f"signal {sig.name}"
        audit(request, what, selection, f"failed: {', '.join(failed)}" if failed else "ok")
        message = f"{what}: {selection}" + (
            f" (not running: {', '.join(failed)})" if failed else ""
        )
        return _answer(request, form, {"ok": not failed, "message": message, "results": results})

    async def reload(self, request: Request) -> Response:
        denied = refusal(request, Role.ADMIN)
        if denied is not None:
            return denied
        form = await _form(request)
        try:
            result = await self._control.reload()
        except ConfigError as exc:
            audit(request, "reload", "config", "rejected")
            return _answer(request, form, {"ok": False, "error": str(exc)}, 400)
        audit(request, "reload", "config", "ok")
        changes = [f"{k} {', '.join(v)}" for k, v in (("added", result.added),
                   ("removed", result.removed), ("changed", result.changed)) if v]  # fmt: skip
        message = "reloaded: " + ("; ".join(changes) if changes else "nothing changed")
        return _answer(request, form, {"ok": True, "message": message})


async def _next_or_closing(getting: Awaitable[str | None], closing: asyncio.Event) -> str | None:
    """The next message, or None when the daemon starts shutting down."""
    get = asyncio.ensure_future(getting)
    close = asyncio.ensure_future(closing.wait())
    try:
        await asyncio.wait([get, close], return_when=asyncio.FIRST_COMPLETED)
    finally:
        close.cancel()
        if not get.done():
            get.cancel()
    return get.result() if get.done() and not get.cancelled() else None


async def _form(request: Request) -> dict[str, str]:
    """A URL-encoded form's fields (the first value of each); the guard has read the body,
    checked its size and its CSRF token."""
    body = await request.body()
    try:
        pairs = urllib.parse.parse_qsl(body.decode("ascii"), max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("expected a URL-encoded form") from None
    form: dict[str, str] = {}
    for key, value in pairs:
        form.setdefault(key, value)
    return form


def _signal(name: str) -> signal.Signals:
    try:
        return parse_signal(int(name) if name.isascii() and name.isdigit() else name)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def _answer(
    request: Request, form: dict[str, str], data: dict[str, object], status: int = 200
) -> Response:
    """JSON for the page's scripts; a redirect back for a form posted without them."""
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse(data, status_code=status)
    return RedirectResponse(_local(form.get("next", "/")), status_code=303)


def _local(target: str) -> str:
    """`target` if it is a path on this site, else "/": a login never sends anyone away
    (browsers drop tabs and line breaks from a URL, and read a backslash as a slash)."""
    return target if _LOCAL_PATH.fullmatch(target) else "/"


_LOCAL_PATH = re.compile(r"/(?![/\\])[!-~]*")  # printable ASCII, not "//" nor "/\\"


def _audit_as(
    request: Request, principal: Principal, action: str, target: str, result: str
) -> None:
    guard = request.scope[GUARD]
    assert isinstance(guard, Guard)
    guard.record({**request.scope, PRINCIPAL: principal}, action, target, result)


class _StaticHeaders:
    """Static files, sent with nosniff, and revalidated on each load (an upgrade of sentinel
    never leaves a page with an old script)."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-content-type-options", b"nosniff"),
                    (b"cache-control", b"no-cache"),
                ]
            await send(message)

        await self._app(scope, receive, with_headers)
