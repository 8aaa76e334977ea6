"""WorkerServer: the accept gate, graceful shutdown, abort, EMFILE, Unix sockets, PROXY protocol,
forwarded headers, and the hand-offs to WebSocket and pathsend."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from support.http_wire import Wire, exchange, scope_recorder, simple, status_of, wait_for

from examples.hello import app as hello

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def test_gate_stops_accepting_at_the_limit_and_resumes_below(serve: Any) -> None:
    release = threading.Event()

    async def busy(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while scope["path"] == "/busy" and not release.is_set():
            await asyncio.sleep(0.01)
        await hello(scope, receive, send)

    server = serve(busy, server_kwargs={"worker_connections": 2})
    first, second = Wire(server.port), Wire(server.port)
    for wire in (first, second):
        wire.send(b"GET /busy HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    wait_for(lambda: server.stats.accepted_total == 2)
    wait_for(lambda: not server.server.accepting)
    third = Wire(server.port)  # the kernel completes the handshake; the worker does not accept
    third.send(GET)
    time.sleep(0.3)
    assert server.stats.accepted_total == 2  # both busy in the app: nothing to reclaim
    release.set()
    assert first.read_response().status == 200
    assert third.read_response().status == 200
    assert server.stats.accepted_total == 3
    assert server.accepting_changes[:3] == [True, False, True]
    for wire in (first, second, third):
        wire.close()


def test_silent_connections_make_room_for_a_client_at_the_limit(serve: Any) -> None:
    """Connections that never send a byte (slowloris) do not keep the next client out."""
    server = serve(hello, server_kwargs={"worker_connections": 2})
    silent = [Wire(server.port), Wire(server.port)]
    wait_for(lambda: server.stats.accepted_total == 2)
    with Wire(server.port) as client:
        client.send(GET)
        assert client.read_response().status == 200
    # one of them was cut for it (the one waited for longest; both may be as old)
    assert sum(wire.closed(0.5) for wire in silent) == 1
    assert server.stats.shed == {"slow_head": 1}
    for wire in silent:
        wire.close()


def test_oldest_idle_keepalive_connection_is_reclaimed_at_the_limit(serve: Any) -> None:
    server = serve(hello, server_kwargs={"worker_connections": 2})
    with Wire(server.port) as idle:
        idle.send(GET)
        assert idle.read_response().status == 200
        with Wire(server.port) as newcomer:
            assert idle.closed()  # closed to make room
            newcomer.send(GET)
            assert newcomer.read_response().status == 200
    assert server.accepting_changes == [True]


def test_graceful_shutdown_finishes_in_flight_and_closes_idle(serve: Any) -> None:
    gate = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await gate.wait()
        await simple(body=b"done")(scope, receive, send)

    server = serve(app)
    busy, idle = Wire(server.port), Wire(server.port)
    idle.send(GET)
    assert idle.read_response().status == 200
    busy.send(b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n")
    wait_for(
        lambda: (
            server.call(lambda: [c.phase for c in server.server.stats.connections]).count("active")
            == 1
        )
    )
    assert server.loop is not None
    drained = asyncio.run_coroutine_threadsafe(server.server.shutdown(None), server.loop)
    assert idle.closed()
    assert not server.server.accepting
    assert not drained.done()
    server.call(gate.set)
    resp = busy.read_response()
    assert resp.body == b"done" and resp.header(b"connection") == b"close"
    assert busy.closed()
    drained.result(5)
    with pytest.raises(OSError):
        exchange(server.port, GET, timeout=0.5)  # listening socket is open but nobody accepts
    busy.close()
    idle.close()


def test_shutdown_deadline_aborts_what_is_left(serve: Any) -> None:
    cancelled: list[bool] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(GET)
        wait_for(lambda: server.stats.accepted_total == 1)
        time.sleep(0.05)
        started = time.monotonic()
        assert server.loop is not None
        asyncio.run_coroutine_threadsafe(
            server.server.shutdown(time.time() + 0.3), server.loop
        ).result(5)
        assert 0.2 < time.monotonic() - started < 2
        assert wire.closed()
    assert server.server.open_connections == 0
    wait_for(lambda: cancelled == [True])


def test_abort_closes_everything_now(serve: Any) -> None:
    server = serve(hello)
    with Wire(server.port) as a, Wire(server.port) as b:
        a.send(GET)
        a.read_response()
        wait_for(lambda: server.stats.accepted_total == 2)
        server.call(server.server.abort)
        assert a.closed() and b.closed()
    wait_for(lambda: server.server.open_connections == 0)


EMFILE_SERVER = textwrap.dedent(
    """
    import asyncio, os, resource, socket, sys
    import uvloop
    sys.path.insert(0, sys.argv[1])
    from aioprefork.config.model import HttpLimits
    from aioprefork.worker.server import WorkerServer
    from examples.hello import app

    async def main():
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        server = WorkerServer(app, HttpLimits(access_log=False), sockets=[sock])
        await server.start()
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        used = len(os.listdir("/proc/self/fd"))
        resource.setrlimit(resource.RLIMIT_NOFILE, (used + 2, hard))
        print(sock.getsockname()[1], flush=True)
        await asyncio.sleep(1.5)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
        print("restored", flush=True)
        await asyncio.sleep(30)

    uvloop.run(main())
    """
)


def test_emfile_at_accept_does_not_crash(tmp_path: Path) -> None:
    script = tmp_path / "emfile_server.py"
    script.write_text(EMFILE_SERVER)
    root = str(Path(__file__).resolve().parents[2])
    proc = subprocess.Popen(
        [sys.executable, str(script), root],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        clients = []
        for _ in range(8):
            try:
                sock = socket.create_connection(("127.0.0.1", port), timeout=2)
                sock.sendall(GET)
                clients.append(sock)
            except OSError:
                pass
        assert proc.stdout.readline().strip() == "restored"
        for sock in clients:
            sock.close()
        assert proc.poll() is None
        assert (
            status_of(exchange(port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
            == 200
        )
    finally:
        proc.kill()
        proc.wait(5)
        if proc.stdout is not None:
            proc.stdout.close()
        if proc.stderr is not None:
            proc.stderr.close()


def test_unix_socket_scope(serve: Any, tmp_path: Path) -> None:
    app, seen = scope_recorder()
    path = str(tmp_path / "s.sock")
    serve(app, unix_path=path)
    with Wire(0, unix=path) as wire:
        wire.send(GET)
        assert wire.read_response().status == 200
    assert seen[0]["server"] == (path, None)
    assert seen[0]["client"] is None


def test_proxy_protocol_source_becomes_client(serve: Any) -> None:
    app, seen = scope_recorder()
    server = serve(app, proxy_protocol=True)
    with Wire(server.port) as wire:
        wire.send(b"PROXY TCP4 203.0.113.7 10.0.0.1 4242 80\r\n" + GET)
        assert wire.read_response().status == 200
        wire.send(GET)  # the header is only at the start of the connection
        assert wire.read_response().status == 200
    assert seen[0]["client"] == ("203.0.113.7", 4242)
    assert seen[1]["client"] == ("203.0.113.7", 4242)


def test_proxy_protocol_refused_from_untrusted_peer_or_when_missing(serve: Any) -> None:
    server = serve(hello, proxy_protocol=True, forwarded_allow_ips=("10.9.9.9",))
    raw = exchange(server.port, b"PROXY TCP4 203.0.113.7 10.0.0.1 4242 80\r\n" + GET)
    assert status_of(raw) == 400
    trusted = serve(hello, proxy_protocol=True)
    assert status_of(exchange(trusted.port, GET)) == 400
    assert trusted.stats.rejected == {"proxy_protocol": 1}


def test_forwarded_headers_from_trusted_peer(serve: Any) -> None:
    app, seen = scope_recorder()
    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.1\r\n"
            b"X-Forwarded-Proto: https\r\nX-Forwarded-Host: example.org\r\n\r\n"
        )
        wire.read_response()
    assert seen[0]["client"] == ("198.51.100.1", 0)
    assert seen[0]["scheme"] == "https"
    # X-Forwarded-Host is not Host unless asked (an app's own Host checks stay meaningful)
    assert dict(seen[0]["headers"])[b"host"] == b"t"
    untrusted = serve(app, forwarded_allow_ips=("10.9.9.9",))
    with Wire(untrusted.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n")
        wire.read_response()
    assert seen[1]["client"][0] == "127.0.0.1"


def test_forwarded_host_replaces_host_only_when_asked(serve: Any) -> None:
    app, seen = scope_recorder()
    request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-Host: example.org\r\n\r\n"
    for server in (serve(app), serve(app, proxy_forwarded_host=True)):
        with Wire(server.port) as wire:
            wire.send(request)
            wire.read_response()
    assert [h for h in seen[0]["headers"] if h[0] == b"host"] == [(b"host", b"t")]
    assert [h for h in seen[1]["headers"] if h[0] == b"host"] == [(b"host", b"example.org")]


def test_a_clients_forwarded_is_ignored_unless_that_family_is_trusted(serve: Any) -> None:
    """HAProxy and nginx pass a client's Forwarded through: by default only X-Forwarded-* count."""
    app, seen = scope_recorder()
    request = (
        b"GET / HTTP/1.1\r\nHost: t\r\nForwarded: for=6.6.6.6;proto=https\r\n"
        b"X-Forwarded-For: 198.51.100.1\r\n\r\n"
    )
    for server in (serve(app), serve(app, proxy_headers_family="forwarded")):
        with Wire(server.port) as wire:
            wire.send(request)
            wire.read_response()
    assert (seen[0]["client"], seen[0]["scheme"]) == (("198.51.100.1", 0), "http")
    assert (seen[1]["client"], seen[1]["scheme"]) == (("6.6.6.6", 0), "https")


