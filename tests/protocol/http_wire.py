"""A tiny raw HTTP/1.1 client for byte-exact tests: send bytes, read responses as they come."""

from __future__ import annotations

import re
import socket
import time
from dataclasses import dataclass, field

DATE_RE = re.compile(rb"date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def has(self, name: bytes) -> bool:
        return self.header(name) is not None


class Wire:
    """One client connection with a read buffer."""

    def __init__(self, port: int, timeout: float = 5.0, unix: str | None = None) -> None:
        if unix is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"closed before {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed mid-line")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, head_request: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a response head: {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = [(k.lower(), v.strip()) for k, v in (line.split(b":", 1) for line in lines[1:])]
        resp = Response(status, headers, b"", head + b"\r\n\r\n")
        if head_request or status < 200 or status in (204, 304):
            return resp
        length = resp.header(b"content-length")
        if length is not None:
            resp.body = self._take(int(length))
        elif resp.header(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while (line := self._line()) != b"":
                        k, v = line.split(b":", 1)
                        resp.trailers.append((k.lower(), v.strip()))
                    break
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            resp.body = body
        else:
            resp.body = self.read_all()
        resp.raw += resp.body
        return resp

    def read_all(self) -> bytes:
        """Everything until the server closes (raises on timeout)."""
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def closed(self, timeout: float = 3.0) -> bool:
        """True when the server closed the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and return everything the server sends until it closes."""
    with Wire(port, timeout) as wire:
        wire.send(data)
        return wire.read_all()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def strip_date(raw: bytes) -> bytes:
    return DATE_RE.sub(b"date: X\r\n", raw)


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")
