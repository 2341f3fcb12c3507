"""sentinel's own log: readable lines on stderr, or one JSON object per line for log shippers.

When stderr is the journal (systemd's $JOURNAL_STREAM names it), each line starts with its
syslog priority (`<6>`) and carries no timestamp of its own: journald stamps and ranks it.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from sentinel.systemd import journal_stream

_TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(message)s"
_JOURNAL_FORMAT = "%(levelname)-7s %(message)s"
# syslog priorities (RFC 5424): what journald reads from a "<N>" prefix
_PRIORITY = {"DEBUG": 7, "INFO": 6, "WARNING": 4, "ERROR": 3, "CRITICAL": 2}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class JournalFormatter(logging.Formatter):
    """Prefixes each line (a traceback's too) with the record's priority."""

    def __init__(self, inner: logging.Formatter) -> None:
        super().__init__()
        self._inner = inner

    def format(self, record: logging.LogRecord) -> str:
        prefix = f"<{_PRIORITY.get(record.levelname, 6)}>"
        return "\n".join(prefix + line for line in self._inner.format(record).split("\n"))


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    journal = journal_stream()
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter(_JOURNAL_FORMAT if journal else _TEXT_FORMAT)
    handler.setFormatter(JournalFormatter(formatter) if journal else formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # The levels of third-party loggers, all set here.
    # uvicorn's start-up and shutdown lines say nothing the daemon does not say itself.
    logging.getLogger("uvicorn").setLevel(max(logging.WARNING, root.level))
    # apscheduler's warning that a run was skipped because the previous one is still going is
    # expected behaviour for a probe slower than its period, not news; nor is each job it adds.
    logging.getLogger("apscheduler.scheduler").setLevel(max(logging.ERROR, root.level))
    # Its executor logs every run, and a job cancelled at shutdown as an error with a traceback;
    # a job's own errors are logged by sentinel.scheduling.
    logging.getLogger("apscheduler.executors").setLevel(logging.CRITICAL)
    # apprise may log channel URLs (hosts, paths, credentials); the notifier logs each send
    # itself, without secrets.
    logging.getLogger("apprise").setLevel(logging.CRITICAL)
