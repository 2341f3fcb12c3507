"""The status `sentinel run` exits with when an essential program ends it."""

from __future__ import annotations

import pytest

from sentinel.daemon import exit_status


@pytest.mark.parametrize(
    ("code", "failed", "status"),
    [
        (0, False, 0),  # ended cleanly: the container ends cleanly
        (3, False, 3),
        (-9, False, 137),  # killed by SIGKILL: 128 + 9, as a shell says it
        (-15, True, 143),
        (None, True, 1),  # never ran (a spawn error): a failure with no code of its own
        (0, True, 1),  # gave up (flapping) after a clean exit: still a failure
        (300, False, 255),
    ],
)
def test_exit_status(code: int | None, failed: bool, status: int) -> None:
    assert exit_status(code, failed=failed) == status
