"""HTTP JSON check: GET a URL and compare one field of the JSON it returns."""

from __future__ import annotations

import argparse
import http.client
import json
import re
import ssl
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import TYPE_CHECKING, Any

# Relative when run as sentinel.checks.http_json, a sibling module when run as a file;
# mypy takes the first branch.
if TYPE_CHECKING or __package__:
    from . import _nagios
else:
    import _nagios

_MAX_BODY = 4 * 2**20  # a health document is small; more is a misconfigured URL
_SHOWN = 80  # characters of a value quoted in the summary


def build_parser() -> _nagios.CheckParser:
    parser = _nagios.CheckParser(
        "HTTP_JSON",
        description="Check a JSON health endpoint: GET --url and compare the value at --field "
        "with --expect (the JSON value as text: strings bare, true/false/null and numbers "
        "as JSON writes them) or --expect-regex (searched, not anchored). With neither, the "
        "field must exist. An HTTP status of 400 or more, a body that is not JSON, a missing "
        "field, a mismatch or no connection is CRITICAL. Proxy variables are ignored: a "
        "liveness check talks to the service itself.",
        example="Example, as a sentinel exec probe:\n"
        '  exec = { check = "http_json", args = ["--url", "http://127.0.0.1:8000/health", '
        '"--field", "checks.db.state", "--expect", "up"] }',
    )
    parser.add_argument("--url", required=True, type=_url, help="an http:// or https:// URL")
    parser.add_argument(
        "--field",
        required=True,
        help='a dotted path into the document, list indexes as numbers: "status", '
        '"checks.db.state", "items.0.name"',
    )
    expected = parser.add_mutually_exclusive_group()
    expected.add_argument("--expect", metavar="VALUE", help="the value the field must have")
    expected.add_argument(
        "--expect-regex", type=_regex, metavar="REGEX", help="a pattern the value must contain"
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        type=_header,
        metavar="NAME:VALUE",
        help="a request header, repeatable",
    )
    parser.add_argument(
        "--insecure", action="store_true", help="do not verify the server's TLS certificate"
    )
    return parser


class _Unreachable(Exception):
    """No HTTP response: refused, timed out, reset, or not HTTP."""


def check(args: argparse.Namespace) -> _nagios.Result:
    critical = _nagios.Status.CRITICAL
    try:
        status, reason, body, elapsed = _get(args)
    except _Unreachable as exc:
        return _nagios.Result(critical, str(exc))
    perfdata = [
        _nagios.perf("time", round(elapsed, 6), "s", minimum=0),
        _nagios.perf("size", len(body), "B", minimum=0),
    ]
    took = f"HTTP {status} in {elapsed:.3f}s"
    if status >= 400:
        return _nagios.Result(critical, f"HTTP {status} {reason} from {args.url}", perfdata)
    if len(body) > _MAX_BODY:
        return _nagios.Result(critical, f"response larger than {_MAX_BODY} bytes", perfdata)
    try:
        document = json.loads(body)
    except ValueError as exc:
        return _nagios.Result(critical, f"response is not JSON ({exc}); {took}", perfdata)
    try:
        value = _lookup(document, args.field)
    except LookupError as exc:
        return _nagios.Result(critical, f"{exc}; {took}", perfdata)
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    shown = f"{args.field} is {_show(value)}"
    if args.expect is not None and text != args.expect:
        summary = f"{shown}, expected {_show(args.expect)}; {took}"
        return _nagios.Result(critical, summary, perfdata)
    if args.expect_regex is not None and not args.expect_regex.search(text):
        summary = f"{shown}, does not match /{args.expect_regex.pattern}/; {took}"
        return _nagios.Result(critical, summary, perfdata)
    return _nagios.Result(_nagios.Status.OK, f"{shown}; {took}", perfdata)


def _get(args: argparse.Namespace) -> tuple[int, str, bytes, float]:
    """GET the URL: status, reason, body (up to one byte past the limit) and seconds taken."""
    headers = {"User-Agent": "sentinel-check-http-json", "Accept": "application/json"}
    headers.update(args.header)
    context = ssl.create_default_context()
    if args.insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context)
    )
    began = time.monotonic()
    try:
        request = urllib.request.Request(args.url, headers=headers)
        try:
            response = opener.open(request, timeout=args.timeout or None)
        except urllib.error.HTTPError as exc:
            response = exc  # a 4xx/5xx still carries a status and a body
        with response:
            body = response.read(_MAX_BODY + 1)
    except urllib.error.URLError as exc:
        raise _Unreachable(f"cannot reach {args.url}: {_nagios.error_text(exc.reason)}") from exc
    except (OSError, http.client.HTTPException) as exc:  # what urllib leaves unwrapped
        raise _Unreachable(f"no response from {args.url}: {_nagios.error_text(exc)}") from exc
    return response.status, response.reason, body, time.monotonic() - began


def _lookup(document: Any, path: str) -> Any:
    """The value at a dotted path; LookupError naming the first step that is missing."""
    value = document
    walked: list[str] = []
    for step in path.split("."):
        if isinstance(value, dict) and step in value:
            value = value[step]
        elif isinstance(value, list) and step.isdigit() and int(step) < len(value):
            value = value[int(step)]
        else:
            where = ".".join(walked) or "the document"
            raise LookupError(f"no field {path} (no {step!r} in {where})")
        walked.append(step)
    return value


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "..."


def _url(text: str) -> str:
    if urllib.parse.urlsplit(text).scheme not in ("http", "https"):
        raise argparse.ArgumentTypeError(f"expected an http:// or https:// URL, got {text!r}")
    return text


def _regex(text: str) -> re.Pattern[str]:
    try:
        return re.compile(text)
    except re.error as exc:
        raise argparse.ArgumentTypeError(f"not a valid regular expression: {exc}") from exc


def _header(text: str) -> tuple[str, str]:
    name, colon, value = text.partition(":")
    if not colon or not name.strip():
        raise argparse.ArgumentTypeError(f'expected "Name: value", got {text!r}')
    return name.strip(), value.strip()


if __name__ == "__main__":
    _nagios.run(build_parser(), check)
