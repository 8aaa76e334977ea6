"""HTTP/2 frames: the constants, the payload checks and the bytes we write (RFC 9113 section 4, 6).

Internal, pure: no I/O and no connection state. The connection (http/h2/connection.py) reads frame
headers itself from its buffer (one struct unpack) and hands each payload to the checks here,
which raise `ConnectionError_` or `StreamError` carrying the RFC's error code. Writers return
bytes ready for the socket; a header block longer than the peer's frame size is split into
HEADERS + CONTINUATION frames, a body into DATA frames.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = [
    "ACK",
    "CONTINUATION",
    "DATA",
    "END_HEADERS",
    "END_STREAM",
    "GOAWAY",
    "HEADERS",
    "PADDED",
    "PING",
    "PREFACE",
    "PRIORITY",
    "PRIORITY_FLAG",
    "PUSH_PROMISE",
    "RST_STREAM",
    "SETTINGS",
    "WINDOW_UPDATE",
    "ConnectionError_",
    "StreamError",
    "data_frames",
    "frame",
    "frame_header",
    "goaway",
    "headers_frames",
    "parse_goaway",
    "parse_settings",
    "ping",
    "rst_stream",
    "settings",
    "split_headers_payload",
    "strip_padding",
    "window_increment",
    "window_update",
]

PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
FRAME_HEADER_SIZE: Final = 9
DEFAULT_FRAME_SIZE: Final = 16384
MAX_FRAME_SIZE_LIMIT: Final = 2**24 - 1
MAX_WINDOW: Final = 2**31 - 1
DEFAULT_WINDOW: Final = 65535

# Frame types (section 6).
DATA: Final = 0x0
HEADERS: Final = 0x1
PRIORITY: Final = 0x2
RST_STREAM: Final = 0x3
SETTINGS: Final = 0x4
PUSH_PROMISE: Final = 0x5
PING: Final = 0x6
GOAWAY: Final = 0x7
WINDOW_UPDATE: Final = 0x8
CONTINUATION: Final = 0x9

# Flags.
END_STREAM: Final = 0x1
ACK: Final = 0x1
END_HEADERS: Final = 0x4
PADDED: Final = 0x8
PRIORITY_FLAG: Final = 0x20

# Error codes (section 7).
NO_ERROR: Final = 0x0
PROTOCOL_ERROR: Final = 0x1
INTERNAL_ERROR: Final = 0x2
FLOW_CONTROL_ERROR: Final = 0x3
SETTINGS_TIMEOUT: Final = 0x4
STREAM_CLOSED: Final = 0x5
FRAME_SIZE_ERROR: Final = 0x6
REFUSED_STREAM: Final = 0x7
CANCEL: Final = 0x8
COMPRESSION_ERROR: Final = 0x9
CONNECT_ERROR: Final = 0xA
ENHANCE_YOUR_CALM: Final = 0xB
INADEQUATE_SECURITY: Final = 0xC
HTTP_1_1_REQUIRED: Final = 0xD

# SETTINGS parameters (section 6.5.2).
HEADER_TABLE_SIZE: Final = 0x1
ENABLE_PUSH: Final = 0x2
MAX_CONCURRENT_STREAMS: Final = 0x3
INITIAL_WINDOW_SIZE: Final = 0x4
MAX_FRAME_SIZE: Final = 0x5
MAX_HEADER_LIST_SIZE: Final = 0x6

_HEAD: Final = struct.Struct(">HBBBL")  # 24-bit length as 16 + 8 bits, type, flags, stream id
_PAIR: Final = struct.Struct(">HL")
_U32: Final = struct.Struct(">L")
_TWO: Final = struct.Struct(">LL")


class ConnectionError_(Exception):
    """The connection must end: GOAWAY with `code` (section 5.4.1)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class StreamError(Exception):
    """Only this stream ends: RST_STREAM with `code` (section 5.4.2)."""

    def __init__(self, stream_id: int, code: int, message: str) -> None:
        super().__init__(message)
        self.stream_id = stream_id
        self.code = code


# --- reading --------------------------------------------------------------------------------


def frame_header(data: bytes, offset: int = 0) -> tuple[int, int, int, int]:
    """(length, type, flags, stream id) of the 9-byte header at `offset` (the R bit dropped)."""
    high, low, kind, flags, stream_id = _HEAD.unpack_from(data, offset)
    return (high << 8) | low, kind, flags, stream_id & 0x7FFFFFFF


def strip_padding(payload: bytes, flags: int) -> bytes:
    """The payload of a DATA or HEADERS frame without its padding (section 6.1)."""
    if not flags & PADDED:
        return payload
    if not payload:
        raise ConnectionError_(FRAME_SIZE_ERROR, "padded frame without a pad length")
    pad = payload[0]
    if pad >= len(payload):
        raise ConnectionError_(PROTOCOL_ERROR, "padding longer than the frame")
    return payload[1 : len(payload) - pad]


