"""A raw-frame HTTP/2 client for the tests: exact frames out, every frame in, nothing hidden.

Header blocks are encoded and decoded with the `hpack` library (a test dependency, through
httpx[http2]), so the server's own HPACK is checked against an independent implementation.
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

import hpack  # a test client only (httpx[http2]), never at run time

from aioprefork.http.h2 import frames as f

DEFAULT_REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":path", b"/"),
    (b":authority", b"localhost"),
]


@dataclass
class Frame:
    kind: int
    flags: int
    sid: int
    payload: bytes

    @property
    def error_code(self) -> int:
        """The code of a RST_STREAM or GOAWAY."""
        if self.kind == f.GOAWAY:
            return int(struct.unpack(">L", self.payload[4:8])[0])
        return int(struct.unpack(">L", self.payload[:4])[0])

    def __repr__(self) -> str:
        names = {
            0: "DATA", 1: "HEADERS", 2: "PRIORITY", 3: "RST_STREAM", 4: "SETTINGS",
            5: "PUSH_PROMISE", 6: "PING", 7: "GOAWAY", 8: "WINDOW_UPDATE", 9: "CONTINUATION",
        }  # fmt: skip
        extra = ""
        if self.kind in (f.GOAWAY, f.RST_STREAM):
            extra = f" code={self.error_code} {self.payload[8:]!r}"
        return f"<{names.get(self.kind, self.kind)} flags={self.flags:#x} sid={self.sid}{extra}>"


class Closed(Exception):
    """The server closed the connection."""


class RawH2:
    """One client connection: `handshake()`, then frames either way."""

    def __init__(self, port: int, host: str = "127.0.0.1", timeout: float = 5.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buf = b""
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()
        self.server_settings: dict[int, int] = {}
        self.timeout = timeout

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawH2:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- out ----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def frame(self, kind: int, flags: int, sid: int, payload: bytes = b"") -> None:
        self.send(f.frame(kind, flags, sid, payload))

    def handshake(self, settings: list[tuple[int, int]] | None = None) -> None:
        """Preface + SETTINGS; read the server's SETTINGS and ACK it (and its WINDOW_UPDATE)."""
        self.send(f.PREFACE + f.settings(settings or []))
        first = self.read()
        assert first.kind == f.SETTINGS and not first.flags & f.ACK, first
        for offset in range(0, len(first.payload), 6):
            ident, value = struct.unpack(">HL", first.payload[offset : offset + 6])
            self.server_settings[ident] = value
        self.send(f.SETTINGS_ACK)

    def block(self, fields: list[tuple[bytes, bytes]]) -> bytes:
        return bytes(self.encoder.encode(fields))

    def headers(
        self,
        sid: int,
        fields: list[tuple[bytes, bytes]] | None = None,
        *,
        end_stream: bool = True,
        end_headers: bool = True,
    ) -> None:
        flags = (f.END_STREAM if end_stream else 0) | (f.END_HEADERS if end_headers else 0)
        self.frame(f.HEADERS, flags, sid, self.block(fields or DEFAULT_REQUEST))

    def data(self, sid: int, data: bytes, *, end_stream: bool = True) -> None:
        self.frame(f.DATA, f.END_STREAM if end_stream else 0, sid, data)

    # --- in -----------------------------------------------------------------------------

    def read(self, timeout: float | None = None) -> Frame:
        """The next frame; Closed at EOF, TimeoutError when none comes."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            if len(self.buf) >= 9:
                length, kind, flags, sid = f.frame_header(self.buf)
                if len(self.buf) >= 9 + length:
                    payload = self.buf[9 : 9 + length]
                    self.buf = self.buf[9 + length :]
                    return Frame(kind, flags, sid, payload)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no frame from the server")
            self.sock.settimeout(left)
            try:
                chunk = self.sock.recv(65536)
            except TimeoutError:
                raise TimeoutError("no frame from the server") from None
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise Closed("connection closed")
            self.buf += chunk

    def frames_until(self, stop: type[BaseException] = Closed, timeout: float = 2.0) -> list[Frame]:
        """Every frame until EOF (or `timeout` seconds of silence)."""
        out: list[Frame] = []
        while True:
            try:
                out.append(self.read(timeout))
            except (Closed, TimeoutError):
                return out

    def expect_goaway(self, code: int, timeout: float = 5.0) -> Frame:
        """Read until a GOAWAY (then the connection must close); assert its code."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            if frame.kind == f.GOAWAY:
                assert frame.error_code == code, frame
                return frame

    def expect_rst(self, sid: int, code: int, timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            if frame.kind == f.GOAWAY:
                raise AssertionError(f"expected RST_STREAM({code}) on {sid}, got {frame}")
            if frame.kind == f.RST_STREAM and frame.sid == sid:
                assert frame.error_code == code, frame
                return frame

    def expect_error(self, code: int, sid: int, timeout: float = 5.0) -> Frame:
        """A stream error on `sid` or a connection error, either with `code` (h2spec's rule)."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            if frame.kind == f.GOAWAY or (frame.kind == f.RST_STREAM and frame.sid == sid):
                assert frame.error_code == code, frame
                return frame

    def response(self, sid: int, timeout: float = 5.0) -> tuple[dict[bytes, bytes], bytes]:
        """The response on `sid`: (headers incl. :status, body); trailers merged in headers."""
        headers: dict[bytes, bytes] = {}
        body = b""
        block = b""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            if frame.kind == f.GOAWAY:
                raise AssertionError(f"GOAWAY while waiting for stream {sid}: {frame}")
            if frame.sid != sid:
                continue
            if frame.kind == f.RST_STREAM:
                raise AssertionError(f"stream {sid} reset: {frame}")
            if frame.kind in (f.HEADERS, f.CONTINUATION):
                block += (
                    f.strip_padding(frame.payload, frame.flags)
                    if frame.kind == f.HEADERS
                    else frame.payload
                )
                if frame.flags & f.END_HEADERS:
                    for name, value in self.decoder.decode(block, raw=True):
                        headers[bytes(name)] = bytes(value)
                    block = b""
            elif frame.kind == f.DATA:
                body += f.strip_padding(frame.payload, frame.flags)
            if frame.flags & f.END_STREAM and frame.kind in (f.DATA, f.HEADERS):
                return headers, body

    def ping_roundtrip(self, timeout: float = 5.0) -> None:
        """The connection still works: a PING comes back acknowledged."""
        self.frame(f.PING, 0, 0, b"12345678")
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read(max(0.01, deadline - time.monotonic()))
            if frame.kind == f.GOAWAY:
                raise AssertionError(f"GOAWAY instead of a PING ACK: {frame}")
            if frame.kind == f.PING and frame.flags & f.ACK:
                assert frame.payload == b"12345678"
                return
