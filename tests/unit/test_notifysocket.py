"""sd_notify datagrams read as systemd's manager reads them: a corpus of what peers send."""

from __future__ import annotations

import pytest

from sentinel.notifysocket import MAX_DATAGRAM, message, parse


@pytest.mark.parametrize(
    ("datagram", "expected"),
    [
        # What systemd-notify 252 sends for `--ready --status="hello there"`.
        (b"READY=1\nSTATUS=hello there", {"READY": "1", "STATUS": "hello there"}),
        # Its barrier, which carries an fd: nothing sentinel uses.
        (b"BARRIER=1", {"BARRIER": "1"}),
        (b"WATCHDOG=1", {"WATCHDOG": "1"}),
        # Lines without "=" are skipped; an empty key too; a trailing newline is fine.
        (b"READY=1\ngarbage\n=x\n", {"READY": "1"}),
        # A value may hold "=" and be empty (STATUS= clears the status).
        (b"STATUS=a=b\nERRNO=", {"STATUS": "a=b", "ERRNO": ""}),
        # The first of a key counts (systemd's strv_find_startswith).
        (b"STATUS=first\nSTATUS=second", {"STATUS": "first"}),
        # UTF-8 text is taken as it is.
        ("STATUS=caf\u00e9 \u2603".encode(), {"STATUS": "caf\u00e9 \u2603"}),
        # Dropped whole: a NUL byte, bytes that are not UTF-8, or over the size limit.
        (b"READY=1\0", None),
        (b"READY=1\nSTATUS=\xff\xfe", None),
        (b"STATUS=" + b"x" * MAX_DATAGRAM, None),
    ],
)
def test_datagrams_parse_as_systemd_reads_them(
    datagram: bytes, expected: dict[str, str] | None
) -> None:
    """Newline-separated KEY=VALUE; what systemd drops whole is dropped whole."""
    assert parse(datagram) == expected


@pytest.mark.parametrize(
    ("text", "fields"),
    [
        ("READY=1", {"ready": True}),
        ("READY=0", {"ready": False}),  # only the exact assignment is the flag
        ("READY=true", {"ready": False}),
        ("RELOADING=1", {"reloading": True}),
        ("STOPPING=1", {"stopping": True}),
        ("WATCHDOG=1", {"watchdog": True, "watchdog_trigger": False}),
        ("WATCHDOG=trigger", {"watchdog": False, "watchdog_trigger": True}),
        ("MAINPID=4242", {"mainpid": 4242}),
        ("MAINPID=-1", {"mainpid": None}),
        ("MAINPID=12ab", {"mainpid": None}),
        ("MAINPID=\u0661\u0662", {"mainpid": None}),  # Arabic-Indic digits are not a pid
        ("STATUS=", {"status": ""}),
        ("FDSTORE=1\nX_UNKNOWN=1", {"ready": False, "status": None}),
    ],
)
def test_what_a_datagram_means(text: str, fields: dict[str, object]) -> None:
    """Flags are exact assignments; a pid is ASCII digits; unknown keys mean nothing."""
    parsed = parse(text.encode())
    assert parsed is not None
    event = message("web", "web", 100, parsed)
    assert {k: getattr(event, k) for k in fields} == fields
