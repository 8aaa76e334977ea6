"""http2/frames.py: the payload checks and the frame writers, as tables over plain bytes."""

from __future__ import annotations

import struct

import pytest

from aioprefork.http.h2 import frames as f
from aioprefork.http.h2.request import Malformed, TooLarge, check_request


def pair(ident: int, value: int) -> bytes:
    return struct.pack(">HL", ident, value)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"\x00\x00\x05\x01\x04\x00\x00\x00\x01", (5, 1, 4, 1)),
        (b"\x01\x00\x00\x00\x00\x80\x00\x00\x03", (65536, 0, 0, 3)),  # R bit dropped
        (b"\xff\xff\xff\x09\xff\x7f\xff\xff\xff", (2**24 - 1, 9, 255, 2**31 - 1)),
    ],
)
def test_frame_header(data: bytes, expected: tuple[int, int, int, int]) -> None:
    assert f.frame_header(data) == expected
    length, kind, flags, sid = expected
    assert f.head_of(length, kind, flags, sid) == data.replace(
        b"\x80\x00\x00\x03", b"\x00\x00\x00\x03"
    )


@pytest.mark.parametrize(
    ("payload", "flags", "expected"),
    [
        (b"abc", 0, b"abc"),
        (b"\x00abc", f.PADDED, b"abc"),
        (b"\x02abc\x00\x00", f.PADDED, b"abc"),
        (b"\x03\x00\x00\x00", f.PADDED, b""),
    ],
)
def test_strip_padding(payload: bytes, flags: int, expected: bytes) -> None:
    assert f.strip_padding(payload, flags) == expected


@pytest.mark.parametrize(
    ("payload", "code"),
    [(b"", f.FRAME_SIZE_ERROR), (b"\x01", f.PROTOCOL_ERROR), (b"\x05abc", f.PROTOCOL_ERROR)],
)
def test_strip_padding_refused(payload: bytes, code: int) -> None:
    with pytest.raises(f.ConnectionError_) as caught:
        f.strip_padding(payload, f.PADDED)
    assert caught.value.code == code


def test_headers_payload_priority() -> None:
    assert f.split_headers_payload(b"\x80\x00\x00\x03\x10abc", f.PRIORITY_FLAG) == (b"abc", 3)
    assert f.split_headers_payload(b"abc", 0) == (b"abc", -1)
    with pytest.raises(f.ConnectionError_):
        f.split_headers_payload(b"\x00\x00", f.PRIORITY_FLAG)


@pytest.mark.parametrize(
    ("payload", "result"),
    [
        (b"", []),
        (pair(f.MAX_CONCURRENT_STREAMS, 7), [(3, 7)]),
        (pair(0xFF, 1) + pair(f.ENABLE_PUSH, 0), [(0xFF, 1), (2, 0)]),
        (pair(f.MAX_FRAME_SIZE, 16384), [(5, 16384)]),
        (pair(f.INITIAL_WINDOW_SIZE, 2**31 - 1), [(4, 2**31 - 1)]),
        (b"\x00\x01", f.FRAME_SIZE_ERROR),
        (pair(f.ENABLE_PUSH, 2), f.PROTOCOL_ERROR),
        (pair(f.INITIAL_WINDOW_SIZE, 2**31), f.FLOW_CONTROL_ERROR),
        (pair(f.MAX_FRAME_SIZE, 16383), f.PROTOCOL_ERROR),
        (pair(f.MAX_FRAME_SIZE, 2**24), f.PROTOCOL_ERROR),
    ],
)
def test_parse_settings(payload: bytes, result: list[tuple[int, int]] | int) -> None:
    if isinstance(result, int):
        with pytest.raises(f.ConnectionError_) as caught:
            f.parse_settings(payload)
        assert caught.value.code == result
    else:
        assert f.parse_settings(payload) == result


def test_window_and_goaway() -> None:
    assert f.window_increment(b"\x80\x00\x00\x05") == 5
    with pytest.raises(f.ConnectionError_):
        f.window_increment(b"\x00\x00\x05")
    assert f.parse_goaway(b"\x00\x00\x00\x07\x00\x00\x00\x0bdebug") == (7, 11)
    with pytest.raises(f.ConnectionError_):
        f.parse_goaway(b"\x00" * 7)


def test_writers() -> None:
    assert f.settings([(3, 100)]) == b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + pair(3, 100)
    assert f.SETTINGS_ACK == b"\x00\x00\x00\x04\x01\x00\x00\x00\x00"
    assert f.ping(b"12345678", True)[3:5] == b"\x06\x01"
    assert f.rst_stream(3, f.CANCEL) == b"\x00\x00\x04\x03\x00\x00\x00\x00\x03\x00\x00\x00\x08"
    assert f.goaway(5, 0)[9:] == b"\x00\x00\x00\x05\x00\x00\x00\x00"
    assert f.window_update(0, 10)[9:] == b"\x00\x00\x00\x0a"


def test_headers_split_into_continuations() -> None:
    block = bytes(range(256)) * 2
    data = f.headers_frames(1, block, True, 200)
    frames = []
    offset = 0
    while offset < len(data):
        length, kind, flags, _ = f.frame_header(data, offset)
        frames.append((kind, flags, data[offset + 9 : offset + 9 + length]))
        offset += 9 + length
    assert [k for k, _, _ in frames] == [f.HEADERS, f.CONTINUATION, f.CONTINUATION]
    assert frames[0][1] == f.END_STREAM and frames[-1][1] == f.END_HEADERS
    assert b"".join(p for _, _, p in frames) == block
    assert f.headers_frames(1, b"ab", False, 200) == f.frame(f.HEADERS, f.END_HEADERS, 1, b"ab")


def test_data_split_at_the_frame_size() -> None:
    pieces = f.data_frames(1, b"x" * 250, True, 100)
    heads = pieces[0::2]
    assert [f.frame_header(h) for h in heads] == [
        (100, f.DATA, 0, 1),
        (100, f.DATA, 0, 1),
        (50, f.DATA, f.END_STREAM, 1),
    ]
    assert b"".join(pieces[1::2]) == b"x" * 250


GET = [(b":method", b"GET"), (b":scheme", b"https"), (b":path", b"/a?b"), (b":authority", b"h")]


def test_check_request_builds_the_asgi_headers() -> None:
    head = check_request(
        [*GET, (b"cookie", b"a=1"), (b"x-y", b"z"), (b"cookie", b"b=2"), (b"te", b"trailers")],
        100,
        8190,
    )
    assert head.method == b"GET" and head.path == b"/a?b" and head.scheme == b"https"
    assert head.headers == [
        (b"host", b"h"),
        (b"x-y", b"z"),
        (b"te", b"trailers"),
        (b"cookie", b"a=1; b=2"),
    ]
    assert head.te_trailers and head.content_length == -1


@pytest.mark.parametrize(
    "extra",
    [
        [(b"Upper", b"x")],
        [(b"", b"x")],
        [(b"x", b"a\nb")],
        [(b"content-length", b"1"), (b"content-length", b"2")],
        [(b":path", b"/again")],
        [(b"host", b"other")],
    ],
)
def test_check_request_refuses(extra: list[tuple[bytes, bytes]]) -> None:
    with pytest.raises(Malformed):
        check_request([*GET, *extra], 100, 8190)


def test_check_request_limits() -> None:
    with pytest.raises(TooLarge):
        check_request([*GET, (b"x", b"v" * 9000)], 100, 8190)
    with pytest.raises(TooLarge):
        check_request([*GET, *[(b"x-%d" % i, b"v") for i in range(101)]], 100, 8190)
