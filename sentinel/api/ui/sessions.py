"""The web UI's sessions: a signed cookie, and the CSRF token that belongs to it.

- The cookie is `NONCE.USER.EXPIRES.MAC`: a random nonce, the user's name (base64url; empty
  before login), the unix time it expires, and an HMAC-SHA256 of the three under a key the
  daemon draws at start and never writes down. Nothing is stored per session but the
  nonces of sessions logged out early; a restart of sentinel (which restarts every program
  anyway) ends every session.
- `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page makes the browser
  send it), `Path=/`, `Secure` over HTTPS. It lasts SESSION_LIFETIME from login (a shift),
  and use does not extend it.
- Named after the listener's port (`sentinel_9001`): browsers do not tell ports apart in
  cookies, and two sentinels on one host would overwrite each other's.
- Every visitor gets one, with no user until they log in: the login form's CSRF token (and
  that of an anonymous operator's forms) needs a session to belong to. Logging in and out
  start a new session, so a cookie planted before login is worth nothing after it.
- The CSRF token is an HMAC of the nonce under the same key: pages carry it, forms send it,
  the guard (security.py) checks it. Only a page that can read sentinel's pages can have it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Scope

from sentinel.auth import Credentials, Principal

SESSION_LIFETIME = 12 * 3600.0  # seconds from login: a shift


@dataclass(frozen=True)
class Session:
    nonce: str
    user: str  # "" before login
    expires: float  # unix time
    cookie: str  # the signed value the browser holds


class Sessions:
    """Issues and reads the session cookies of one listener (security.SessionStore)."""

    def __init__(
        self,
        credentials: Credentials,
        clock: Callable[[], float] = time.time,
        key: bytes | None = None,
        lifetime: float = SESSION_LIFETIME,
    ) -> None:
        self._credentials = credentials
        self._clock = clock
        self._key = key if key is not None else secrets.token_bytes(32)
        self._lifetime = lifetime
        self._revoked: dict[str, float] = {}  # nonce -> when it would have expired

    # --- reading ----------------------------------------------------------------------------

    def read(self, scope: Scope) -> Session | None:
        """The request's session, if its cookie is valid, unexpired and not logged out."""
        value = Request(scope).cookies.get(cookie_name(scope))
        return self._parse(value) if value else None

    def principal(self, scope: Scope) -> Principal | None:
        session = self.read(scope)
        if session is None or not session.user:
            return None
        return self._credentials.user(session.user)  # its role as configured now

    def token(self, session: Session) -> str:
        """The CSRF token of `session`, for its pages' forms."""
        return _b64(self._mac(b"csrf", session.nonce.encode()))

    def token_ok(self, scope: Scope, token: str) -> bool:
        session = self.read(scope)
        return session is not None and hmac.compare_digest(self.token(session), token)

    # --- writing ----------------------------------------------------------------------------

    def create(self, user: str = "") -> Session:
        """A new session for `user` ("": nobody yet); `send` gives the browser its cookie."""
        nonce, expires = secrets.token_urlsafe(16), int(self._clock() + self._lifetime)
        fields = f"{nonce}.{_b64(user.encode())}.{expires}"
        value = f"{fields}.{_b64(self._mac(b'session', fields.encode()))}"
        return Session(nonce, user, float(expires), value)

    def start(self, response: Response, scope: Scope, user: str = "") -> Session:
        """A new session for `user`, its cookie set on `response`."""
        session = self.create(user)
        self.send(response, scope, session)
        return session

    def send(self, response: Response, scope: Scope, session: Session) -> None:
        response.set_cookie(
            cookie_name(scope),
            session.cookie,
            max_age=int(self._lifetime),
            path="/",
            secure=scope.get("scheme") == "https",
            httponly=True,
            samesite="strict",
        )

    def end(self, session: Session) -> None:
        """Log `session` out: its cookie is refused from now on, even if a copy is replayed."""
        now = self._clock()
        self._revoked = {n: t for n, t in self._revoked.items() if t > now}
        self._revoked[session.nonce] = session.expires

    # --- the cookie -------------------------------------------------------------------------

    def _parse(self, value: str) -> Session | None:
        fields, _, mac = value.rpartition(".")
        try:
            expected = self._mac(b"session", fields.encode("ascii"))
            given = _unb64(mac)
        except (UnicodeEncodeError, ValueError):
            return None
        if not hmac.compare_digest(expected, given):
            return None
        nonce, user, expires = fields.split(".")  # signed by us: three fields
        session = Session(nonce, _unb64(user).decode(), float(expires), value)
        if session.expires <= self._clock() or nonce in self._revoked:
            return None
        return session

    def _mac(self, purpose: bytes, data: bytes) -> bytes:
        return hmac.digest(self._key, purpose + b"\0" + data, hashlib.sha256)


def cookie_name(scope: Scope) -> str:
    server = scope.get("server")
    port = server[1] if server else None
    return f"sentinel_{port}" if port else "sentinel"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except binascii.Error as exc:
        raise ValueError(str(exc)) from None
