"""HTTP/2 conformance, h2spec's case groups (RFC 9113 sections 3-8, RFC 7541), over raw frames.

Each case opens a connection to a real server, does the handshake, sends exact frames and
asserts the error the RFC requires: `expect_goaway(code)` for a connection error,
`expect_rst(sid, code)` for a stream error, `expect_error(code, sid)` where the RFC allows
either (h2spec's rule). Cases that must NOT fail end with a PING round trip or a response.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest

from aioprefork.http.h2 import frames as f

from .conftest import ServerThread
from .h2wire import DEFAULT_REQUEST, Closed, RawH2

GET = DEFAULT_REQUEST


def req(
    path: bytes = b"/", method: bytes = b"GET", *extra: tuple[bytes, bytes]
) -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method),
        (b":scheme", b"http"),
        (b":path", path),
        (b":authority", b"localhost"),
        *extra,
    ]


def post(path: bytes = b"/echo", *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return req(path, b"POST", *extra)


def u32(value: int) -> bytes:
    return struct.pack(">L", value)


def settings_payload(*pairs: tuple[int, int]) -> bytes:
    return b"".join(struct.pack(">HL", i, v) for i, v in pairs)


def closed_by_server(c: RawH2) -> None:
    """The server ends the connection (a GOAWAY first, if any)."""
    with pytest.raises(Closed):
        while True:
            c.read(5)


# --- 3: starting HTTP/2 -------------------------------------------------------------------------


def c3_settings_first(c: RawH2) -> None:
    """3.4: the server's first frame is SETTINGS (handshake asserts it) and it ACKs ours."""
    while True:
        frame = c.read()
        if frame.kind == f.SETTINGS and frame.flags & f.ACK:
            return


def c3_first_frame_not_settings(c: RawH2) -> None:
    """3.4: a client preface not followed by SETTINGS -> PROTOCOL_ERROR."""
    c.send(f.PREFACE + f.ping(b"12345678", False))
    c.read()  # the server's SETTINGS
    c.expect_goaway(f.PROTOCOL_ERROR)


# --- 4: frames ----------------------------------------------------------------------------------


def c4_unknown_type(c: RawH2) -> None:
    c.frame(0x16, 0, 0, b"ignored")
    c.ping_roundtrip()


def c4_unknown_flags(c: RawH2) -> None:
    c.frame(f.PING, 0x16 & ~f.ACK, 0, b"12345678")
    frame = c.read()
    while frame.kind != f.PING:
        frame = c.read()
    assert frame.flags & f.ACK


def c4_reserved_bit(c: RawH2) -> None:
    block = c.block(GET)
    c.send(f.head_of(len(block), f.HEADERS, 5, 1 | 0x80000000) + block)
    headers, _ = c.response(1)
    assert headers[b":status"] == b"200"


def c4_data_max_size(c: RawH2) -> None:
    c.headers(1, post(b"/count"), end_stream=False)
    c.data(1, b"x" * 16384)
    _, body = c.response(1)
    assert body == b"16384"


def c4_data_too_large(c: RawH2) -> None:
    c.headers(1, post(), end_stream=False)
    c.send(f.head_of(16385, f.DATA, f.END_STREAM, 1) + b"x" * 16385)
    c.expect_error(f.FRAME_SIZE_ERROR, 1)


def c4_headers_too_large(c: RawH2) -> None:
    block = c.block(GET)
    c.send(
        f.head_of(16385, f.HEADERS, f.END_HEADERS | f.END_STREAM, 1)
        + block
        + b"\0" * (16385 - len(block))
    )
    c.expect_goaway(f.FRAME_SIZE_ERROR)


def c4_bad_header_block(c: RawH2) -> None:
    c.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, b"\xff\xff\xff\xff")
    c.expect_goaway(f.COMPRESSION_ERROR)


# --- 5.1: stream states -------------------------------------------------------------------------