def split_headers_payload(payload: bytes, flags: int) -> tuple[bytes, int]:
    """A HEADERS payload -> (header block fragment, stream it depends on or -1)."""
    payload = strip_padding(payload, flags)
    if not flags & PRIORITY_FLAG:
        return payload, -1
    if len(payload) < 5:
        raise ConnectionError_(FRAME_SIZE_ERROR, "HEADERS too short for its priority")
    return payload[5:], _U32.unpack_from(payload, 0)[0] & 0x7FFFFFFF


def parse_settings(payload: bytes) -> list[tuple[int, int]]:
    """A SETTINGS payload (not ACK) -> (identifier, value) pairs, each value checked."""
    if len(payload) % 6:
        raise ConnectionError_(FRAME_SIZE_ERROR, "SETTINGS length not a multiple of 6")
    pairs: list[tuple[int, int]] = []
    for offset in range(0, len(payload), 6):
        ident, value = _PAIR.unpack_from(payload, offset)
        if ident == ENABLE_PUSH and value > 1:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS_ENABLE_PUSH must be 0 or 1")
        if ident == INITIAL_WINDOW_SIZE and value > MAX_WINDOW:
            raise ConnectionError_(FLOW_CONTROL_ERROR, "SETTINGS_INITIAL_WINDOW_SIZE too large")
        if ident == MAX_FRAME_SIZE and not DEFAULT_FRAME_SIZE <= value <= MAX_FRAME_SIZE_LIMIT:
            raise ConnectionError_(PROTOCOL_ERROR, "SETTINGS_MAX_FRAME_SIZE out of range")
        pairs.append((ident, value))
    return pairs


def window_increment(payload: bytes) -> int:
    """A WINDOW_UPDATE payload -> its increment (0 is the caller's to refuse)."""
    if len(payload) != 4:
        raise ConnectionError_(FRAME_SIZE_ERROR, "WINDOW_UPDATE length must be 4")
    return int(_U32.unpack(payload)[0]) & 0x7FFFFFFF


def parse_goaway(payload: bytes) -> tuple[int, int]:
    """A GOAWAY payload -> (last stream id, error code)."""
    if len(payload) < 8:
        raise ConnectionError_(FRAME_SIZE_ERROR, "GOAWAY shorter than 8 bytes")
    last, code = _TWO.unpack_from(payload, 0)
    return last & 0x7FFFFFFF, code


# --- writing --------------------------------------------------------------------------------


def frame(kind: int, flags: int, stream_id: int, payload: bytes = b"") -> bytes:
    length = len(payload)
    return _HEAD.pack(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


def head_of(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    """The 9-byte header alone (a big payload is written after it, never copied into it)."""
    return _HEAD.pack(length >> 8, length & 0xFF, kind, flags, stream_id)


def settings(pairs: list[tuple[int, int]]) -> bytes:
    return frame(SETTINGS, 0, 0, b"".join(_PAIR.pack(i, v) for i, v in pairs))


SETTINGS_ACK: Final = frame(SETTINGS, ACK, 0)


def ping(opaque: bytes, ack: bool) -> bytes:
    return frame(PING, ACK if ack else 0, 0, opaque)


def goaway(last_stream_id: int, code: int, debug: bytes = b"") -> bytes:
    return frame(GOAWAY, 0, 0, _TWO.pack(last_stream_id, code) + debug)


def rst_stream(stream_id: int, code: int) -> bytes:
    return frame(RST_STREAM, 0, stream_id, _U32.pack(code))


def window_update(stream_id: int, increment: int) -> bytes:
    return frame(WINDOW_UPDATE, 0, stream_id, _U32.pack(increment))


def headers_frames(stream_id: int, block: bytes, end_stream: bool, max_frame: int) -> bytes:
    """A header block as HEADERS (+ CONTINUATION frames when it exceeds `max_frame`)."""
    flags = END_STREAM if end_stream else 0
    if len(block) <= max_frame:
        return frame(HEADERS, flags | END_HEADERS, stream_id, block)
    parts = [frame(HEADERS, flags, stream_id, block[:max_frame])]
    offset = max_frame
    while offset < len(block):
        piece = block[offset : offset + max_frame]
        offset += max_frame
        last = END_HEADERS if offset >= len(block) else 0
        parts.append(frame(CONTINUATION, last, stream_id, piece))
    return b"".join(parts)


def data_frames(stream_id: int, data: bytes, end_stream: bool, max_frame: int) -> list[bytes]:
    """`data` as DATA frames of at most `max_frame` bytes: [header, payload, header, ...]."""
    if len(data) <= max_frame:
        return [head_of(len(data), DATA, END_STREAM if end_stream else 0, stream_id), data]
    pieces: list[bytes] = []
    view = memoryview(data)
    offset = 0
    while offset < len(data):
        piece = bytes(view[offset : offset + max_frame])
        offset += len(piece)
        flags = END_STREAM if end_stream and offset >= len(data) else 0
        pieces.append(head_of(len(piece), DATA, flags, stream_id))
        pieces.append(piece)
    return pieces
