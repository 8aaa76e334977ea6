"""File bodies: `http.response.pathsend` and `http.response.zerocopysend`, sent zero-copy.

Internal. The request cycle (http/cycle.py) asks `open_region(message)` what to send (a file
descriptor, an offset, a byte count) and `send_region(...)` to put those bytes on the wire
after it has written the response head. Which way the bytes go:

* plain TCP: `loop.sendfile()` where the loop implements it (asyncio's own loops); uvloop does
  not (it raises NotImplementedError), so there we call os.sendfile(2) on a dup of the
  connection's socket ourselves, once the transport's own buffer is empty (the head and any
  earlier response go first), and wait for writability on the dup when the socket is full.
  The file's pages go from the page cache to the socket; Python never sees them.
* TLS: bytes must pass through the TLS layer, so we read chunks with aiofiles (in a thread:
  a cold disk never stalls the loop) and write them with back-pressure.

Invariants: the descriptor `open_region` opened is closed by `FileRegion.close()`, which the
caller runs in `finally`; the dup and the writer callback are released before send_region
returns or raises, even when the app task is cancelled; a client that goes away mid-file ends
the transfer with ClientDisconnected, never a hang (each wait is bounded by write_timeout).
"""

from __future__ import annotations

import asyncio
import io
import os
import stat
from dataclasses import dataclass
from typing import Any, Final

import aiofiles

from aioprefork.asgi.types import Message
from aioprefork.errors import ClientDisconnected, WriteTimeout
from aioprefork.wire.flow import FlowControl

__all__ = [
    "EXTENSIONS",
    "FILE_EVENTS",
    "FileRegion",
    "ShortFile",
    "open_region",
    "send_region",
]

PATHSEND: Final = "http.response.pathsend"
ZEROCOPYSEND: Final = "http.response.zerocopysend"
FILE_EVENTS: Final = frozenset({PATHSEND, ZEROCOPYSEND})
# What the http scope advertises (asgiref "Path Send" and "Zero Copy Send" extensions).
EXTENSIONS: Final[dict[str, dict[object, object]]] = {PATHSEND: {}, ZEROCOPYSEND: {}}

_CHUNK: Final = 256 * 1024  # TLS fallback read size: 16 TLS records, few thread hops
_DISCONNECT: Final = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)


class ShortFile(OSError):
    """The file ended before `count` bytes: the promised Content-Length cannot be kept."""


@dataclass(slots=True)
class FileRegion:
    """`count` bytes of `fd` from `offset`; `owned`: we opened the fd and must close it."""

    fd: int
    offset: int
    count: int
    owned: bool
    more_body: bool = False
    file: Any = None  # the app's file object (zerocopysend without offset): position moves

    def close(self) -> None:
        if self.owned and self.fd >= 0:
            fd, self.fd = self.fd, -1
            os.close(fd)

    def advance(self, sent: int) -> None:
        """zerocopysend without an offset reads from the file position: move it past `sent`."""
        if self.file is None:
            return
        if isinstance(self.file, int):
            os.lseek(self.fd, self.offset + sent, os.SEEK_SET)
        else:
            self.file.seek(self.offset + sent)


def open_region(message: Message) -> FileRegion:
    """What a pathsend / zerocopysend message asks to send; ValueError/TypeError/OSError if bad."""
    if message["type"] == PATHSEND:
        path = message.get("path")
        if not isinstance(path, str) or not os.path.isabs(path):
            raise ValueError(f"http.response.pathsend needs an absolute path, not {path!r}")
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise ValueError(f"http.response.pathsend: {path!r} is not a regular file")
        except BaseException:
            os.close(fd)
            raise
        return FileRegion(fd, 0, info.st_size, owned=True)

    file = message.get("file")
    fd = file if isinstance(file, int) else _fileno(file)
    offset = message.get("offset")
    moves = offset is None
    if offset is None:
        offset = os.lseek(fd, 0, os.SEEK_CUR)
    elif type(offset) is not int or offset < 0:
        raise ValueError(f"http.response.zerocopysend: bad offset {offset!r}")
    count = message.get("count")
    if count is None:
        count = max(0, os.fstat(fd).st_size - offset)
    elif type(count) is not int or count < 0:
        raise ValueError(f"http.response.zerocopysend: bad count {count!r}")
    return FileRegion(
        fd,
        offset,
        count,
        owned=False,
        more_body=bool(message.get("more_body", False)),
        file=file if moves else None,
    )