def c5_idle_data(c: RawH2) -> None:
    c.data(1, b"x")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_idle_rst(c: RawH2) -> None:
    c.frame(f.RST_STREAM, 0, 1, u32(f.CANCEL))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_idle_window_update(c: RawH2) -> None:
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(100))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_idle_continuation(c: RawH2) -> None:
    c.frame(f.CONTINUATION, f.END_HEADERS, 1, c.block(GET))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_half_closed_data(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.data(1, b"x")
    c.expect_error(f.STREAM_CLOSED, 1)


def c5_half_closed_headers(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.headers(1, req(b"/wait"))
    c.expect_error(f.STREAM_CLOSED, 1)


def c5_half_closed_window_update_ok(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(100))
    headers, _ = c.response(1)
    assert headers[b":status"] == b"200"


def c5_closed_data_after_rst(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.frame(f.RST_STREAM, 0, 1, u32(f.CANCEL))
    c.data(1, b"x")
    c.expect_error(f.STREAM_CLOSED, 1)


def c5_closed_headers_after_rst(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.frame(f.RST_STREAM, 0, 1, u32(f.CANCEL))
    c.headers(1, GET)
    c.expect_error(f.STREAM_CLOSED, 1)


def c5_closed_data(c: RawH2) -> None:
    c.headers(1, GET)
    c.response(1)
    c.data(1, b"x")
    c.expect_goaway(f.STREAM_CLOSED)


def c5_closed_headers(c: RawH2) -> None:
    c.headers(1, GET)
    c.response(1)
    c.headers(1, GET)
    c.expect_goaway(f.STREAM_CLOSED)


def c5_closed_window_update_ok(c: RawH2) -> None:
    c.headers(1, GET)
    c.response(1)
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(1))
    c.frame(f.PRIORITY, 0, 1, u32(0) + b"\x10")
    c.ping_roundtrip()


def c5_even_stream(c: RawH2) -> None:
    c.headers(2, GET)
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_decreasing_stream(c: RawH2) -> None:
    c.headers(5, GET)
    c.response(5)
    c.headers(3, GET)
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_concurrency(c: RawH2) -> None:
    limit = c.server_settings[f.MAX_CONCURRENT_STREAMS]
    for i in range(limit + 1):
        c.headers(1 + 2 * i, req(b"/wait"))
    c.expect_rst(1 + 2 * limit, f.REFUSED_STREAM)


def c5_self_dependency_headers(c: RawH2) -> None:
    c.frame(
        f.HEADERS,
        f.END_HEADERS | f.END_STREAM | f.PRIORITY_FLAG,
        1,
        u32(1) + b"\x10" + c.block(GET),
    )
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c5_self_dependency_priority(c: RawH2) -> None:
    c.frame(f.PRIORITY, 0, 1, u32(1) + b"\x10")
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c5_unknown_frame_in_block(c: RawH2) -> None:
    c.frame(f.HEADERS, f.END_STREAM, 1, c.block(GET))
    c.frame(0x16, 0, 1, b"x")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c5_goaway_then_close(c: RawH2) -> None:
    c.frame(f.GOAWAY, 0, 0, u32(0) + u32(0))
    closed_by_server(c)


# --- 6.1 DATA -----------------------------------------------------------------------------------


def c6_data_stream0(c: RawH2) -> None:
    c.data(0, b"x")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_data_bad_padding(c: RawH2) -> None:
    c.headers(1, post(), end_stream=False)
    c.frame(f.DATA, f.PADDED | f.END_STREAM, 1, b"\x06abc")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_data_padded_ok(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.frame(f.DATA, f.PADDED | f.END_STREAM, 1, b"\x03abc\0\0\0")
    assert c.response(1)[1] == b"abc"


# --- 6.2 HEADERS --------------------------------------------------------------------------------


def c6_headers_then_priority(c: RawH2) -> None:
    c.frame(f.HEADERS, f.END_STREAM, 1, c.block(GET))
    c.frame(f.PRIORITY, 0, 1, u32(0) + b"\x10")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_headers_then_other_stream(c: RawH2) -> None:
    c.frame(f.HEADERS, f.END_STREAM, 1, c.block(GET))
    c.headers(3, GET)
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_headers_stream0(c: RawH2) -> None:
    c.headers(0, GET)
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_headers_bad_padding(c: RawH2) -> None:
    block = c.block(GET)
    c.frame(f.HEADERS, f.PADDED | f.END_HEADERS | f.END_STREAM, 1, bytes([len(block) + 1]) + block)
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_headers_padded_priority_ok(c: RawH2) -> None:
    block = c.block(GET)
    flags = f.PADDED | f.PRIORITY_FLAG | f.END_HEADERS | f.END_STREAM
    c.frame(f.HEADERS, flags, 1, b"\x02" + u32(0) + b"\x10" + block + b"\0\0")
    assert c.response(1)[0][b":status"] == b"200"


# --- 6.3 PRIORITY -------------------------------------------------------------------------------


def c6_priority_stream0(c: RawH2) -> None:
    c.frame(f.PRIORITY, 0, 0, u32(1) + b"\x10")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_priority_bad_length(c: RawH2) -> None:
    c.frame(f.PRIORITY, 0, 1, u32(0))
    c.expect_error(f.FRAME_SIZE_ERROR, 1)


def c6_priority_idle_ok(c: RawH2) -> None:
    c.frame(f.PRIORITY, 0, 3, u32(0) + b"\x10")
    c.headers(1, GET)
    assert c.response(1)[0][b":status"] == b"200"


# --- 6.4 RST_STREAM -----------------------------------------------------------------------------


def c6_rst_stream0(c: RawH2) -> None:
    c.frame(f.RST_STREAM, 0, 0, u32(f.CANCEL))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_rst_bad_length(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.frame(f.RST_STREAM, 0, 1, b"\0\0\0")
    c.expect_goaway(f.FRAME_SIZE_ERROR)


# --- 6.5 SETTINGS -------------------------------------------------------------------------------


def c6_settings_ack_payload(c: RawH2) -> None:
    c.frame(f.SETTINGS, f.ACK, 0, b"\0" * 6)
    c.expect_goaway(f.FRAME_SIZE_ERROR)


def c6_settings_on_stream(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 1, b"")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_settings_bad_length(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 0, b"\0\0\0")
    c.expect_goaway(f.FRAME_SIZE_ERROR)


def c6_settings_enable_push(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.ENABLE_PUSH, 2)))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_settings_window_too_large(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.INITIAL_WINDOW_SIZE, 2**31)))
    c.expect_goaway(f.FLOW_CONTROL_ERROR)


def c6_settings_frame_too_small(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.MAX_FRAME_SIZE, 16383)))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_settings_frame_too_large(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.MAX_FRAME_SIZE, 2**24)))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_settings_unknown_ok(c: RawH2) -> None:
    c.frame(f.SETTINGS, 0, 0, settings_payload((0xFF, 1)))
    while True:
        frame = c.read()
        if frame.kind == f.SETTINGS and frame.flags & f.ACK:
            break
    c.ping_roundtrip()


