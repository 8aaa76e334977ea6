"""The raw ceiling: a uvloop + httptools asyncio.Protocol answering canned responses, no ASGI.

It is the upper bound the benchmark compares the ASGI servers with (issue 8): the same event loop
and the same parser, minus everything an ASGI server does per request (scope, receive/send,
header validation, framing decisions). It answers each path of examples/hello.py with the same
bytes on the wire (a Date header refreshed once a second, a Server header, Content-Length or
chunked framing), so per-scenario comparisons are fair. Keep-alive and pipelining work because
httptools calls back once per request and responses are written in order.

Not a server to deploy: no limits, no timeouts, no error handling beyond closing on a parse error.

    python bench/raw_server.py --port 8000 [--host 127.0.0.1] [--workers N]

With --workers N > 1 the parent binds once, forks N children that share the listening socket
(like a prefork server) and waits; TERM/INT are forwarded to the children.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import socket
import sys
from email.utils import formatdate
from typing import Any, Final, cast

import httptools
import uvloop

HELLO: Final = b"Hello, world!"
JSON_BODY: Final = json.dumps({"message": "Hello, world!", "server": "aioprefork"}).encode()
BIG: Final = b"x" * 65536
STREAM_CHUNKS: Final = tuple(b"chunk %d\n" % i for i in range(10))
BAD_REQUEST: Final = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
STATUS_LINE_END: Final = len(b"HTTP/1.1 200 OK\r\n")  # every canned response starts with it
CLOSE: Final = b"connection: close\r\n"  # said before closing, or the client takes it for an error


def _date_header() -> bytes:
    return b"date: " + formatdate(usegmt=True).encode() + b"\r\n"


def _fixed(content_type: bytes, body: bytes, date: bytes) -> bytes:
    return (
        b"HTTP/1.1 200 OK\r\nserver: raw\r\n"
        + date
        + b"content-type: "
        + content_type
        + b"\r\ncontent-length: %d\r\n\r\n" % len(body)
        + body
    )


def _chunked(content_type: bytes, chunks: tuple[bytes, ...], date: bytes) -> bytes:
    framed = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return (
        b"HTTP/1.1 200 OK\r\nserver: raw\r\n"
        + date
        + b"content-type: "
        + content_type
        + b"\r\ntransfer-encoding: chunked\r\n\r\n"
        + framed
        + b"0\r\n\r\n"
    )


class Canned:
    """The precomputed responses, rebuilt once a second so the Date header stays correct."""

    def __init__(self) -> None:
        self.by_path: dict[bytes, bytes] = {}
        self.echo_head = b""
        self.refresh()

    def refresh(self) -> None:
        date = _date_header()
        text = b"text/plain; charset=utf-8"
        self.by_path = {
            b"/": _fixed(text, HELLO, date),
            b"/json": _fixed(b"application/json", JSON_BODY, date),
            b"/stream": _chunked(text, STREAM_CHUNKS, date),
            b"/big": _fixed(b"application/octet-stream", BIG, date),
        }
        self.echo_head = (
            b"HTTP/1.1 200 OK\r\nserver: raw\r\n"
            + date
            + b"content-type: application/octet-stream\r\n"
        )

    def tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self.refresh()
        loop.call_later(1.0, self.tick, loop)


class RawProtocol(asyncio.Protocol):
    """One connection: httptools callbacks straight to transport.write, nothing else."""

    __slots__ = ("body", "canned", "parser", "transport", "url")

    def __init__(self, canned: Canned) -> None:
        self.canned = canned
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.body: list[bytes] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            assert self.transport is not None
            self.transport.write(BAD_REQUEST)
            self.transport.close()

    def on_message_begin(self) -> None:
        self.url = b""
        self.body = []

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        transport = self.transport
        assert transport is not None
        path = self.url.split(b"?", 1)[0]
        response = self.canned.by_path.get(path)
        if response is None:
            if path == b"/echo":
                body = b"".join(self.body)
                response = self.canned.echo_head + b"content-length: %d\r\n\r\n" % len(body) + body
            else:
                response = self.canned.by_path[b"/"]
        if self.parser.should_keep_alive():
            transport.write(response)
        else:
            transport.write(response[:STATUS_LINE_END] + CLOSE + response[STATUS_LINE_END:])
            transport.close()


def serve(sock: socket.socket) -> None:
    """Run one event loop on an already-bound listening socket until TERM/INT."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        canned = Canned()
        loop.call_later(1.0, canned.tick, loop)
        server = await loop.create_server(lambda: RawProtocol(canned), sock=sock, backlog=2048)
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.close()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def prefork(sock: socket.socket, workers: int) -> int:
    """Fork `workers` children sharing `sock`; forward TERM/INT; return when all have exited."""
    children: list[int] = []
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                serve(sock)
            except BaseException:
                code = 1
            finally:
                os._exit(code)
        children.append(pid)

    def forward(signum: int, _frame: Any) -> None:
        for child in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for child in children:
        while True:
            try:
                os.waitpid(child, 0)
                break
            except ChildProcessError:
                break
            except InterruptedError:
                continue
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    sock = socket.create_server((args.host, args.port), backlog=2048, reuse_port=False)
    sock.setblocking(False)
    if args.workers <= 1:
        serve(sock)
        return 0
    return prefork(sock, args.workers)


if __name__ == "__main__":
    sys.exit(main())
