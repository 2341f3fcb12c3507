"""One daemon's API, over its unix socket or HTTP(S): the CLI's only httpx importer.

Every way a call can fail becomes a `DaemonError` with a sentence for the operator; httpx's
exceptions and the daemon's error statuses are mapped here and nowhere else:

ControlError
 +-- DaemonError      a daemon could not be reached (`unreachable`), or refused a call:
                      401 (who are you), 403 (your role is too low), 404, 400, ...
"""

from __future__ import annotations

import errno
import json
import ssl
from collections.abc import Iterator
from typing import Any

import httpx

from sentinel.cli.servers import Server
from sentinel.errors import ControlError

Credentials = tuple[str, str]  # user name, password


class DaemonError(ControlError):
    """A daemon could not be reached, or refused a call; `where` names it, `reason` says why."""

    def __init__(self, where: str, reason: str, *, unreachable: bool = False) -> None:
        self.where, self.reason, self.unreachable = where, reason, unreachable
        super().__init__(f"cannot reach the daemon at {where}: {reason}" if unreachable else reason)

    def in_fleet(self) -> str:
        """The message with the host first, as a fleet command reports it."""
        what = "cannot reach the daemon: " if self.unreachable else ""
        return f"{self.where}: {what}{self.reason}"


class Daemon:
    """The API of one daemon. `timeout` bounds connecting and each quick call; `wait_limit`
    bounds a call that waits for processes to get somewhere (None: no limit); streams have no
    read limit."""

    def __init__(
        self,
        server: Server,
        *,
        credentials: Credentials | None = None,
        timeout: float = 10.0,
        wait_limit: float | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.server = server
        self._user = credentials[0] if credentials else None
        self._timeout, self._wait_limit = timeout, wait_limit
        if transport is None and server.socket is not None:
            transport = httpx.HTTPTransport(uds=server.socket)
        self._client = httpx.Client(
            base_url=server.url or "http://sentinel",
            transport=transport,
            auth=httpx.BasicAuth(*credentials) if credentials else None,
            timeout=timeout,
            headers={"Accept": "application/json"},
        )

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *_: object) -> None:
        self._client.close()

    def call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, str] | None = None,
        waits: bool = False,
        accept: tuple[int, ...] = (),
    ) -> httpx.Response:
        """The daemon's answer; an error status (but those in `accept`) is a DaemonError."""
        timeout = httpx.Timeout(self._timeout, read=self._wait_limit if waits else self._timeout)
        try:
            response = self._client.request(method, path, params=params, timeout=timeout)
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc
        if response.status_code >= 400 and response.status_code not in accept:
            raise self._refusal(response)
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            raise DaemonError(self.server.label, "the daemon answered something not JSON") from None

    def stream(self, path: str, params: dict[str, str]) -> Iterator[Any]:
        """The `data:` objects of a server-sent event stream, as they arrive."""
        timeout = httpx.Timeout(self._timeout, read=None)
        try:
            with self._client.stream("GET", path, params=params, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    raise self._refusal(response)
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        yield json.loads(line[6:])
        except httpx.TransportError as exc:
            raise self._unreachable(exc) from exc

    # --- what went wrong, in words ----------------------------------------------------------

    def _unreachable(self, exc: httpx.TransportError) -> DaemonError:
        return DaemonError(self.server.label, self._why(exc), unreachable=True)

    def _why(self, exc: httpx.TransportError) -> str:
        if isinstance(exc, httpx.TimeoutException):
            return f"no answer within {self._timeout:g}s"
        if isinstance(exc, httpx.RemoteProtocolError):
            return "the connection closed before the answer was complete"
        cause: BaseException | None = exc
        while cause is not None:
            if isinstance(cause, ssl.SSLError):
                return f"TLS: {cause.reason or cause}"
            if isinstance(cause, OSError) and cause.errno is not None:
                return _errno_reason(cause)
            cause = cause.__cause__ or cause.__context__
        return str(exc) or type(exc).__name__

    def _refusal(self, response: httpx.Response) -> DaemonError:
        try:
            body = response.json()
            message = str(body["error"]) if isinstance(body, dict) else response.text
        except (ValueError, KeyError):
            message = response.text.strip() or response.reason_phrase
        status, where = response.status_code, self.server.label
        if status == 401 and self._user is None:
            reason = f"{message}: give --user NAME (and the password in SENTINEL_PASSWORD)"
        elif status == 401:
            reason = f"user {self._user} was refused: {message}"
        elif status in (400, 403, 404, 409):
            reason = message  # the daemon's own sentence: which role, which process, what value
        else:
            reason = f"HTTP {status}: {message}"
        return DaemonError(where, reason)


def _errno_reason(exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return "no such socket (is the daemon running?)"
    if exc.errno == errno.EACCES:
        return "permission denied (see [control] socket_mode and socket_group)"
    if exc.errno is not None and exc.errno < 0:  # getaddrinfo's own codes
        return f"unknown host ({exc.strerror})"
    text = exc.strerror or str(exc)
    return text[:1].lower() + text[1:]
