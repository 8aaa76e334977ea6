"""Limits, timeouts and back-pressure (HttpLimits), over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
import time
from typing import Any

import pytest
from support.http_wire import Wire, echo, exchange, simple, status_of, wait_for

from examples.hello import app as hello

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def body_reader(events: list[str]) -> Any:
    """An app that reads the body to its end or to the disconnect, noting each message's type."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while True:
            message = await receive()
            events.append(message["type"])
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                return

    return app


def test_request_line_too_long_is_414(serve: Any) -> None:
    server = serve(hello, limit_request_line=100)
    raw = exchange(server.port, b"GET /" + b"a" * 200 + b" HTTP/1.1\r\nHost: t\r\n\r\n")
    assert status_of(raw) == 414
    assert server.stats.rejected == {"uri_too_long": 1}


def test_too_many_headers_is_431(serve: Any) -> None:
    server = serve(hello, limit_request_fields=5)
    headers = b"".join(b"X-%d: v\r\n" % i for i in range(5))
    raw = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\n" + headers + b"\r\n")
    assert status_of(raw) == 431
    ok = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert status_of(ok) == 200


def test_header_field_too_large_is_431(serve: Any) -> None:
    server = serve(hello, limit_request_field_size=100)
    raw = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"v" * 200 + b"\r\n\r\n")
    assert status_of(raw) == 431