def c6_settings_window_overflow(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(2**31 - 1 - 65535))
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.INITIAL_WINDOW_SIZE, 65536)))
    c.expect_goaway(f.FLOW_CONTROL_ERROR)


def c6_settings_zero_window(c: RawH2) -> None:
    """6.9.2: initial window 0 -> HEADERS only; a WINDOW_UPDATE lets the DATA out."""
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.INITIAL_WINDOW_SIZE, 0)))
    c.headers(1, GET)
    frame = c.read()
    while frame.kind != f.HEADERS:
        frame = c.read()
    assert not frame.flags & f.END_STREAM
    with pytest.raises(TimeoutError):
        while True:
            frame = c.read(0.3)
            assert frame.kind != f.DATA
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(5))
    frame = c.read()
    while frame.kind != f.DATA:
        frame = c.read()
    assert frame.payload == b"hello" and frame.flags & f.END_STREAM


def c6_settings_max_frame_respected(c: RawH2) -> None:
    """The server splits DATA at the peer's SETTINGS_MAX_FRAME_SIZE (16384 here)."""
    c.frame(f.WINDOW_UPDATE, 0, 0, u32(1 << 20))
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.INITIAL_WINDOW_SIZE, 1 << 20)))
    c.headers(1, req(b"/big"))
    total = 0
    while True:
        frame = c.read()
        if frame.kind == f.DATA:
            assert len(frame.payload) <= 16384
            total += len(frame.payload)
            if frame.flags & f.END_STREAM:
                break
    assert total == 100 * 1024


# --- 6.7 PING / 6.8 GOAWAY ----------------------------------------------------------------------


def c6_ping_ack(c: RawH2) -> None:
    c.ping_roundtrip()


def c6_ping_ack_not_answered(c: RawH2) -> None:
    c.frame(f.PING, f.ACK, 0, b"abcdefgh")
    c.ping_roundtrip()  # the ACK seen is for our own PING, not an answer to the ACK


def c6_ping_on_stream(c: RawH2) -> None:
    c.frame(f.PING, 0, 1, b"12345678")
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_ping_bad_length(c: RawH2) -> None:
    c.frame(f.PING, 0, 0, b"1234567")
    c.expect_goaway(f.FRAME_SIZE_ERROR)


def c6_goaway_on_stream(c: RawH2) -> None:
    c.frame(f.GOAWAY, 0, 1, u32(0) + u32(0))
    c.expect_goaway(f.PROTOCOL_ERROR)


# --- 6.9 WINDOW_UPDATE --------------------------------------------------------------------------