def test_pathsend(serve: Any, tmp_path: Path) -> None:
    data = os.urandom(200_000)
    path = tmp_path / "file.bin"
    path.write_bytes(data)
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": str(path)})

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(GET)
        resp = wire.read_response()
        assert resp.header(b"content-length") == b"200000"
        assert resp.body == data
        wire.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        assert wire.read_response(head_request=True).header(b"content-length") == b"200000"
        wire.send(GET)
        assert wire.read_response().body == data
    assert "http.response.pathsend" in seen[0]["extensions"]


def test_websocket_upgrade_is_handed_off(serve: Any) -> None:
    from websockets.sync.client import connect

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            message = await receive()
            await send({"type": "websocket.send", "text": "echo:" + message["text"]})
            await send({"type": "websocket.close"})
        else:
            await simple()(scope, receive, send)

    server = serve(app)
    with connect(f"ws://127.0.0.1:{server.port}/ws", open_timeout=5) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "echo:hi"
    assert (
        status_of(exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"))
        == 200
    )


def test_non_websocket_upgrade_is_served_as_http_then_closed(serve: Any) -> None:
    server = serve(hello)
    with Wire(server.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n")
        resp = wire.read_response()
        assert resp.status == 200 and resp.header(b"connection") == b"close"
        assert wire.closed()


def test_closed_connections_are_freed_without_the_cyclic_gc(serve: Any) -> None:
    """A connection's objects (protocol, parser, app host and its task) must not form a reference
    cycle once it is closed: each would wait for the cyclic GC, whose collections then run every
    few dozen connections (a full one walks the whole heap of a big app)."""
    import gc

    server = serve(hello)
    close = b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    assert status_of(exchange(server.port, close)) == 200  # whatever is made once, made now
    wait_for(lambda: not server.stats.connections)
    gc.collect()
    gc.disable()
    try:
        for _ in range(40):
            assert status_of(exchange(server.port, close)) == 200
        with Wire(server.port) as wire:  # and a keep-alive one, closed by the client
            for _ in range(3):
                wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n")
                assert wire.read_response().status == 200
        wait_for(lambda: not server.stats.connections)
        time.sleep(0.05)  # the host tasks' last steps
        unreachable = gc.collect()
    finally:
        gc.enable()
    assert unreachable < 41, f"{unreachable} objects left in cycles by 41 connections"