def test_unterminated_head_is_cut_at_the_head_limit(serve: Any) -> None:
    server = serve(
        hello, limit_request_line=64, limit_request_fields=2, limit_request_field_size=64
    )
    with Wire(server.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: t\r\nX: ")
        for _ in range(10):
            try:
                wire.send(b"a" * 100)
            except OSError:
                break
            time.sleep(0.01)
        raw = wire.read_all()
    assert status_of(raw) == 431


def test_content_length_above_limit_is_413_before_the_body(serve: Any) -> None:
    server = serve(echo, limit_request_body=10)
    raw = exchange(server.port, b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 11\r\n\r\n")
    assert status_of(raw) == 413


def test_chunked_body_above_limit_is_413_as_it_streams(serve: Any) -> None:
    events: list[str] = []
    server = serve(body_reader(events), limit_request_body=10)
    with Wire(server.port) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
        time.sleep(0.05)
        wire.send(b"6\r\n world\r\n0\r\n\r\n")
        raw = wire.read_all()
    assert status_of(raw) == 413
    wait_for(lambda: "http.disconnect" in events)


def test_slowloris_is_cut_at_header_timeout(serve: Any) -> None:
    server = serve(hello, header_timeout=0.5)
    request = b"GET / HTTP/1.1\r\nHost: t\r\n" + b"X-Slow: " + b"a" * 100 + b"\r\n\r\n"
    started = time.monotonic()
    with Wire(server.port) as wire:
        raw = b""
        for i in range(len(request)):
            try:
                wire.send(request[i : i + 1])
            except OSError:
                break
            if wire.closed(0.1):
                break
        raw = wire.buf
    elapsed = time.monotonic() - started
    assert elapsed < 2.0
    assert status_of(raw) == 408
    assert server.stats.rejected == {"header_timeout": 1}


def test_idle_fresh_connection_closed_at_header_timeout_without_answer(serve: Any) -> None:
    server = serve(hello, header_timeout=0.3)
    with Wire(server.port) as wire:
        assert wire.closed(3.0)
        assert wire.buf == b""


def test_body_timeout_between_pieces(serve: Any) -> None:
    events: list[str] = []
    server = serve(body_reader(events), body_timeout=0.3)
    with Wire(server.port) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nabc")
        raw = wire.read_all()
    assert status_of(raw) == 408
    wait_for(lambda: events[-1:] == ["http.disconnect"])


def test_keepalive_timeout_closes_idle_connection(serve: Any) -> None:
    server = serve(hello, keepalive_timeout=0.3)
    with Wire(server.port) as wire:
        wire.send(GET)
        assert wire.read_response().status == 200
        started = time.monotonic()
        assert wire.closed(3.0)
        assert 0.2 < time.monotonic() - started < 2.0


def test_max_keepalive_requests(serve: Any) -> None:
    server = serve(hello, max_keepalive_requests=2)
    with Wire(server.port) as wire:
        wire.send(GET)
        assert not wire.read_response().has(b"connection")
        wire.send(GET)
        assert wire.read_response().header(b"connection") == b"close"
        assert wire.closed()


def _endless_body(outcome: list[str], writing: asyncio.Event) -> Any:
    """An app streaming 64 KiB chunks until send() raises; records what it raised."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        chunk = b"x" * 65536
        try:
            for _ in range(2000):
                writing.set()
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except OSError as exc:
            outcome.append(type(exc).__name__)
            raise

    return app


def _slow_reader(port: int) -> socket.socket:
    """A client with a tiny receive buffer that reads nothing (the server's writes back up)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    return sock


def test_write_timeout_for_a_client_that_never_reads(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    outcome: list[str] = []
    server = serve(_endless_body(outcome, asyncio.Event()), write_timeout=0.5)
    sock = _slow_reader(server.port)
    try:
        with caplog.at_level(logging.DEBUG, logger="aioprefork"):
            sock.sendall(GET)
            wait_for(lambda: bool(outcome), timeout=10)
            assert outcome == ["ClientDisconnected"]  # a disconnect, as the app sees it
            wait_for(lambda: server.server.open_connections == 0)
            wait_for(lambda: server.stats.requests_total == 1)
        # any client can stop reading: never an ERROR (and a traceback) in the log
        assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        sock.close()


def test_a_client_gone_while_the_app_waits_to_write_is_a_disconnect_not_an_error(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # Users cancel downloads all the time: the app waiting in send() (the transport is above
    # its high-water mark) gets ClientDisconnected, and nothing is logged as an error.
    outcome: list[str] = []
    writing = asyncio.Event()
    server = serve(_endless_body(outcome, writing), write_timeout=30)
    sock = _slow_reader(server.port)
    with caplog.at_level(logging.DEBUG, logger="aioprefork"):
        try:
            sock.sendall(GET)
            wait_for(writing.is_set)
            time.sleep(0.2)  # the app is now parked on a full transport
        finally:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            sock.close()  # a reset, as a cancelled download often is
        wait_for(lambda: bool(outcome), timeout=10)
        wait_for(lambda: server.stats.requests_total == 1)
    assert outcome == ["ClientDisconnected"]
    assert [r.levelno for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_upload_pauses_reading_until_the_app_reads(serve: Any) -> None:
    gate = asyncio.Event()
    got: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await gate.wait()
        total = 0
        while True:
            message = await receive()
            total += len(message["body"])
            if not message["more_body"]:
                break
        got.append(total)
        await simple(body=b"%d" % total)(scope, receive, send)

    server = serve(app, high_water=16384)
    size = 4 * 1024 * 1024
    with Wire(server.port, timeout=10) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % size)
        wire.sock.setblocking(False)
        sent = 0
        try:
            while sent < size:
                sent += wire.sock.send(b"z" * min(65536, size - sent))
        except BlockingIOError:
            pass
        assert sent < size  # the server stopped reading: the client's writes back up

        def paused() -> Any:
            return [(c.phase, c.flow.read_paused) for c in server.server.stats.connections]

        wait_for(lambda: server.call(paused) == [("active", True)])
        server.call(gate.set)
        wire.sock.setblocking(True)
        wire.sock.sendall(b"z" * (size - sent))
        assert wire.read_response().body == b"%d" % size
    assert got == [size]


def test_pipelined_request_pauses_reading_while_the_first_runs(serve: Any) -> None:
    gate = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/wait":
            await gate.wait()
        await simple(body=scope["path"].encode())(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(b"GET /wait HTTP/1.1\r\nHost: t\r\n\r\nGET /next HTTP/1.1\r\nHost: t\r\n\r\n")

        def paused() -> bool:
            conns = list(server.server.stats.connections)
            return bool(conns) and bool(conns[0].flow.read_paused)

        wait_for(lambda: server.call(paused))
        server.call(gate.set)
        assert wire.read_response().body == b"/wait"
        assert wire.read_response().body == b"/next"

        def resumed() -> bool:
            return not next(iter(server.server.stats.connections)).flow.read_paused

        wait_for(lambda: server.call(resumed))


def test_early_response_to_an_unread_upload_reaches_the_client(serve: Any) -> None:
    server = serve(simple(status=413, body=b"too big"))
    with Wire(server.port) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\n\r\n")
        wire.send(b"x" * 200_000)
        resp = wire.read_response()
        assert resp.status == 413 and resp.header(b"connection") == b"close"
        with contextlib.suppress(OSError):
            wire.send(b"x" * 200_000)  # still sending: drained, not reset, until the close
        assert wire.closed()


def test_pipelining_client_that_never_reads_is_not_answered_without_bound(serve: Any) -> None:
    big = b"y" * 256 * 1024

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await simple(body=big)(scope, receive, send)

    server = serve(app)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", server.port))
    try:
        sock.setblocking(False)
        request = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
        for _ in range(200):
            try:
                sock.send(request * 10)
            except BlockingIOError:
                break
        time.sleep(0.5)
        answered = server.stats.requests_total
        assert answered < 60  # the rest wait, unparsed, until the client reads
        sizes = server.call(
            lambda: [c.transport.get_write_buffer_size() for c in server.server.stats.connections]
        )
        assert max(sizes) < 4 * len(big)
    finally:
        sock.close()


# --- minimum data rates (RequestReadTimeout MinRate) and stalled readers ----------------------


def _trickle(wire: Wire, data: bytes, piece: int, every: float, limit: float) -> float:
    """Send `data` `piece` bytes every `every` seconds until it is sent or the server closes;
    seconds it took."""
    started = time.monotonic()
    for i in range(0, len(data), piece):
        try:
            wire.send(data[i : i + piece])
        except OSError:
            break
        if wire.closed(every) or time.monotonic() - started > limit:
            break
    return time.monotonic() - started


def test_a_head_below_its_minimum_rate_is_cut_after_the_grace(serve: Any) -> None:
    # header_timeout alone (20 s) let 10 bytes per 10 s hold a connection for its whole length
    server = serve(hello, header_timeout=20, min_rate_grace=0.5, header_min_rate=100)
    request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    with Wire(server.port) as wire:
        elapsed = _trickle(wire, request, 2, 0.1, limit=10)  # ~20 bytes/s
        raw = wire.buf
    assert status_of(raw) == 408 and elapsed < 4.0
    assert server.stats.rejected == {"header_timeout": 1}


def test_a_head_at_its_minimum_rate_is_served(serve: Any) -> None:
    server = serve(hello, header_timeout=20, min_rate_grace=0.5, header_min_rate=100)
    request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 600 + b"\r\n\r\n"
    with Wire(server.port) as wire:
        elapsed = _trickle(wire, request, 60, 0.1, limit=10)  # ~600 bytes/s for ~1 s
        assert wire.read_response().status == 200
    assert elapsed > 0.6  # it did span the grace


def test_a_body_below_its_minimum_rate_is_cut_after_the_grace(serve: Any) -> None:
    # body_timeout is a gap between pieces: 1 byte per 0.1 s kept the slot for ever
    events: list[str] = []
    server = serve(body_reader(events), body_timeout=5, min_rate_grace=0.5, body_min_rate=100)
    with Wire(server.port) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        elapsed = _trickle(wire, b"b" * 1000, 1, 0.1, limit=10)
        raw = wire.read_all()
    assert status_of(raw) == 408 and elapsed < 4.0
    wait_for(lambda: events[-1:] == ["http.disconnect"])


def test_a_body_at_its_minimum_rate_is_read(serve: Any) -> None:
    server = serve(echo, body_timeout=5, min_rate_grace=0.5, body_min_rate=100)
    body = b"b" * 600
    with Wire(server.port) as wire:
        wire.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 600\r\n\r\n")
        _trickle(wire, body, 60, 0.1, limit=10)
        assert wire.read_response().body == body


def test_a_reader_below_the_minimum_send_rate_is_cut(serve: Any) -> None:
    outcome: list[str] = []
    server = serve(
        _endless_body(outcome, asyncio.Event()),
        write_timeout=60,
        min_rate_grace=0.5,
        send_min_rate=100_000,
    )
    sock = _slow_reader(server.port)
    try:
        sock.sendall(GET)
        started = time.monotonic()
        wait_for(lambda: bool(outcome), timeout=10)
        # due: grace 0.5 s + (~128 KiB buffered - low water) / 100 KB/s, checked once a second;
        # write_timeout (60 s) alone let it hold the slot for a minute per response
        assert time.monotonic() - started < 8
        assert outcome == ["ClientDisconnected"]
        assert server.stats.shed == {"send_rate": 1}
    finally:
        sock.close()


def test_stalled_readers_are_held_to_the_worker_budget(serve: Any) -> None:
    # 6 MiB in one write: what the kernel's send buffer (a few MiB on loopback) does not take
    # stays in the transport, per client that stopped reading
    big = b"x" * (6 * 1024 * 1024)
    budget = 4 * 1024 * 1024

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await simple(body=big)(scope, receive, send)

    server = serve(app, stalled_write_budget=budget)
    readers = [_slow_reader(server.port) for _ in range(6)]
    try:
        for sock in readers:
            sock.sendall(GET)
        wait_for(lambda: server.stats.requests_total == 6, timeout=10)
        wait_for(lambda: server.stats.shed.get("stalled_budget", 0) >= 3)
        stalled = server.call(lambda: server.server._shared.stalled_bytes)
        assert stalled <= budget
        buffered = server.call(
            lambda: sum(c.transport.get_write_buffer_size() for c in server.server._connections)
        )
        assert buffered <= budget
    finally:
        for sock in readers:
            sock.close()