def c6_window_zero_connection(c: RawH2) -> None:
    c.frame(f.WINDOW_UPDATE, 0, 0, u32(0))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_window_zero_stream(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(0))
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c6_window_bad_length(c: RawH2) -> None:
    c.frame(f.WINDOW_UPDATE, 0, 0, b"\0\0\1")
    c.expect_goaway(f.FRAME_SIZE_ERROR)


def c6_window_overflow_connection(c: RawH2) -> None:
    c.frame(f.WINDOW_UPDATE, 0, 0, u32(2**31 - 1))
    c.frame(f.WINDOW_UPDATE, 0, 0, u32(2**31 - 1))
    c.expect_goaway(f.FLOW_CONTROL_ERROR)


def c6_window_overflow_stream(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(2**31 - 1))
    c.expect_error(f.FLOW_CONTROL_ERROR, 1)


def c6_flow_control_violation(c: RawH2) -> None:
    """The client sends more than the stream window the server granted."""
    window = c.server_settings[f.INITIAL_WINDOW_SIZE]
    c.headers(1, post(b"/wait"), end_stream=False)
    sent = 0
    while sent <= window:
        c.data(1, b"x" * 16384, end_stream=False)
        sent += 16384
    c.expect_error(f.FLOW_CONTROL_ERROR, 1)


# --- 6.10 CONTINUATION --------------------------------------------------------------------------


def c6_continuation_ok(c: RawH2) -> None:
    block = c.block(GET)
    c.frame(f.HEADERS, f.END_STREAM, 1, block[:2])
    c.frame(f.CONTINUATION, 0, 1, block[2:4])
    c.frame(f.CONTINUATION, f.END_HEADERS, 1, block[4:])
    assert c.response(1)[0][b":status"] == b"200"


def c6_continuation_after_end_headers(c: RawH2) -> None:
    c.headers(1, req(b"/wait"))
    c.frame(f.CONTINUATION, f.END_HEADERS, 1, c.block([(b"x-a", b"b")]))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_continuation_other_stream(c: RawH2) -> None:
    block = c.block(GET)
    c.frame(f.HEADERS, f.END_STREAM, 1, block[:2])
    c.frame(f.CONTINUATION, f.END_HEADERS, 3, block[2:])
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_continuation_stream0(c: RawH2) -> None:
    block = c.block(GET)
    c.frame(f.HEADERS, f.END_STREAM, 1, block[:2])
    c.frame(f.CONTINUATION, f.END_HEADERS, 0, block[2:])
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_push_promise(c: RawH2) -> None:
    c.frame(f.PUSH_PROMISE, f.END_HEADERS, 1, u32(2) + c.block(GET))
    c.expect_goaway(f.PROTOCOL_ERROR)


# --- 8: HTTP semantics --------------------------------------------------------------------------


def malformed(fields: list[tuple[bytes, bytes]]) -> Callable[[RawH2], None]:
    def case(c: RawH2) -> None:
        c.headers(1, fields)
        c.expect_error(f.PROTOCOL_ERROR, 1)

    return case


def c8_content_length_short(c: RawH2) -> None:
    c.headers(1, post(b"/echo", (b"content-length", b"5")), end_stream=False)
    c.data(1, b"abc")
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c8_content_length_long(c: RawH2) -> None:
    c.headers(1, post(b"/echo", (b"content-length", b"2")), end_stream=False)
    c.data(1, b"abc")
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c8_content_length_multiple_data(c: RawH2) -> None:
    c.headers(1, post(b"/echo", (b"content-length", b"4")), end_stream=False)
    c.data(1, b"ab", end_stream=False)
    c.data(1, b"abc")
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c8_content_length_ok(c: RawH2) -> None:
    c.headers(1, post(b"/echo", (b"content-length", b"3")), end_stream=False)
    c.data(1, b"ab", end_stream=False)
    c.data(1, b"c")
    assert c.response(1)[1] == b"abc"


