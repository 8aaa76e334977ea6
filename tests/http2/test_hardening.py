"""HTTP/2 defences: each known attack answered with the RFC's error and counted in the stats
(`rejected`, label h2_*), never a crashed worker; graceful stop; a soak on one connection."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable

from aioprefork.http.h2 import frames as f

from .apps import app
from .conftest import ServerThread
from .h2wire import DEFAULT_REQUEST, Closed, Frame, RawH2
from .test_conformance import req, u32


def _rejected(server: ServerThread, label: str) -> int:
    return int(server.call(lambda: server.stats.rejected.get(label, 0)))


def test_rapid_reset(serve: Callable[..., ServerThread]) -> None:
    """CVE-2023-44487: streams opened and reset at once -> GOAWAY ENHANCE_YOUR_CALM."""
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        burst = b""
        for i in range(400):
            sid = 1 + 2 * i
            burst += f.frame(
                f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, client.block(req(b"/wait"))
            )
            burst += f.frame(f.RST_STREAM, 0, sid, u32(f.CANCEL))
        client.send(burst)
        client.expect_goaway(f.ENHANCE_YOUR_CALM)
    assert _rejected(server, "h2_rapid_reset") == 1


def test_continuation_flood_frames(serve: Callable[..., ServerThread]) -> None:
    """CVE-2024-27316: endless CONTINUATION frames -> GOAWAY ENHANCE_YOUR_CALM, bounded memory."""
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.frame(f.HEADERS, 0, 1, client.block(DEFAULT_REQUEST))
        flood = f.frame(f.CONTINUATION, 0, 1, client.block([(b"x-a", b"b")]))
        client.send(flood * 100)
        client.expect_goaway(f.ENHANCE_YOUR_CALM)
    assert _rejected(server, "h2_continuation_flood") == 1


def test_continuation_flood_bytes(serve: Callable[..., ServerThread]) -> None:
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.frame(f.HEADERS, 0, 1, client.block(DEFAULT_REQUEST))
        for _ in range(6):
            client.frame(f.CONTINUATION, 0, 1, b"\x00" * 16384)
        client.expect_goaway(f.ENHANCE_YOUR_CALM)
    assert _rejected(server, "h2_continuation_flood") == 1


def test_hpack_bomb(serve: Callable[..., ServerThread]) -> None:
    """One big table entry referenced again and again: 431, the connection lives on."""
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        entry = (b"x-bomb", b"b" * 4000)
        first = client.block([*DEFAULT_REQUEST, entry])
        client.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, first)
        assert client.response(1)[0][b":status"] == b"200"
        bomb = client.block([*DEFAULT_REQUEST] + [entry] * 1000)  # ~1 byte per 4 KB field
        assert len(bomb) < 16384
        client.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 3, bomb)
        assert client.response(3)[0][b":status"] == b"431"
        client.headers(5, DEFAULT_REQUEST)
        assert client.response(5)[0][b":status"] == b"200"
    assert _rejected(server, "h2_header_list_too_large") == 1


def test_ping_flood(serve: Callable[..., ServerThread]) -> None:
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.send(f.ping(b"12345678", False) * 300)
        client.expect_goaway(f.ENHANCE_YOUR_CALM)
    assert _rejected(server, "h2_ping_flood") == 1


def test_settings_flood(serve: Callable[..., ServerThread]) -> None:
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.send(f.settings([(f.HEADER_TABLE_SIZE, 4096)]) * 300)
        client.expect_goaway(f.ENHANCE_YOUR_CALM)
    assert _rejected(server, "h2_settings_flood") == 1


def test_empty_data_flood(serve: Callable[..., ServerThread]) -> None:
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.headers(1, req(b"/echo", b"POST"), end_stream=False)
        client.send(f.frame(f.DATA, 0, 1) * 400)
        client.expect_goaway(f.ENHANCE_YOUR_CALM)
    assert _rejected(server, "h2_empty_frames") == 1


def test_zero_window_stall_resets_the_stream(serve: Callable[..., ServerThread]) -> None:
    """A client that never opens its window: the stream is reset after write_timeout."""
    server = serve(app, write_timeout=1.0)
    with RawH2(server.port) as client:
        client.handshake([(f.INITIAL_WINDOW_SIZE, 0)])
        client.headers(1, req(b"/big"))
        started = time.monotonic()
        client.expect_rst(1, f.CANCEL, timeout=10)
        assert 0.8 < time.monotonic() - started < 8
        client.ping_roundtrip()  # the connection itself is fine
    assert _rejected(server, "h2_send_timeout") == 1


def test_stream_id_abuse_counted(serve: Callable[..., ServerThread]) -> None:
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.headers(2, DEFAULT_REQUEST)
        client.expect_goaway(f.PROTOCOL_ERROR)
    assert _rejected(server, "h2_protocol") == 1


def test_malformed_requests_counted(serve: Callable[..., ServerThread]) -> None:
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        client.headers(1, [*DEFAULT_REQUEST, (b"connection", b"close")])
        client.expect_rst(1, f.PROTOCOL_ERROR)
        client.headers(3, DEFAULT_REQUEST)
        assert client.response(3)[1] == b"hello"
    assert _rejected(server, "h2_malformed") == 1


def test_graceful_stop(serve: Callable[..., ServerThread]) -> None:
    """Two GOAWAYs (2^31-1 with a PING, then the last stream id once the PING is back): streams
    sent before the client saw the first are served, the one in flight finishes, none after
    the second starts."""
    server = serve(app)
    seen: list[tuple[Frame, dict[bytes, bytes]]] = []

    def until(client: RawH2, stop: Callable[[Frame], bool]) -> Frame:
        while True:
            frame = client.read()
            fields: dict[bytes, bytes] = {}
            if frame.kind == f.HEADERS:  # decoded in order: the HPACK state must follow
                fields = {
                    bytes(n): bytes(v) for n, v in client.decoder.decode(frame.payload, raw=True)
                }
            seen.append((frame, fields))
            if stop(frame):
                return frame

    with RawH2(server.port) as client:
        client.handshake()
        client.headers(1, req(b"/wait"))
        time.sleep(0.2)
        assert server.server is not None
        stopper = threading.Thread(
            target=lambda: server.call(lambda: server.server.shutdown(time.time() + 10), 15)  # type: ignore[union-attr]
        )
        stopper.start()
        first = until(client, lambda frame: frame.kind == f.GOAWAY)
        assert first.error_code == f.NO_ERROR
        assert int.from_bytes(first.payload[:4], "big") == 2**31 - 1
        client.headers(3, DEFAULT_REQUEST)  # sent before the client saw the PING: served
        ping = until(client, lambda frame: frame.kind == f.PING)
        client.frame(f.PING, f.ACK, 0, ping.payload)
        final = until(client, lambda frame: frame.kind == f.GOAWAY)
        assert final.error_code == f.NO_ERROR
        assert int.from_bytes(final.payload[:4], "big") == 3
        client.headers(5, DEFAULT_REQUEST)  # after the last GOAWAY: never processed
        with contextlib.suppress(Closed, TimeoutError):
            until(client, lambda frame: False)
        stopper.join(15)
    assert not stopper.is_alive()
    statuses = {frame.sid: fields.get(b":status") for frame, fields in seen if fields}
    assert statuses == {1: b"200", 3: b"200"}, seen
    ends = {frame.sid for frame, _ in seen if frame.kind == f.DATA and frame.flags & f.END_STREAM}
    assert ends == {1, 3}


def _rss_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4


def test_soak_one_connection_many_streams(h2server: ServerThread) -> None:
    """20,000 streams on one connection (bench/h2_soak.py runs 1,000,000): no error, no growth."""
    with RawH2(h2server.port, timeout=20) as client:
        client.handshake()
        client.frame(f.WINDOW_UPDATE, 0, 0, u32(2**30))  # 100 KB of bodies: past 64 KiB
        sid = 1
        rss_after_warmup = 0
        for batch in range(200):
            burst = b""
            first = sid
            for _ in range(100):
                burst += f.frame(
                    f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, client.block(DEFAULT_REQUEST)
                )
                sid += 2
            client.send(burst)
            done = 0
            while done < 100:
                frame = client.read()
                assert frame.kind not in (f.GOAWAY, f.RST_STREAM), frame
                if frame.kind == f.DATA and frame.flags & f.END_STREAM:
                    assert first <= frame.sid < sid
                    done += 1
            if batch == 50:
                rss_after_warmup = _rss_kib()
        assert sid == 1 + 2 * 20_000
        client.ping_roundtrip()
    growth = _rss_kib() - rss_after_warmup
    assert growth < 8 * 1024, f"RSS grew by {growth} KiB over 15,000 streams"
    open_streams = h2server.call(lambda: h2server.stats.h2_streams)
    assert open_streams == 0


def test_load_counts_a_connection_by_its_streams(serve: Callable[..., ServerThread]) -> None:
    """The balance between workers sees an HTTP/2 connection as its open streams (at least 1);
    the status frame reports them (the scoreboard's open streams)."""
    server = serve(app)
    with RawH2(server.port) as client:
        client.handshake()
        assert server.call(lambda: server.stats.load) == 1
        for sid in (1, 3, 5, 7, 9):
            client.headers(sid, req(b"/wait"))
        deadline = time.monotonic() + 5
        while server.call(lambda: server.stats.h2_streams) < 5 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.call(lambda: server.stats.load) == 5
        status = server.call(lambda: server.stats.status(accepting=True, loop_lag=0.0, rss=0))
        assert status.streams == 5
        for sid in (1, 3, 5, 7, 9):
            client.response(sid)
        status = server.call(lambda: server.stats.status(accepting=True, loop_lag=0.0, rss=0))
        assert status.h2_requests_total == 5 and status.streams == 0


def test_body_timeout(serve: Callable[..., ServerThread]) -> None:
    """A request body that stops arriving: the stream is reset after body_timeout."""
    server = serve(app, body_timeout=1.0)
    with RawH2(server.port) as client:
        client.handshake()
        client.headers(1, req(b"/echo", b"POST"), end_stream=False)
        client.data(1, b"abc", end_stream=False)
        started = time.monotonic()
        client.expect_rst(1, f.CANCEL, timeout=10)
        assert 0.8 < time.monotonic() - started < 8
    assert _rejected(server, "body_timeout") == 1
