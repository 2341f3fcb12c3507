"""The audit log: one JSON line per call that changes something, or was refused.

`state_dir/audit.jsonl`, mode 0600: when, who (a user, or a unix peer's uid), from where,
what, the target and the result. Never a password or a token: an entry holds only what the
fields below name. Lines are appended with O_APPEND, so a line is never torn by another
writer, and a full disk loses entries (with one warning), never the call itself.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

log = logging.getLogger(__name__)


class AuditLog:
    def __init__(self, path: Path, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self._clock = clock
        self._fd = os.open(
            path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        self._failing = False

    def record(
        self, *, who: str, role: str, source: str, action: str, target: str, result: str
    ) -> None:
        entry = {
            "time": round(self._clock(), 3),
            "who": who,
            "role": role,
            "from": source,
            "action": action,
            "target": target,
            "result": result,
        }
        line = (json.dumps(entry, ensure_ascii=True) + "\n").encode()
        try:
            os.write(self._fd, line)
        except OSError as exc:
            if not self._failing:  # once per episode: a full disk must not flood the log
                log.error("%s: cannot write the audit log (%s)", self.path, exc.strerror)
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        os.close(self._fd)
