"""HTTP checks with httpx (the only module that imports httpx for probing)."""

from __future__ import annotations

import re
import time

import httpx

from sentinel.model import HttpCheck
from sentinel.probes import ProbeResult

_MAX_BODY = 64 * 1024  # enough for any health page; more is not read


class HttpProber:
    """Runs HTTP checks; one client per TLS-verify setting, shared by every probe.

    Like the kubelet, each probe opens a new connection (no keep-alive): a server that has
    stopped accepting connections must fail its probe even if an old connection still works.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self._transport = transport
        self._clients: dict[bool, httpx.AsyncClient] = {}

    def _client(self, verify: bool) -> httpx.AsyncClient:
        client = self._clients.get(verify)
        if client is None:
            limits = httpx.Limits(max_keepalive_connections=0)
            client = httpx.AsyncClient(
                verify=verify,
                transport=self._transport,
                limits=limits,
                trust_env=False,
                follow_redirects=False,
            )
            self._clients[verify] = client
        return client

    async def probe(self, check: HttpCheck, timeout: float) -> ProbeResult:
        began = time.perf_counter()
        client = self._client(check.tls_verify)
        try:
            request = client.build_request(
                check.method, check.url, headers=check.headers, timeout=timeout
            )
            response = await client.send(request, stream=True)
            try:
                body = b""
                async for chunk in response.aiter_bytes():
                    body += chunk
                    if len(body) >= _MAX_BODY:
                        break
            finally:
                await response.aclose()
        except httpx.TimeoutException:
            return ProbeResult(False, time.perf_counter() - began, f"timed out after {timeout:g}s")
        except httpx.HTTPError as exc:
            return ProbeResult(False, time.perf_counter() - began, _describe(exc))
        latency = time.perf_counter() - began
        status = response.status_code
        if not any(low <= status <= high for low, high in check.expect_status):
            return ProbeResult(False, latency, f"HTTP {status} {response.reason_phrase}")
        text = body.decode(errors="replace")
        if check.body_contains is not None and check.body_contains not in text:
            return ProbeResult(False, latency, f"HTTP {status}: body lacks {check.body_contains!r}")
        if check.body_regex is not None and re.search(check.body_regex, text) is None:
            return ProbeResult(
                False, latency, f"HTTP {status}: body does not match {check.body_regex!r}"
            )
        return ProbeResult(True, latency, f"HTTP {status} {response.reason_phrase}")

    async def aclose(self) -> None:
        for client in self._clients.values():
            await client.aclose()
        self._clients.clear()


def _describe(exc: httpx.HTTPError) -> str:
    cause = exc.__cause__ or exc.__context__
    reason = str(exc) or (str(cause) if cause else "") or type(exc).__name__
    if isinstance(exc, httpx.ConnectError) and "refused" in reason.lower():
        return "connection refused"
    return f"{type(exc).__name__}: {reason}"
