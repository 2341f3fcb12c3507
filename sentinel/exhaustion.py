"""Running out of file descriptors, memory or processes at run time: told once a minute as a
warning event, never a traceback per attempt, and supervision goes on.

A spawn that fails for want of resources is not the program's fault: it is retried through
the backoff without counting as a failed start (no FATAL for a full fd table).
"""

from __future__ import annotations

import errno
import time
from collections.abc import Callable

from sentinel.events import DaemonWarning, Event

EXHAUSTION = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.ENOSPC})
EVERY = 60.0  # seconds between two warnings about the same shortage


def is_exhaustion(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in EXHAUSTION


class Exhaustion:
    """Rate-limited warnings about a shortage, one stream per errno."""

    def __init__(
        self, publish: Callable[[Event], object], clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._publish, self._clock = publish, clock
        self._last: dict[int, float] = {}
        self._suppressed: dict[int, int] = {}

    def report(self, what: str, exc: OSError, process: str = "") -> None:
        code = exc.errno or 0
        now = self._clock()
        last = self._last.get(code)
        if last is not None and now - last < EVERY:
            self._suppressed[code] = self._suppressed.get(code, 0) + 1
            return
        self._last[code] = now
        more = self._suppressed.pop(code, 0)
        also = f" ({more} more since the last warning)" if more else ""
        detail = f"{what}: {exc.strerror or exc}{also}; supervision goes on"
        self._publish(DaemonWarning(process=process, detail=detail))