def c8_trailers_ok(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.data(1, b"abc", end_stream=False)
    c.headers(1, [(b"x-checksum", b"1")])
    assert c.response(1)[1] == b"abc"


def c8_trailers_without_end_stream(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.data(1, b"abc", end_stream=False)
    c.headers(1, [(b"x-checksum", b"1")], end_stream=False)
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c8_trailers_pseudo(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.data(1, b"abc", end_stream=False)
    c.headers(1, [(b":method", b"GET")])
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c8_response_trailers(c: RawH2) -> None:
    c.headers(1, req(b"/trailers", b"GET", (b"te", b"trailers")))
    headers, body = c.response(1)
    assert body == b"data" and headers[b"grpc-status"] == b"0"


def c8_response_trailers_dropped_without_te(c: RawH2) -> None:
    c.headers(1, req(b"/trailers", b"GET"))  # no te: trailers: the stream ends with the body
    headers, body = c.response(1)
    assert body == b"data" and b"grpc-status" not in headers


def c8_head_no_body(c: RawH2) -> None:
    c.headers(1, req(b"/", b"HEAD"))
    headers, body = c.response(1)
    assert headers[b":status"] == b"200" and body == b""


def c8_cookies_joined(c: RawH2) -> None:
    c.headers(1, req(b"/scope", b"GET", (b"cookie", b"a=1"), (b"cookie", b"b=2")))
    _, body = c.response(1)
    assert b"(b'cookie', b'a=1; b=2')" in body
    assert b"'http_version': '2'" in body


def c8_connect_refused(c: RawH2) -> None:
    c.headers(1, [(b":method", b"CONNECT"), (b":authority", b"example.com:443")])
    assert c.response(1)[0][b":status"] == b"501"


def c8_header_list_too_large(c: RawH2) -> None:
    """An oversize header list (an HPACK bomb's result): 431 on the stream, connection lives."""
    big = [(b"x-big-%d" % i, b"v" * 3500) for i in range(20)]
    block = c.block(req(b"/", b"GET", *big))
    c.frame(f.HEADERS, f.END_STREAM, 1, block[:16384])
    for offset in range(16384, len(block), 16384):
        last = f.END_HEADERS if offset + 16384 >= len(block) else 0
        c.frame(f.CONTINUATION, last, 1, block[offset : offset + 16384])
    assert c.response(1)[0][b":status"] == b"431"
    c.headers(3, GET)
    assert c.response(3)[0][b":status"] == b"200"


def c8_too_many_fields(c: RawH2) -> None:
    many = [(b"x-f-%d" % i, b"v") for i in range(150)]
    c.headers(1, req(b"/", b"GET", *many))
    assert c.response(1)[0][b":status"] == b"431"


# --- HPACK (RFC 7541) ---------------------------------------------------------------------------


def hpack_error(block: bytes) -> Callable[[RawH2], None]:
    def case(c: RawH2) -> None:
        c.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, block)
        c.expect_goaway(f.COMPRESSION_ERROR)

    return case


CASES: dict[str, Callable[[RawH2], None]] = {
    "3.4 server settings first, ours acked": c3_settings_first,
    "4.1 unknown frame type ignored": c4_unknown_type,
    "4.1 unknown flags ignored": c4_unknown_flags,
    "4.1 reserved bit ignored": c4_reserved_bit,
    "4.2 DATA of 16384 accepted": c4_data_max_size,
    "4.2 DATA over max frame size": c4_data_too_large,
    "4.2 HEADERS over max frame size": c4_headers_too_large,
    "4.3 undecodable header block": c4_bad_header_block,
    "5.1 idle: DATA": c5_idle_data,
    "5.1 idle: RST_STREAM": c5_idle_rst,
    "5.1 idle: WINDOW_UPDATE": c5_idle_window_update,
    "5.1 idle: CONTINUATION": c5_idle_continuation,
    "5.1 half-closed (remote): DATA": c5_half_closed_data,
    "5.1 half-closed (remote): HEADERS": c5_half_closed_headers,
    "5.1 half-closed (remote): WINDOW_UPDATE ok": c5_half_closed_window_update_ok,
    "5.1 closed: DATA after RST_STREAM": c5_closed_data_after_rst,
    "5.1 closed: HEADERS after RST_STREAM": c5_closed_headers_after_rst,
    "5.1 closed: DATA after END_STREAM": c5_closed_data,
    "5.1 closed: HEADERS after END_STREAM": c5_closed_headers,
    "5.1 closed: WINDOW_UPDATE and PRIORITY ok": c5_closed_window_update_ok,
    "5.1.1 even stream id": c5_even_stream,
    "5.1.1 decreasing stream id": c5_decreasing_stream,
    "5.1.2 over max concurrent streams": c5_concurrency,
    "5.3.1 HEADERS depends on itself": c5_self_dependency_headers,
    "5.3.1 PRIORITY depends on itself": c5_self_dependency_priority,
    "5.5 unknown frame inside a header block": c5_unknown_frame_in_block,
    "5.4.1 client GOAWAY: connection ends": c5_goaway_then_close,
    "6.1 DATA on stream 0": c6_data_stream0,
    "6.1 DATA with bad padding": c6_data_bad_padding,
    "6.1 DATA padded ok": c6_data_padded_ok,
    "6.2 HEADERS then PRIORITY before CONTINUATION": c6_headers_then_priority,
    "6.2 HEADERS then HEADERS on another stream": c6_headers_then_other_stream,
    "6.2 HEADERS on stream 0": c6_headers_stream0,
    "6.2 HEADERS with bad padding": c6_headers_bad_padding,
    "6.2 HEADERS padded with priority ok": c6_headers_padded_priority_ok,
    "6.3 PRIORITY on stream 0": c6_priority_stream0,
    "6.3 PRIORITY of length 4": c6_priority_bad_length,
    "6.3 PRIORITY on an idle stream ok": c6_priority_idle_ok,
    "6.4 RST_STREAM on stream 0": c6_rst_stream0,
    "6.4 RST_STREAM of length 3": c6_rst_bad_length,
    "6.5 SETTINGS ACK with payload": c6_settings_ack_payload,
    "6.5 SETTINGS on a stream": c6_settings_on_stream,
    "6.5 SETTINGS of length 3": c6_settings_bad_length,
    "6.5.2 ENABLE_PUSH 2": c6_settings_enable_push,
    "6.5.2 INITIAL_WINDOW_SIZE 2^31": c6_settings_window_too_large,
    "6.5.2 MAX_FRAME_SIZE 16383": c6_settings_frame_too_small,
    "6.5.2 MAX_FRAME_SIZE 2^24": c6_settings_frame_too_large,
    "6.5.2 unknown setting ignored": c6_settings_unknown_ok,
    "6.9.2 INITIAL_WINDOW_SIZE change overflows a stream": c6_settings_window_overflow,
    "6.9.2 INITIAL_WINDOW_SIZE 0 holds DATA": c6_settings_zero_window,
    "4.2 DATA split at the peer's max frame size": c6_settings_max_frame_respected,
    "6.7 PING acknowledged": c6_ping_ack,
    "6.7 PING ACK not answered": c6_ping_ack_not_answered,
    "6.7 PING on a stream": c6_ping_on_stream,
    "6.7 PING of length 7": c6_ping_bad_length,
    "6.8 GOAWAY on a stream": c6_goaway_on_stream,
    "6.9 WINDOW_UPDATE of 0 on the connection": c6_window_zero_connection,
    "6.9 WINDOW_UPDATE of 0 on a stream": c6_window_zero_stream,
    "6.9 WINDOW_UPDATE of length 3": c6_window_bad_length,
    "6.9.1 connection window over 2^31-1": c6_window_overflow_connection,
    "6.9.1 stream window over 2^31-1": c6_window_overflow_stream,
    "6.9.1 DATA beyond the stream window": c6_flow_control_violation,
    "6.10 CONTINUATION frames ok": c6_continuation_ok,
    "6.10 CONTINUATION after END_HEADERS": c6_continuation_after_end_headers,
    "6.10 CONTINUATION on another stream": c6_continuation_other_stream,
    "6.10 CONTINUATION on stream 0": c6_continuation_stream0,
    "8.4 PUSH_PROMISE from a client": c6_push_promise,
    "8.1.1 content-length above the DATA": c8_content_length_short,
    "8.1.1 content-length below the DATA": c8_content_length_long,
    "8.1.1 content-length vs several DATA": c8_content_length_multiple_data,
    "8.1.1 content-length matching ok": c8_content_length_ok,
    "8.1 request trailers ok": c8_trailers_ok,
    "8.1 trailers without END_STREAM": c8_trailers_without_end_stream,
    "8.1 pseudo-header in trailers": c8_trailers_pseudo,
    "8.1 response trailers (te: trailers)": c8_response_trailers,
    "8.1 response trailers dropped (no te: trailers)": c8_response_trailers_dropped_without_te,
    "8.1 HEAD has no body": c8_head_no_body,
    "8.2.3 cookies joined": c8_cookies_joined,
    "8.5 CONNECT refused with 501": c8_connect_refused,
    "10.5.1 header list too large: 431": c8_header_list_too_large,
    "limit_request_fields: 431": c8_too_many_fields,
    "8.2.1 upper-case field name": malformed([*GET, (b"X-Upper", b"a")]),
    "8.2.1 field name with a space": malformed([*GET, (b"x a", b"a")]),
    "8.2.1 field value with NUL": malformed([*GET, (b"x-a", b"a\0b")]),
    "8.2.1 field value with CR LF": malformed([*GET, (b"x-a", b"a\r\nb")]),
    "8.2.1 field value with leading space": malformed([*GET, (b"x-a", b" a")]),
    "8.2.2 connection field": malformed([*GET, (b"connection", b"keep-alive")]),
    "8.2.2 keep-alive field": malformed([*GET, (b"keep-alive", b"5")]),
    "8.2.2 transfer-encoding field": malformed([*GET, (b"transfer-encoding", b"chunked")]),
    "8.2.2 upgrade field": malformed([*GET, (b"upgrade", b"h2c")]),
    "8.2.2 proxy-connection field": malformed([*GET, (b"proxy-connection", b"x")]),
    "8.2.2 te other than trailers": malformed([*GET, (b"te", b"gzip")]),
    "8.3 unknown pseudo-header": malformed([*GET, (b":foo", b"x")]),
    "8.3 response pseudo-header in a request": malformed([*GET, (b":status", b"200")]),
    "8.3 pseudo-header after a regular field": malformed(
        [(b":method", b"GET"), (b":scheme", b"http"), (b"x-a", b"b"), (b":path", b"/")]
    ),
    "8.3.1 missing :method": malformed([(b":scheme", b"http"), (b":path", b"/")]),
    "8.3.1 missing :scheme": malformed([(b":method", b"GET"), (b":path", b"/")]),
    "8.3.1 missing :path": malformed([(b":method", b"GET"), (b":scheme", b"http")]),
    "8.3.1 empty :path": malformed([(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"")]),
    "8.3.1 :path not absolute": malformed(
        [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"x")]
    ),
    "8.3.1 duplicate :method": malformed([*GET, (b":method", b"GET")]),
    "8.3.1 duplicate :path": malformed([(b":path", b"/"), *GET]),
    "8.3.1 duplicate :scheme": malformed([(b":scheme", b"http"), *GET]),
    "8.3.1 :authority and host differ": malformed([*GET, (b"host", b"other")]),
    "8.1.1 content-length not a number": malformed([*GET, (b"content-length", b"x")]),
    "8.1.1 content-length on a request without body": malformed([*GET, (b"content-length", b"1")]),
    "hpack 2.3.3 index beyond the tables": hpack_error(b"\xff\x80\x01"),
    "hpack 4.2 table size update over the limit": hpack_error(b"\x3f\xe1\xff\x03\x82"),
    "hpack 4.2 table size update after a field": hpack_error(b"\x82\x20"),
    "hpack 5.2 huffman with EOS": hpack_error(b"\x00\x85\xff\xff\xff\xff\xff\x01a"),
    "hpack 5.2 huffman with bad padding": hpack_error(b"\x00\x81\x00\x01a"),
    "hpack 6.1 index 0": hpack_error(b"\x80"),
    "hpack 6.3 truncated integer": hpack_error(b"\x3f"),
    "hpack 5.2 truncated string": hpack_error(b"\x00\x05ab"),
}


@pytest.mark.parametrize("case", list(CASES.values()), ids=list(CASES))
def test_rfc_case(h2server: ServerThread, case: Callable[[RawH2], None]) -> None:
    with RawH2(h2server.port) as client:
        client.handshake()
        case(client)


def test_preface_then_not_settings(h2server: ServerThread) -> None:
    with RawH2(h2server.port) as client:
        c3_first_frame_not_settings(client)


def test_invalid_preface_is_http1_refused(h2server: ServerThread) -> None:
    """3.4: what is not the preface is read as HTTP/1.1: answered 400 and closed."""
    with RawH2(h2server.port) as client:
        client.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n")
        data = client.sock.recv(4096)
        assert data.startswith(b"HTTP/1.1 400")


def test_headers_on_a_peer_reset_stream_still_update_hpack(h2server: ServerThread) -> None:
    """A refused HEADERS block is decoded all the same: the entries it adds are the next
    block's references (an undecoded block corrupted every later request)."""
    with RawH2(h2server.port) as client:
        client.handshake()
        client.headers(1, post(b"/echo"), end_stream=False)
        client.frame(f.RST_STREAM, 0, 1, u32(f.CANCEL))
        client.headers(1, [*GET, (b"x-new-entry", b"added by a refused block")])
        client.expect_rst(1, f.STREAM_CLOSED)
        client.headers(3, req(b"/scope", b"GET", (b"x-new-entry", b"added by a refused block")))
        _, body = client.response(3)
        assert b"(b'x-new-entry', b'added by a refused block')" in body


def test_headers_on_a_stream_we_reset_are_not_a_new_request(h2server: ServerThread) -> None:
    with RawH2(h2server.port) as client:
        client.handshake()
        client.headers(1, [*GET, (b"connection", b"close")])
        client.expect_rst(1, f.PROTOCOL_ERROR)
        client.headers(1, GET)  # in flight when we reset it: dropped
        client.headers(3, GET)
        frames = []
        while True:
            frame = client.read()
            frames.append(frame)
            if frame.sid == 3 and frame.flags & f.END_STREAM:
                break
        assert all(frame.sid != 1 for frame in frames), frames


def test_expect_100_continue(h2server: ServerThread) -> None:
    """8.1: a 100 (Continue) HEADERS comes when the app reads the body, then the final answer."""
    with RawH2(h2server.port) as client:
        client.handshake()
        client.headers(1, post(b"/echo", (b"expect", b"100-continue")), end_stream=False)
        interim = client.read()
        while interim.kind != f.HEADERS:
            interim = client.read()
        assert not interim.flags & f.END_STREAM
        assert client.decoder.decode(interim.payload, raw=True) == [(b":status", b"100")]
        client.data(1, b"body")
        headers, body = client.response(1)
        assert headers[b":status"] == b"200" and body == b"body"


def c6_window_of_one(c: RawH2) -> None:
    """6.9.1: initial window 1 -> one byte of DATA, the rest after WINDOW_UPDATE."""
    c.frame(f.SETTINGS, 0, 0, settings_payload((f.INITIAL_WINDOW_SIZE, 1)))
    c.headers(1, GET)
    frame = c.read()
    while frame.kind != f.DATA:
        frame = c.read()
    assert frame.payload == b"h" and not frame.flags & f.END_STREAM
    c.frame(f.WINDOW_UPDATE, 0, 1, u32(100))
    frame = c.read()
    while frame.kind != f.DATA:
        frame = c.read()
    assert frame.payload == b"ello" and frame.flags & f.END_STREAM


def c6_settings_last_value_wins(c: RawH2) -> None:
    """6.5.3: several values of one setting in a frame: the last one counts."""
    c.frame(
        f.SETTINGS, 0, 0, settings_payload((f.INITIAL_WINDOW_SIZE, 0), (f.INITIAL_WINDOW_SIZE, 3))
    )
    c.headers(1, GET)
    frame = c.read()
    while frame.kind != f.DATA:
        frame = c.read()
    assert frame.payload == b"hel"


def c5_closed_continuation(c: RawH2) -> None:
    c.headers(1, GET)
    c.response(1)
    c.frame(f.CONTINUATION, f.END_HEADERS, 1, c.block(GET))
    c.expect_goaway(f.PROTOCOL_ERROR)


def c6_data_on_stream_with_body_ok_then_window(c: RawH2) -> None:
    """6.9: the server returns connection and stream credit for a body it read."""
    c.headers(1, post(b"/count"), end_stream=False)
    c.data(1, b"x" * 16384, end_stream=False)
    credited: set[int] = set()
    while credited != {0, 1}:
        frame = c.read()
        if frame.kind == f.WINDOW_UPDATE:
            credited.add(frame.sid)
    c.data(1, b"x")
    assert c.response(1)[1] == b"16385"


def c8_uppercase_trailer(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.data(1, b"abc", end_stream=False)
    c.headers(1, [(b"X-Upper", b"1")])
    c.expect_error(f.PROTOCOL_ERROR, 1)


def c8_connection_trailer(c: RawH2) -> None:
    c.headers(1, post(b"/echo"), end_stream=False)
    c.data(1, b"abc", end_stream=False)
    c.headers(1, [(b"connection", b"close")])
    c.expect_error(f.PROTOCOL_ERROR, 1)


MORE_CASES: dict[str, Callable[[RawH2], None]] = {
    "6.9.1 initial window of 1": c6_window_of_one,
    "6.5.3 the last of repeated settings counts": c6_settings_last_value_wins,
    "5.1 closed: CONTINUATION": c5_closed_continuation,
    "6.9 credit returned for a body read": c6_data_on_stream_with_body_ok_then_window,
    "8.2.1 upper-case trailer name": c8_uppercase_trailer,
    "8.2.2 connection-specific trailer": c8_connection_trailer,
    "hpack 6.2 literal with a name index beyond the tables": hpack_error(b"\x7f\x80\x01\x01a"),
    "hpack 6.3 three table size updates": hpack_error(b"\x20\x20\x20\x82"),
}


@pytest.mark.parametrize("case", list(MORE_CASES.values()), ids=list(MORE_CASES))
def test_more_rfc_cases(h2server: ServerThread, case: Callable[[RawH2], None]) -> None:
    with RawH2(h2server.port) as client:
        client.handshake()
        case(client)