def _fileno(file: object) -> int:
    fileno = getattr(file, "fileno", None)
    if fileno is None:
        raise TypeError("http.response.zerocopysend 'file' must have a file descriptor")
    try:
        fd = fileno()
    except io.UnsupportedOperation:
        raise TypeError("http.response.zerocopysend 'file' has no OS file descriptor") from None
    if type(fd) is not int:
        raise TypeError("http.response.zerocopysend 'file'.fileno() must return an int")
    return fd


async def send_region(
    transport: asyncio.Transport, flow: FlowControl, region: FileRegion, write_timeout: float
) -> int:
    """Write the region after whatever the transport already holds; return the bytes sent."""
    if region.count == 0:
        return 0
    if transport.is_closing():
        raise ClientDisconnected("client disconnected")
    sock = transport.get_extra_info("socket")
    try:
        if transport.get_extra_info("ssl_object") is not None or sock is None:
            sent = await _send_copy(transport, flow, region, write_timeout)
        else:
            loop = asyncio.get_running_loop()
            try:
                sent = await _loop_sendfile(loop, transport, region)
            except (NotImplementedError, asyncio.SendfileNotAvailableError):
                # uvloop has no loop.sendfile; asyncio refuses transports it cannot hand over.
                sent = await _send_zero_copy(loop, transport, sock.fileno(), region, write_timeout)
    except WriteTimeout:
        transport.abort()
        raise ClientDisconnected("client did not read within write_timeout") from None
    region.advance(sent)
    return sent


async def _loop_sendfile(
    loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, region: FileRegion
) -> int:
    file = io.FileIO(region.fd, "rb", closefd=False)
    try:
        sent = await loop.sendfile(transport, file, region.offset, region.count, fallback=False)
    except _DISCONNECT as exc:
        raise ClientDisconnected("client disconnected") from exc
    finally:
        file.close()  # closefd=False: the descriptor stays open
    if sent < region.count:
        raise ShortFile(f"file ended after {sent} of {region.count} bytes")
    return sent


async def _send_zero_copy(
    loop: asyncio.AbstractEventLoop,
    transport: asyncio.Transport,
    sock_fd: int,
    region: FileRegion,
    write_timeout: float,
) -> int:
    # A dup: uvloop refuses add_writer on a descriptor its transport owns, and the dup shares
    # the same socket, so readiness and sendfile(2) behave exactly as on the original.
    out = os.dup(sock_fd)
    try:
        while transport.get_write_buffer_size():  # the head (and earlier responses) first
            await _writable(loop, out, transport, write_timeout)
        fd, offset, count = region.fd, region.offset, region.count
        sent = 0
        while sent < count:
            if transport.is_closing():
                raise ClientDisconnected("client disconnected")
            try:
                n = os.sendfile(out, fd, offset + sent, count - sent)
            except BlockingIOError:
                await _writable(loop, out, transport, write_timeout)
                continue
            except _DISCONNECT as exc:
                raise ClientDisconnected("client disconnected") from exc
            if n == 0:
                raise ShortFile(f"file ended after {sent} of {count} bytes")
            sent += n
        return sent
    finally:
        os.close(out)


async def _writable(
    loop: asyncio.AbstractEventLoop, fd: int, transport: asyncio.Transport, timeout: float
) -> None:
    """Wait until `fd` accepts more bytes, at most `timeout` seconds."""
    if transport.is_closing():
        raise ClientDisconnected("client disconnected")
    ready: asyncio.Future[None] = loop.create_future()
    loop.add_writer(fd, _set_ready, ready)
    timer = loop.call_later(timeout, _expire, ready)
    try:
        await ready
    finally:
        timer.cancel()
        loop.remove_writer(fd)


def _set_ready(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_result(None)


def _expire(ready: asyncio.Future[None]) -> None:
    if not ready.done():
        ready.set_exception(WriteTimeout("client did not read within write_timeout"))


async def _send_copy(
    transport: asyncio.Transport, flow: FlowControl, region: FileRegion, write_timeout: float
) -> int:
    remaining = region.count
    async with aiofiles.open(region.fd, "rb", closefd=False) as file:
        await file.seek(region.offset)
        while remaining:
            data = await file.read(min(_CHUNK, remaining))
            if not data:
                raise ShortFile(f"file ended after {region.count - remaining} bytes")
            if transport.is_closing():
                raise ClientDisconnected("client disconnected")
            transport.write(data)
            remaining -= len(data)
            if flow.write_paused:
                try:
                    await flow.drain(write_timeout)
                except WriteTimeout:
                    raise
                except ConnectionError as exc:  # the connection went away while we waited
                    raise ClientDisconnected("client disconnected") from exc
    return region.count
