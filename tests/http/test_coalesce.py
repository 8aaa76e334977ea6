"""Write coalescing (http/coalesce.py): the first write of a loop iteration goes out at once,
later ones are held until the iteration ends, and nothing is lost or reordered on the way.

Loopback TCP delivers a send() into the peer's receive buffer before the call returns, so what
a client socket holds right after a server-side write shows whether that write went out or was
held.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any

import pytest
from support.http_wire import ServerThread, Wire, simple, wait_for

from aioprefork.http.coalesce import MAX_HOLDING

pytestmark = pytest.mark.timeout(30)

GET = b"GET /%s HTTP/1.1\r\nHost: t\r\n%s\r\n"


def _peek(sock: socket.socket) -> bytes:
    """What the client could read right now, without consuming it."""
    timeout = sock.gettimeout()
    sock.settimeout(0)  # (with a timeout, recv() would first wait for data)
    try:
        return sock.recv(65536, socket.MSG_PEEK)
    except BlockingIOError:
        return b""
    finally:
        sock.settimeout(timeout)


def _protocols(server: ServerThread, clients: list[Wire]) -> list[Any]:
    """The server-side HttpProtocol of each client connection, in the clients' order."""
    wait_for(lambda: len(server.stats.connections) == len(clients))
    connections: list[Any] = list(server.stats.connections)
    by_peer = {conn.transport.get_extra_info("peername")[1]: conn for conn in connections}
    return [by_peer[client.sock.getsockname()[1]] for client in clients]


def test_writes_after_the_first_in_an_iteration_wait_for_its_end(
    serve: Any,
) -> None:
    server = serve(simple())
    with Wire(server.port) as a, Wire(server.port) as b:
        first, second = _protocols(server, [a, b])

        def one_iteration() -> tuple[bytes, bytes]:
            first.write(b"one")
            second.write(b"two")
            second.write(b"three")
            return _peek(a.sock), _peek(b.sock)

        assert server.call(one_iteration) == (b"one", b"")  # the second connection holds
        wait_for(lambda: _peek(b.sock) == b"twothree")  # ... until the iteration ended, in order

        def next_iteration() -> bytes:
            second.write(b"four")  # the first write of a new iteration goes out at once
            return _peek(b.sock)

        assert server.call(next_iteration) == b"twothreefour"


def test_a_connection_holds_at_most_64_kib(serve: Any) -> None:
    server = serve(simple())
    with Wire(server.port) as a, Wire(server.port) as b:
        first, second = _protocols(server, [a, b])
        big = b"x" * 40_000

        def one_iteration() -> tuple[int, int]:
            first.write(b"one")
            second.write(big)
            held = len(_peek(b.sock))
            second.write(big)  # 80,000 bytes held: over the limit, written now
            return held, len(_peek(b.sock))

        held, sent = server.call(one_iteration)
        assert held == 0
        assert sent > 0
        b.sock.settimeout(5)
        assert b._take(80_000) == big + big


def test_big_buffers_are_held_by_reference_up_to_256_kib(serve: Any) -> None:
    """writelines() (a big body, never copied) waits for the iteration's end too, up to a bound."""
    server = serve(simple())
    with Wire(server.port) as a, Wire(server.port) as b:
        first, second = _protocols(server, [a, b])
        big = b"y" * 100_000

        def one_iteration() -> list[int]:
            first.write(b"one")
            seen = []
            second.write(b"head")
            for _ in range(3):  # 100,004 then 200,004 bytes held; 300,004: over, written now
                second.writelines([big])
                seen.append(len(_peek(b.sock)))
                if len(seen) == 1:
                    assert second._held[-1] is big  # held as the app's own object, not a copy
            return seen

        held_once, held_twice, over = server.call(one_iteration)
        assert (held_once, held_twice) == (0, 0)
        assert over > 0
        b.sock.settimeout(5)
        assert b._take(300_004) == b"head" + big * 3


def test_at_most_max_holding_connections_wait(serve: Any) -> None:
    server = serve(simple())
    wires = [Wire(server.port) for _ in range(MAX_HOLDING + 3)]
    try:
        protocols = _protocols(server, wires)

        def one_iteration() -> list[bool]:
            for protocol in protocols:
                protocol.write(b"x")
            return [bool(_peek(wire.sock)) for wire in wires]

        # the first goes out at once; MAX_HOLDING wait; the next flushes them all; the last waits
        assert server.call(one_iteration) == [True] * (MAX_HOLDING + 2) + [False]
        wait_for(lambda: _peek(wires[-1].sock) == b"x")
    finally:
        for wire in wires:
            wire.close()


def test_a_failing_held_write_drops_only_its_connection(serve: Any) -> None:
    server = serve(simple())
    wires = [Wire(server.port) for _ in range(3)]
    try:
        first, broken, third = _protocols(server, wires)

        def fail(data: bytes) -> None:
            raise OSError("the socket broke")

        def one_iteration() -> None:
            first.write(b"one")
            broken.write(b"two")
            third.write(b"three")
            broken._send = fail  # what the transport does at the iteration's end

        server.call(one_iteration)
        wait_for(lambda: _peek(wires[2].sock) == b"three")  # the others still go out
        assert wires[1].closed()
        assert wires[1].buf == b""
    finally:
        for wire in wires:
            wire.close()


async def _gated(scope: dict[str, Any], receive: Any, send: Any, gate: dict[str, Any]) -> None:
    """/wait?KIND parks until /go; then every parked app answers in the same loop iteration."""
    if scope["type"] != "http":
        return
    if "event" not in gate:
        gate["event"] = asyncio.Event()
        gate["parked"] = 0
    event: asyncio.Event = gate["event"]
    kind = scope["query_string"]
    if scope["path"] == "/go":
        event.set()
        kind = b"small"
    else:
        gate["parked"] += 1
        await event.wait()
    if kind == b"file":
        headers = [(b"content-type", b"application/octet-stream")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.pathsend", "path": gate["file"]})
        return
    body = b"b" * 100_000 if kind == b"big" else kind * 10
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_responses_of_one_iteration_arrive_whole_and_in_order(serve: Any, tmp_path: Path) -> None:
    """Held bytes go out before a close and a zero-copy file; a big body keeps its place."""
    path = tmp_path / "file.bin"
    path.write_bytes(bytes(range(256)) * 64)
    gate: dict[str, Any] = {"file": str(path)}

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await _gated(scope, receive, send, gate)

    server = serve(app)
    kinds = [b"small", b"close", b"file", b"big", b"other"]
    wires = [Wire(server.port) for _ in kinds]
    try:
        for wire, kind in zip(wires, kinds, strict=True):
            close = b"Connection: close\r\n" if kind == b"close" else b""
            wire.send(b"GET /wait?%s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (kind, close))
        wait_for(lambda: gate.get("parked") == len(kinds))
        with Wire(server.port) as go:
            go.send(GET % (b"go", b""))
            assert go.read_response().body == b"small" * 10
        for wire, kind in zip(wires, kinds, strict=True):
            response = wire.read_response()
            assert response.status == 200, kind
            if kind == b"file":
                assert response.body == path.read_bytes()
            elif kind == b"big":
                assert response.body == b"b" * 100_000
            else:
                assert response.body == kind * 10
        assert wires[1].closed()  # closed after its whole response, not before
        wires[0].send(GET % (b"again?x", b""))  # the others stay usable
        assert wires[0].read_response().status == 200
    finally:
        for wire in wires:
            wire.close()
