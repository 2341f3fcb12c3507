"""TCP checks with asyncio streams: connect, optionally send, optionally expect a reply."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time

from sentinel.model import TcpCheck
from sentinel.probes import ProbeResult


async def probe_tcp(check: TcpCheck, timeout: float) -> ProbeResult:
    began = time.perf_counter()
    writer: asyncio.StreamWriter | None = None
    try:
        async with asyncio.timeout(timeout):
            reader, writer = await asyncio.open_connection(check.host, check.port)
            if check.send is not None:
                writer.write(check.send.encode())
                await writer.drain()
            if check.expect is not None:
                received = b""
                expected = check.expect.encode()
                while expected not in received:
                    chunk = await reader.read(4096)
                    if not chunk:
                        return ProbeResult(
                            False,
                            time.perf_counter() - began,
                            f"connection closed before {check.expect!r} came",
                        )
                    received += chunk
    except TimeoutError:
        return ProbeResult(False, time.perf_counter() - began, f"timed out after {timeout:g}s")
    except OSError as exc:
        reason = os.strerror(exc.errno) if exc.errno else str(exc) or type(exc).__name__
        where = f"{check.host}:{check.port}"
        return ProbeResult(False, time.perf_counter() - began, f"{where}: {reason.lower()}")
    finally:
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    return ProbeResult(True, time.perf_counter() - began, f"connected to {check.host}:{check.port}")
