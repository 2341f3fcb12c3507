"""Who may do what: roles, password hashes, and checking a password without leaking time.

Roles, each with what the one below may do:
  viewer    status, events, metrics
  operator  + start, stop, restart, signal
  admin     + reload, shutdown, and reading logs (a log can hold anything a program printed)

Passwords are stored as scrypt hashes in PHC form (`$scrypt$ln=14,r=8,p=1$SALT$HASH`), made by
`sentinel hash-password`. Supervisor's `{SHA}` hashes (hex SHA-1 of the password, unsalted)
are accepted so that a migrated config works, with a warning at start-up. A verified
password is remembered for the daemon's life as an HMAC under a key of its own, so a client
that sends credentials with every request (supervisorctl does) pays scrypt's cost once; a
wrong password always pays it, and is never remembered.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

SCRYPT_LN, SCRYPT_R, SCRYPT_P = 14, 8, 1  # 16 MiB and about 50 ms a check: OWASP's floor
_SALT_BYTES, _HASH_BYTES = 16, 32
_PHC = re.compile(r"^\$scrypt\$ln=(\d+),r=(\d+),p=(\d+)\$([A-Za-z0-9+/]+)\$([A-Za-z0-9+/]+)$")
_SHA = re.compile(r"^\{SHA\}([0-9a-fA-F]{40})$")


class Role(enum.IntEnum):
    """What a caller may do; each role may do what the lower ones may."""

    NONE = 0  # nothing but /healthz
    VIEWER = 1  # status, events, metrics
    OPERATOR = 2  # + start, stop, restart, signal
    ADMIN = 3  # + reload, shutdown, logs

    @classmethod
    def named(cls, name: str) -> Role:
        return cls[name.upper()]

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Principal:
    """The caller of one request, as the audit log names it."""

    name: str  # a user name, "uid 1000" for a unix peer, or "anonymous"
    role: Role
    authenticated: bool  # a user who gave a password, or a unix peer known by its uid


ANONYMOUS = Principal("anonymous", Role.NONE, authenticated=False)


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A scrypt hash of `password` in PHC form, for `[control] users`."""
    salt = secrets.token_bytes(_SALT_BYTES) if salt is None else salt
    digest = _scrypt(password, salt, (SCRYPT_LN, SCRYPT_R, SCRYPT_P))
    return f"$scrypt$ln={SCRYPT_LN},r={SCRYPT_R},p={SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(stored: str) -> str:
    """`stored` if it is a hash sentinel can check, else ValueError saying what is expected."""
    if _PHC.match(stored) and _scrypt_fields(stored) is None:
        raise ValueError("scrypt parameters out of range (ln 1-20, r 1-32, p 1-16)")
    if _scrypt_fields(stored) is None and not _SHA.match(stored):
        raise ValueError(
            'expected a hash made by `sentinel hash-password` ("$scrypt$...") or '
            'Supervisor\'s "{SHA}..." form'
        )
    return stored


def is_legacy(stored: str) -> bool:
    """Supervisor's unsalted {SHA} form: accepted, but worth replacing."""
    return bool(_SHA.match(stored))


def verify_password(password: str, stored: str) -> bool:
    """Whether `password` matches the hash `stored`, compared in constant time."""
    fields = _scrypt_fields(stored)
    if fields is not None:
        cost, salt, expected = fields
        return hmac.compare_digest(_scrypt(password, salt, cost, len(expected)), expected)
    sha = _SHA.match(stored)
    if sha is not None:
        digest = hashlib.sha1(password.encode(), usedforsecurity=False).hexdigest()
        return hmac.compare_digest(digest, sha[1].lower())
    return False


def _scrypt_fields(stored: str) -> tuple[tuple[int, int, int], bytes, bytes] | None:
    """(ln, r, p), salt and hash of a PHC scrypt string with sane parameters; else None."""
    match = _PHC.match(stored)
    if match is None:
        return None
    ln, r, p = (int(match[i]) for i in (1, 2, 3))
    if not (1 <= ln <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        return None
    return (ln, r, p), _unb64(match[4]), _unb64(match[5])


class Credentials:
    """The configured users, checked by name and password."""

    def __init__(self, users: Iterable[tuple[str, str, Role]]) -> None:
        self._users = {name: (stored, role) for name, stored, role in users}
        self._key = secrets.token_bytes(32)
        self._verified: set[bytes] = set()  # HMACs of name:password pairs that checked out
        # Checked against when the name is unknown, so that the answer takes as long.
        self._decoy = hash_password(secrets.token_hex(8))

    def __bool__(self) -> bool:
        return bool(self._users)

    def user(self, name: str) -> Principal | None:
        """The configured user `name`, with their role, for a caller already known to be them
        (a signed session of the web UI); None if there is no such user (any more)."""
        known = self._users.get(name)
        return Principal(name, known[1], authenticated=True) if known is not None else None

    def remembered(self, name: str, password: str) -> Principal | None:
        """The user, if this very password was verified before: cheap, for every request."""
        known = self._users.get(name)
        if known is not None and self._tag(name, password) in self._verified:
            return Principal(name, known[1], authenticated=True)
        return None

    def check(self, name: str, password: str) -> Principal | None:
        """The user, if `password` is theirs; None otherwise, after the same work (scrypt:
        tens of milliseconds, so call it off the event loop)."""
        known = self._users.get(name)
        tag = self._tag(name, password)
        if known is not None and tag in self._verified:
            return Principal(name, known[1], authenticated=True)
        if known is None:
            verify_password(password, self._decoy)
            return None
        if not verify_password(password, known[0]):
            return None
        self._verified.add(tag)
        return Principal(name, known[1], authenticated=True)

    def _tag(self, name: str, password: str) -> bytes:
        return hmac.digest(self._key, f"{name}\0{password}".encode(), "sha256")


def _scrypt(
    password: str, salt: bytes, cost: tuple[int, int, int], size: int = _HASH_BYTES
) -> bytes:
    ln, r, p = cost
    n = 1 << ln
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, maxmem=2 * 128 * n * r + (1 << 20), dklen=size
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))
