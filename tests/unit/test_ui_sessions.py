"""The web UI's session cookies and CSRF tokens, with a fake clock."""

from __future__ import annotations

from http.cookies import SimpleCookie

from starlette.responses import Response
from starlette.types import Scope

from sentinel.api.ui.sessions import SESSION_LIFETIME, Sessions, cookie_name
from sentinel.auth import Credentials, Role, hash_password

HASH = hash_password("pw")


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def sessions(
    clock: Clock, users: tuple[tuple[str, Role], ...] = (("ops", Role.OPERATOR),)
) -> Sessions:
    return Sessions(Credentials((name, HASH, role) for name, role in users), clock=clock)


def scope(cookie: str = "", port: int = 9001, scheme: str = "http") -> Scope:
    headers = [(b"cookie", cookie.encode())] if cookie else []
    return {"type": "http", "headers": headers, "server": ("127.0.0.1", port), "scheme": scheme}


def issued(store: Sessions, user: str = "", **kwargs: object) -> tuple[str, SimpleCookie]:
    """A new session's cookie, as the browser would send it back, and the Set-Cookie."""
    response = Response()
    store.start(response, scope(**kwargs), user)  # type: ignore[arg-type]
    jar: SimpleCookie = SimpleCookie()
    jar.load(response.headers["set-cookie"])
    (morsel,) = jar.values()
    return f"{morsel.key}={morsel.value}", jar


def test_a_login_session_names_its_user_with_the_role_configured_now() -> None:
    """The cookie carries the name; the role comes from the users in force."""
    clock = Clock()
    store = sessions(clock)
    cookie, _ = issued(store, "ops")
    principal = store.principal(scope(cookie))
    assert principal is not None and principal.name == "ops" and principal.role is Role.OPERATOR
    assert principal.authenticated


def test_the_cookie_is_httponly_strict_and_secure_over_https() -> None:
    """No script reads it, no other site makes the browser send it, HTTPS keeps it."""
    store = sessions(Clock())
    _, jar = issued(store, "ops")
    (morsel,) = jar.values()
    assert morsel["httponly"] and morsel["samesite"].lower() == "strict" and morsel["path"] == "/"
    assert morsel["max-age"] == str(int(SESSION_LIFETIME)) and not morsel["secure"]
    _, jar = issued(store, "ops", scheme="https")
    assert next(iter(jar.values()))["secure"]


def test_a_session_ends_when_it_expires_or_logs_out() -> None:
    """Expired or logged out, a cookie names nobody, even replayed."""
    clock = Clock()
    store = sessions(clock)
    cookie, _ = issued(store, "ops")
    session = store.read(scope(cookie))
    assert session is not None
    clock.now += SESSION_LIFETIME - 1
    assert store.principal(scope(cookie)) is not None
    clock.now += 1
    assert store.principal(scope(cookie)) is None
    clock.now -= 1
    store.end(session)
    assert store.read(scope(cookie)) is None


def test_a_forged_or_foreign_cookie_names_nobody() -> None:
    """A changed user, another daemon's key, or garbage: no session."""
    clock = Clock()
    store = sessions(clock, (("ops", Role.OPERATOR), ("root", Role.ADMIN)))
    cookie, _ = issued(store, "ops")
    name, value = cookie.split("=", 1)
    nonce, user, expires, mac = value.split(".")
    forged = f"{name}={nonce}.cm9vdA.{expires}.{mac}"  # "root"
    assert store.principal(scope(forged)) is None
    other = sessions(clock)
    assert other.principal(scope(cookie)) is None
    for garbage in ("x", "a.b.c.d", "...", "é.é.é.é", f"{nonce}.{user}.{expires}"):
        assert store.read(scope(f"{name}={garbage}")) is None


def test_a_removed_user_has_no_session() -> None:
    """A cookie of a user no longer configured names nobody."""
    clock = Clock()
    key = b"k" * 32
    before = Sessions(Credentials([("ops", HASH, Role.ADMIN)]), clock=clock, key=key)
    cookie, _ = issued(before, "ops")
    after = Sessions(Credentials([("dev", HASH, Role.ADMIN)]), clock=clock, key=key)
    assert after.read(scope(cookie)) is not None and after.principal(scope(cookie)) is None


def test_the_csrf_token_belongs_to_one_session() -> None:
    """The token of a session checks against its cookie only; a new session needs its own."""
    clock = Clock()
    store = sessions(clock)
    first, _ = issued(store)
    second, _ = issued(store, "ops")
    session = store.read(scope(first))
    assert session is not None and session.user == ""
    token = store.token(session)
    assert store.token_ok(scope(first), token)
    assert not store.token_ok(scope(second), token)
    assert not store.token_ok(scope(), token)
    assert not store.token_ok(scope(first), token[:-1])


def test_each_listener_port_has_its_own_cookie() -> None:
    """Cookies do not tell ports apart: the name does, for two sentinels on one host."""
    assert cookie_name(scope(port=9001)) == "sentinel_9001"
    assert cookie_name(scope(port=9002)) == "sentinel_9002"
    store = sessions(Clock())
    cookie, _ = issued(store, "ops", port=9001)
    assert store.principal(scope(cookie, port=9002)) is None
