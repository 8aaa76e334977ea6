"""WebSocket over the real worker server: handshake, messages, close codes, limits, keep-alive, stop.

The client is the `websockets` package's asyncio client (or raw bytes where a test needs to
misbehave); the server is a WorkerServer on uvloop in a thread (conftest.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import os
import time
from collections.abc import Callable
from typing import Any, cast

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from aioprefork.config.model import WsLimits
from aioprefork.worker.server import WorkerServer

from . import apps
from .conftest import ServerThread

Serve = Callable[..., ServerThread]


def _ws(server: ServerThread, path: str) -> str:
    return f"ws://127.0.0.1:{server.port}{path}"


def _limits(**ws: Any) -> dict[str, Any]:
    return {"websocket": dataclasses.replace(WsLimits(), **ws)}


async def _wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


@pytest.fixture(autouse=True)
def _clear_seen() -> None:
    apps.SEEN.clear()


async def test_echo_text_and_bytes(serve: Serve) -> None:
    server = serve(apps.app)
    async with connect(_ws(server, "/echo")) as ws:
        await ws.send("héllo ✓")
        assert await ws.recv() == "héllo ✓"
        await ws.send(b"\x00\xff" * 70_000)  # > 64 KiB: several reads and writes
        assert await ws.recv() == b"\x00\xff" * 70_000
        assert server.stats.phases()["upgraded"] == 1
    await _wait_for(lambda: server.stats.phases()["upgraded"] == 0)
    await _wait_for(lambda: len(apps.SEEN) == 1)
    assert apps.SEEN[0]["code"] == 1000


async def test_scope_subprotocol_and_headers(serve: Serve) -> None:
    server = serve(apps.app)
    async with connect(
        _ws(server, "/scope?a=1&b=%20"),
        subprotocols=["chat.v1", "chat.v2"],  # type: ignore[list-item]
        additional_headers={"X-Client": "yes"},
    ) as ws:
        scope = json.loads(await ws.recv())
        assert ws.subprotocol == "chat.v2"
        assert ws.response is not None
        assert ws.response.headers["x-app"] == "yes"
        assert ws.response.headers["server"] == "aioprefork"
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert "method" not in scope
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (
        "/scope",
        "/scope",
        "a=1&b=%20",
    )
    assert scope["subprotocols"] == ["chat.v1", "chat.v2"]
    assert ["x-client", "yes"] in scope["headers"]
    assert scope["client"][0] == "127.0.0.1"
    assert scope["server"] == ["127.0.0.1", server.port]
    assert "websocket.http.response" in scope["extensions"]
    assert "http.response.pathsend" not in scope["extensions"]
    assert scope["asgi"]["version"] == "3.0"


async def test_denial_response(serve: Serve) -> None:
    server = serve(apps.app)
    with pytest.raises(InvalidStatus) as info:
        async with connect(_ws(server, "/deny")):
            pass
    response = info.value.response
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Basic"
    assert response.body == b"no entry"


@pytest.mark.parametrize(("path", "status"), [("/close-early", 403), ("/raise-early", 500)])
async def test_no_accept_means_http_error(serve: Serve, path: str, status: int) -> None:
    server = serve(apps.app)
    with pytest.raises(InvalidStatus) as info:
        async with connect(_ws(server, path)):
            pass
    assert info.value.response.status_code == status
    await _wait_for(lambda: server.stats.phases()["upgraded"] == 0)


@pytest.mark.parametrize(("path", "code"), [("/raise-late", 1011), ("/return-late", 1000)])
async def test_app_end_after_accept_closes(serve: Serve, path: str, code: int) -> None:
    server = serve(apps.app)
    async with connect(_ws(server, path)) as ws:
        if path == "/raise-late":
            await ws.send("go")
        else:
            assert await ws.recv() == "bye"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == code


async def test_server_close_code_and_reason(serve: Serve) -> None:
    server = serve(apps.app)
    async with connect(_ws(server, "/server-close")) as ws:
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert (ws.close_code, ws.close_reason) == (4001, "done here")
    await _wait_for(lambda: len(apps.SEEN) == 2)
    assert apps.SEEN[0]["type"] == "websocket.disconnect"
    assert apps.SEEN[0]["code"] == 4001
    assert apps.SEEN[1] == {"raised": "ClientDisconnected"}


async def test_client_close_code_reaches_the_app(serve: Serve) -> None:
    server = serve(apps.app)
    async with connect(_ws(server, "/echo")) as ws:
        await ws.close(code=4321, reason="client leaving")
    await _wait_for(lambda: len(apps.SEEN) == 1)
    assert apps.SEEN[0] == {
        "type": "websocket.disconnect",
        "code": 4321,
        "reason": "client leaving",
    }


async def test_message_over_max_size_closes_1009(serve: Serve) -> None:
    server = serve(apps.app, **_limits(max_size=1000))
    async with connect(_ws(server, "/echo"), max_size=None) as ws:
        await ws.send("x" * 1000)
        assert await ws.recv() == "x" * 1000
        await ws.send("x" * 1001)
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
    assert ws.close_code == 1009


async def test_invalid_utf8_closes_1007(serve: Serve) -> None:
    server = serve(apps.app)
    reader, writer = await _raw_handshake(server, "/echo")
    try:
        writer.write(_frame(0x1, b"\xff\xfe"))
        opcode, payload = await _read_frame(reader)
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1007)
    finally:
        writer.close()


async def test_permessage_deflate_is_configurable(serve: Serve) -> None:
    on = serve(apps.app)
    off = serve(apps.app, **_limits(per_message_deflate=False))
    async with connect(_ws(on, "/echo")) as ws:
        assert [e.name for e in ws.protocol.extensions] == ["permessage-deflate"]
        await ws.send("compress me " * 1000)
        assert await ws.recv() == "compress me " * 1000
    async with connect(_ws(off, "/echo")) as ws:
        assert ws.protocol.extensions == []


async def test_invalid_handshake_never_reaches_the_app(serve: Serve) -> None:
    server = serve(apps.app)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n"
    )
    response = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert response.startswith(b"HTTP/1.1 400 ")
    assert b"Sec-WebSocket-Version" in response
    assert apps.SEEN == []


async def test_slow_app_pauses_reading(serve: Serve) -> None:
    server = serve(apps.app, **_limits(max_queue=4, per_message_deflate=False))
    async with connect(_ws(server, "/lazy")) as ws:
        for _ in range(200):
            await ws.send("m")
        await _wait_for(lambda: server.call(lambda: _ws_reading_paused(server)))
        assert await asyncio.wait_for(ws.recv(), 5) == "200"  # the app caught up: all arrived
        assert not server.call(lambda: _ws_reading_paused(server))


def _ws_reading_paused(server: ServerThread) -> bool:
    (conn,) = server.stats.connections
    return bool(cast(Any, conn)._flow.read_paused)


async def test_ping_and_pong_timeout(serve: Serve) -> None:
    server = serve(apps.app, **_limits(ping_interval=0.1, ping_timeout=0.2))
    reader, writer = await _raw_handshake(server, "/echo")
    try:
        opcode, payload = await _read_frame(reader)  # a ping within ping_interval
        assert opcode == 0x9
        writer.write(_frame(0xA, payload))  # answered: the connection stays
        opcode, _ = await _read_frame(reader)
        assert opcode == 0x9  # the next ping; this one we ignore
        started = time.monotonic()
        opcode, payload = await _read_frame(reader)
        assert (opcode, int.from_bytes(payload[:2], "big")) == (0x8, 1011)
        assert time.monotonic() - started < 1.0
        assert await asyncio.wait_for(reader.read(), 5) == b""  # and the server hangs up
    finally:
        writer.close()


def running(server: ServerThread) -> WorkerServer:
    assert server.server is not None, "the server thread has not started"
    return server.server


async def test_graceful_stop_closes_1001_after_in_flight(serve: Serve) -> None:
    server = serve(apps.app)
    async with connect(_ws(server, "/talk")) as ws:
        await _wait_for(lambda: server.stats.phases()["upgraded"] == 1)
        stop = asyncio.get_running_loop().run_in_executor(
            None,
            lambda: server.call(lambda: running(server).shutdown(time.time() + 5), 10),
        )
        assert await ws.recv() == "in flight"
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1001
        await asyncio.wait_for(stop, 10)
    assert apps.SEEN == [{"type": "websocket.disconnect", "code": 1001, "reason": ""}]


async def test_abort_drops_at_once(serve: Serve) -> None:
    server = serve(apps.app)
    async with connect(_ws(server, "/talk")) as ws:
        assert await ws.recv() == "in flight"
        server.call(lambda: running(server).abort())
        with pytest.raises(ConnectionClosed):
            await asyncio.wait_for(ws.recv(), 5)
        assert ws.close_code == 1006
    await _wait_for(lambda: apps.SEEN != [])
    assert apps.SEEN[0]["code"] == 1006


async def test_ws_none_serves_upgrades_as_http(serve: Serve) -> None:
    server = serve(apps.app, websocket=None)
    with pytest.raises(InvalidStatus) as info:
        async with connect(_ws(server, "/echo")):
            pass
    assert info.value.response.status_code == 200
    assert json.loads(info.value.response.body)["type"] == "http"


# --- raw WebSocket client bits, for tests that must misbehave ------------------------------


async def _raw_handshake(
    server: ServerThread, path: str
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    key = base64.b64encode(os.urandom(16))
    writer.write(
        b"GET %s HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        b"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path.encode(), key)
    )
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
    assert head.startswith(b"HTTP/1.1 101 "), head
    return reader, writer


def _frame(opcode: int, payload: bytes) -> bytes:
    mask = os.urandom(4)
    assert len(payload) < 126
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await asyncio.wait_for(reader.readexactly(2), 5)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2), "big")
    return first & 0x0F, await reader.readexactly(length)
