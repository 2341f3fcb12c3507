"""The control plane's HTTP server, in this process: header timeout, connection cap, peer
credentials on the unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from sentinel.api import serve
from sentinel.api.security import PEER
from sentinel.api.serve import ControlServer, Listener


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"peer": request.scope.get("state", {}).get(PEER)})


APP = Starlette(routes=[Route("/", whoami)])


@pytest.fixture
async def tcp_server() -> AsyncIterator[tuple[str, int]]:
    sock = socket.create_server(("127.0.0.1", 0))
    server = ControlServer([Listener(sock, APP)])
    await server.start()
    yield sock.getsockname()[:2]
    await server.stop()


async def read_all(reader: asyncio.StreamReader) -> bytes:
    async with asyncio.timeout(5):
        return await reader.read()


async def test_a_silent_connection_is_closed_after_the_header_timeout(
    monkeypatch: pytest.MonkeyPatch, tcp_server: tuple[str, int]
) -> None:
    """A client that sends no request head is dropped HEADER_TIMEOUT after connecting."""
    monkeypatch.setattr(serve, "HEADER_TIMEOUT", 0.3)
    reader, writer = await asyncio.open_connection(*tcp_server)
    began = time.monotonic()
    assert await read_all(reader) == b""
    assert 0.25 < time.monotonic() - began < 3
    writer.close()


async def test_a_trickled_head_is_cut_off_too(
    monkeypatch: pytest.MonkeyPatch, tcp_server: tuple[str, int]
) -> None:
    """Bytes that never make a whole head do not keep the connection: the timer is for the
    head, not for silence."""
    monkeypatch.setattr(serve, "HEADER_TIMEOUT", 0.5)
    reader, writer = await asyncio.open_connection(*tcp_server)
    began = time.monotonic()
    for byte in b"GET / HTTP/1.1\r\nHost: x\r\n":
        writer.write(bytes([byte]))
        if reader.at_eof() or time.monotonic() - began > 3:
            break
        await asyncio.sleep(0.05)  # the trickle itself is what is tested
    assert await read_all(reader) == b""
    assert time.monotonic() - began < 4
    writer.close()


async def test_a_prompt_request_is_served_and_kept_alive(
    monkeypatch: pytest.MonkeyPatch, tcp_server: tuple[str, int]
) -> None:
    """A whole head in time is answered; the next one has its own HEADER_TIMEOUT."""
    monkeypatch.setattr(serve, "HEADER_TIMEOUT", 0.3)
    reader, writer = await asyncio.open_connection(*tcp_server)
    for _ in range(2):
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        async with asyncio.timeout(5):
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(head.split(b"content-length: ")[1].split(b"\r\n")[0])
            body = await reader.readexactly(length)
        assert head.startswith(b"HTTP/1.1 200") and body == b'{"peer":null}'
    assert await read_all(reader) == b""  # and then, silent, it is dropped
    writer.close()


async def test_connections_over_the_cap_are_closed_at_once(
    monkeypatch: pytest.MonkeyPatch, tcp_server: tuple[str, int]
) -> None:
    """Past CONNECTIONS_PER_LISTENER, a new connection is closed as soon as it is accepted."""
    monkeypatch.setattr(serve, "CONNECTIONS_PER_LISTENER", 3)
    kept = [await asyncio.open_connection(*tcp_server) for _ in range(3)]
    reader, writer = await asyncio.open_connection(*tcp_server)
    assert await read_all(reader) == b""
    for _, w in (*kept, (reader, writer)):
        w.close()


async def test_the_unix_peer_is_known(tmp_path: Path) -> None:
    """On the unix socket the request knows the caller's pid, uid and gid (SO_PEERCRED)."""
    path = tmp_path / "s.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(8)
    server = ControlServer([Listener(sock, APP)])
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(str(path))
        writer.write(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = await read_all(reader)
        writer.close()
    finally:
        await server.stop()
    assert answer.endswith(f'{{"peer":[{os.getpid()},{os.getuid()},{os.getgid()}]}}'.encode())
