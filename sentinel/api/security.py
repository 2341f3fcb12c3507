"""The guard in front of every listener: who is calling, may a browser have sent this, and how
much may it cost. An ASGI middleware, one per listener.

In order, for each HTTP request:
1. Host (TCP listeners): the Host header must name the listener (its address, `localhost`,
   or `[control] allowed_hosts`), else 421: a DNS-rebinding page cannot reach the API
   through a name of its own.
2. Cross-site (methods that change things): a foreign `Origin`, `Sec-Fetch-Site: cross-site`
   or `same-site`, or a body that is neither JSON nor XML (a form, text/plain: what a page
   can send without asking) is refused with 403. On a listener that serves the web UI, a
   URL-encoded form is let through to step 5, which wants its CSRF token.
3. Size: a body over MAX_BODY is refused with 413 before a byte of it is read (or, sent
   without a length, once it passes MAX_BODY); a body that trickles for longer than
   BODY_TIMEOUT is cut off with 408. The guard reads the whole body of a request that may
   change something before the endpoint runs.
4. Who: HTTP basic credentials of a configured user; else the user a signed session cookie
   of the web UI names; else, on the unix socket, the peer's uid (root and sentinel's own
   user are admin); else anonymous, with `anonymous_role`. A wrong password is 401.
   Checking a password costs scrypt's tens of milliseconds, so it runs off the event loop,
   one at a time, and a flood of attempts is refused with 429.
5. CSRF (methods that change things, on a listener with sessions): a form, and any call
   made on the strength of a session cookie, must carry the session's token (the form's
   `csrf_token` field or an `X-CSRF-Token` header), else 403. A cookie is sent by the
   browser on its own; the token only by a page that could read it, one of sentinel's.
The principal is put in the scope; each route (and each XML-RPC method) says which role it
needs (`requires`). Refused calls that would have changed something are audited.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sentinel.audit import AuditLog
from sentinel.auth import ANONYMOUS, Credentials, Principal, Role

MAX_BODY = 1 << 20  # the biggest XML-RPC multicall a person sends is a few KiB
BODY_TIMEOUT = 10.0  # seconds for a whole request body to arrive
MAX_PENDING_LOGINS = 8  # password checks waiting at once; more is a flood: 429
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
BODY_TYPES = frozenset({"application/json", "text/xml", "application/xml"})
FORM = "application/x-www-form-urlencoded"  # accepted with a session's CSRF token
CSRF_FIELD = "csrf_token"  # the form field that carries it
CSRF_HEADER = b"x-csrf-token"  # or this header
PRINCIPAL = "sentinel.principal"  # scope key: the caller, a Principal
GUARD = "sentinel.guard"  # scope key: the Guard that let the request in (it audits)
PEER = "sentinel.peer"  # scope["state"] key, set by serve.py on the unix socket: (pid, uid, gid)
REALM = 'Basic realm="sentinel", charset="UTF-8"'


@dataclass(frozen=True)
class ListenerPolicy:
    """What one listener accepts."""

    unix: bool
    hosts: frozenset[str] | None  # names the Host header may give (TCP listeners); None: any
    origins: frozenset[str]  # origins allowed to change things: "http://127.0.0.1:9001"
    anonymous: Role
    own_uid: int  # sentinel's own uid: a peer with it (or root) is admin on the unix socket


class SessionStore(Protocol):
    """Browser sessions (the web UI's): the user a signed cookie names, and the CSRF token
    that belongs to the cookie."""

    def principal(self, scope: Scope) -> Principal | None:
        """The user a valid session cookie in the request names; None without one."""

    def token_ok(self, scope: Scope, token: str) -> bool:
        """Whether `token` is the CSRF token of the request's session cookie."""


def principal_of(request: Request) -> Principal:
    principal = request.scope.get(PRINCIPAL, ANONYMOUS)
    assert isinstance(principal, Principal)
    return principal


def source_of(scope: Scope) -> str:
    """Where a request came from, for the audit log."""
    peer = scope.get("state", {}).get(PEER)
    if peer is not None:
        pid, uid, _ = peer
        return f"unix socket, uid {uid}, pid {pid}"
    client = scope.get("client")
    return f"{client[0]}:{client[1]}" if client else "unknown"


class Guard:
    def __init__(
        self,
        app: ASGIApp,
        policy: ListenerPolicy,
        credentials: Credentials,
        audit: AuditLog | None,
        sessions: SessionStore | None = None,
    ) -> None:
        self._app, self._policy, self._credentials, self._audit = app, policy, credentials, audit
        self._sessions = sessions
        self._checking = asyncio.Semaphore(1)
        self._pending = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = _headers(scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            status, message = refusal
            await self.refuse(scope, status, message)(scope, receive, send)
            return
        scope[GUARD] = self
        try:
            principal, by_session = await self._principal(scope, headers)
        except TooManyLogins:
            await self.refuse(scope, 429, "too many password checks at once")(scope, receive, send)
            return
        if principal is None:
            await self.refuse(scope, 401, "wrong user name or password")(scope, receive, send)
            return
        scope[PRINCIPAL] = principal
        limited = _LimitedBody(receive)
        if scope["method"] not in SAFE_METHODS:
            # The whole body, read here: a refusal raised while an endpoint reads it would
            # meet Starlette's error middleware first, which answers 500.
            try:
                body, receive = await limited.buffered()
            except _BodyRefused as exc:
                await self.refuse(scope, exc.status, exc.message)(scope, receive, send)
                return
            if not self._csrf_ok(scope, headers, body, by_session):
                message = (
                    "cross-site request refused (no CSRF token of this session; reload the page)"
                )
                await self.refuse(scope, 403, message)(scope, receive, send)
                return
        else:
            receive = limited
        await self._call(scope, receive, send)

    async def login(self, name: str, password: str) -> Principal | None:
        """The user, if `password` is theirs (a login form's check: the same as for basic
        credentials, off the loop, one at a time); TooManyLogins in a flood."""
        return self._credentials.remembered(name, password) or await self._check(name, password)

    def refuse(self, scope: Scope, status: int, message: str) -> Response:
        """The answer to a refused request, audited when it would have changed something."""
        if scope["method"] not in SAFE_METHODS:
            result = message if message.startswith("refused") else f"refused: {message}"
            self.record(scope, f"{scope['method']} {scope['path']}", "", result)
        headers = {"WWW-Authenticate": REALM} if status == 401 else None
        return JSONResponse({"ok": False, "error": message}, status_code=status, headers=headers)

    def record(self, scope: Scope, action: str, target: str, result: str) -> None:
        """An audit entry for a call in `scope` (by whoever the guard found calling)."""
        if self._audit is None:
            return
        principal = scope.get(PRINCIPAL, ANONYMOUS)
        self._audit.record(
            who=principal.name,
            role=principal.role.label,
            source=source_of(scope),
            action=action,
            target=target,
            result=result,
        )

    # --- the checks -------------------------------------------------------------------------

    def _refusal(self, scope: Scope, headers: dict[bytes, list[bytes]]) -> tuple[int, str] | None:
        policy = self._policy
        if not policy.unix and policy.hosts is not None:
            hosts = headers.get(b"host", [])
            if len(hosts) != 1 or _host_name(hosts[0]) not in policy.hosts:
                return 421, "this listener does not answer to that Host (see allowed_hosts)"
        if scope["method"] not in SAFE_METHODS:
            origins = headers.get(b"origin", [])
            if origins and (len(origins) > 1 or origins[0].decode("latin-1") not in policy.origins):
                return 403, "cross-site request refused (Origin)"
            site = headers.get(b"sec-fetch-site", [b"same-origin"])[-1]
            if site not in (b"same-origin", b"none"):
                return 403, "cross-site request refused (Sec-Fetch-Site)"
            if _has_body(headers) and not self._body_type_ok(_media_type(headers)):
                return 403, "refused: a request that changes something must be JSON or XML-RPC"
        lengths = headers.get(b"content-length", [])
        if lengths and (not lengths[0].isdigit() or int(lengths[0]) > MAX_BODY):
            return 413, f"request body over {MAX_BODY // 1024} KiB"
        return None

    def _body_type_ok(self, media_type: str) -> bool:
        return media_type in BODY_TYPES or (media_type == FORM and self._sessions is not None)

    async def _principal(
        self, scope: Scope, headers: dict[bytes, list[bytes]]
    ) -> tuple[Principal | None, bool]:
        """The caller (None when credentials were given and are wrong), and whether a session
        cookie is what vouches for them."""
        authorization = headers.get(b"authorization")
        if authorization is not None:
            given = _basic(authorization[-1])
            if given is None or not self._credentials:
                return None, False
            return self._credentials.remembered(*given) or await self._check(*given), False
        session = self._sessions.principal(scope) if self._sessions is not None else None
        if session is not None:
            return session, True
        peer = scope.get("state", {}).get(PEER)
        if peer is not None and peer[1] in (0, self._policy.own_uid):
            return Principal(f"uid {peer[1]}", Role.ADMIN, authenticated=True), False
        return Principal("anonymous", self._policy.anonymous, authenticated=False), False

    def _csrf_ok(
        self, scope: Scope, headers: dict[bytes, list[bytes]], body: bytes, by_session: bool
    ) -> bool:
        """A request that changes something carries its session's token when it is a form, or
        when a session cookie is what authenticates it."""
        if self._sessions is None:
            return True
        form = _media_type(headers) == FORM
        if not (form or by_session):
            return True
        given = headers.get(CSRF_HEADER)
        token = given[-1].decode("latin-1") if given else _form_field(body, CSRF_FIELD)
        return token is not None and self._sessions.token_ok(scope, token)

    async def _check(self, name: str, password: str) -> Principal | None:
        if self._pending >= MAX_PENDING_LOGINS:
            raise TooManyLogins
        self._pending += 1
        try:
            async with self._checking:
                return await asyncio.to_thread(self._credentials.check, name, password)
        finally:
            self._pending -= 1

    async def _call(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self._app(scope, receive, tracked)
        except _BodyRefused as exc:
            if started:
                raise
            await self.refuse(scope, exc.status, exc.message)(scope, receive, send)


class TooManyLogins(Exception):
    """More password checks are waiting than MAX_PENDING_LOGINS: a flood (429)."""


class _BodyRefused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


class _LimitedBody:
    """`receive` with the body capped at MAX_BODY bytes and BODY_TIMEOUT seconds in all. Once
    the body is in, later calls (a streaming response waiting for the client to leave) pass
    through untimed."""

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._size = 0
        self._deadline: float | None = asyncio.get_running_loop().time() + BODY_TIMEOUT

    async def __call__(self) -> Message:
        if self._deadline is None:
            return await self._receive()
        try:
            async with asyncio.timeout_at(self._deadline):
                message = await self._receive()
        except TimeoutError:
            raise _BodyRefused(408, f"request body took over {BODY_TIMEOUT:g}s") from None
        if message["type"] == "http.request":
            self._size += len(message.get("body", b""))
            if self._size > MAX_BODY:
                raise _BodyRefused(413, f"request body over {MAX_BODY // 1024} KiB")
            if not message.get("more_body", False):
                self._deadline = None
        return message

    async def buffered(self) -> tuple[bytes, Receive]:
        """Read the whole body now (_BodyRefused past the limits): the body, and a `receive`
        that gives it in one message, then passes through."""
        chunks: list[bytes] = []
        while True:
            message = await self()
            if message["type"] != "http.request":  # the client left
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                message = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                break
        pending = [message]

        async def replay() -> Message:
            return pending.pop() if pending else await self()

        return b"".join(chunks), replay


def _headers(scope: Scope) -> dict[bytes, list[bytes]]:
    found: dict[bytes, list[bytes]] = {}
    for name, value in scope["headers"]:
        found.setdefault(name.lower(), []).append(value)
    return found


def _host_name(value: bytes) -> str:
    """The name in a Host header, without its port: "[::1]:9001" -> "[::1]"."""
    text = value.decode("latin-1").strip().lower()
    if text.startswith("["):
        return text[: text.find("]") + 1]
    return text.rsplit(":", 1)[0] if text.count(":") == 1 else text


def _has_body(headers: dict[bytes, list[bytes]]) -> bool:
    lengths = headers.get(b"content-length", [b"0"])
    return b"transfer-encoding" in headers or lengths[-1] not in (b"0", b"")


def _media_type(headers: dict[bytes, list[bytes]]) -> str:
    value = headers.get(b"content-type", [b""])[-1].decode("latin-1")
    return value.split(";", 1)[0].strip().lower()


def _form_field(body: bytes, name: str) -> str | None:
    """The first value of field `name` in a URL-encoded form; None if absent or malformed."""
    try:
        fields = urllib.parse.parse_qsl(
            body.decode("ascii"), max_num_fields=64, strict_parsing=True, errors="strict"
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return next((value for key, value in fields if key == name), None)


def _basic(value: bytes) -> tuple[str, str] | None:
    scheme, _, token = value.partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(token.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    name, colon, password = decoded.partition(":")
    return (name, password) if colon else None


def audit(request: Request, action: str, target: str, result: str) -> None:
    """Record a call that changed something (or tried to), by whoever made `request`."""
    guard = request.scope.get(GUARD)
    if isinstance(guard, Guard):
        guard.record(request.scope, action, target, result)


def refusal(request: Request, role: Role) -> Response | None:
    """None if the caller may do what needs `role`; else the refusal (401: log in; 403)."""
    principal = principal_of(request)
    if principal.role >= role:
        return None
    guard = request.scope[GUARD]
    assert isinstance(guard, Guard)
    if not principal.authenticated:
        return guard.refuse(request.scope, 401, f"log in: this needs the {role.label} role")
    return guard.refuse(
        request.scope, 403, f"{principal.name} is a {principal.role.label}: this needs {role.label}"
    )


Endpoint = Callable[[Request], Awaitable[Response]]


def requires(role: Role, endpoint: Endpoint) -> Endpoint:
    """`endpoint`, answered only for callers with at least `role`."""

    async def guarded(request: Request) -> Response:
        return refusal(request, role) or await endpoint(request)

    return guarded
