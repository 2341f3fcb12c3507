"""Password hashes and their checks."""

from __future__ import annotations

import hashlib

import pytest

from sentinel.auth import (
    Credentials,
    Role,
    check_hash_format,
    hash_password,
    is_legacy,
    verify_password,
)


def test_a_hash_checks_its_password_only() -> None:
    """scrypt in PHC form, salted: the same password twice gives two hashes, both check."""
    first, second = hash_password("correct horse"), hash_password("correct horse")
    assert first.startswith("$scrypt$ln=14,r=8,p=1$") and first != second
    assert verify_password("correct horse", first) and verify_password("correct horse", second)
    assert not verify_password("correct horse ", first)
    assert not verify_password("", first)


def test_supervisors_sha_hashes_work_and_are_legacy() -> None:
    """{SHA} + hex SHA-1, as supervisord's config takes it."""
    stored = "{SHA}" + hashlib.sha1(b"thepassword").hexdigest()
    assert verify_password("thepassword", stored) and not verify_password("other", stored)
    assert is_legacy(stored) and not is_legacy(hash_password("x"))


@pytest.mark.parametrize(
    "stored",
    ["plain", "{SHA}abc", "$scrypt$ln=99,r=8,p=1$AAAA$BBBB", "$argon2id$v=19$m=1,t=1,p=1$a$b"],
)
def test_what_is_not_a_hash_is_refused(stored: str) -> None:
    """A clear-text password, or a hash sentinel cannot check, is a config error."""
    with pytest.raises(ValueError, match=r"expected a hash|out of range"):
        check_hash_format(stored)
    assert not verify_password("plain", stored)


def test_credentials_remember_a_verified_password_only() -> None:
    """A right password is cheap the second time; a wrong one, or an unknown user, never."""
    credentials = Credentials([("ops", hash_password("pw"), Role.OPERATOR)])
    assert credentials.remembered("ops", "pw") is None
    principal = credentials.check("ops", "pw")
    assert principal is not None and (principal.name, principal.role) == ("ops", Role.OPERATOR)
    assert credentials.remembered("ops", "pw") == principal
    assert credentials.check("ops", "wrong") is None
    assert credentials.remembered("ops", "wrong") is None
    assert credentials.check("nobody", "pw") is None
    assert not Credentials([]) and credentials


def test_roles_are_ordered() -> None:
    """Each role may do what the ones below it may."""
    assert Role.NONE < Role.VIEWER < Role.OPERATOR < Role.ADMIN
    assert Role.named("operator") is Role.OPERATOR and Role.ADMIN.label == "admin"
