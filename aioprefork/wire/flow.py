"""Back-pressure in both directions for one connection (uvicorn's flow_control.py, plus a bound).

Internal. Reading: `pause_reading()` / `resume_reading()` are idempotent, so the protocol and the
request cycle may both ask without counting. Writing: the transport calls the protocol's
pause_writing/resume_writing above/below its high-water mark, which land here; `drain()` waits
for resume_writing, at most `write_timeout` seconds (a client that never reads), and raises
ConnectionError at once if the connection is gone. Invariant: no waiter outlives the connection.
"""

from __future__ import annotations

import asyncio
from typing import Final

from aioprefork.errors import WriteTimeout

__all__ = ["FlowControl"]


_CLOSED: Final = "connection closed"


class FlowControl:
    __slots__ = ("_closed", "_loop", "_transport", "_waiter", "read_paused", "write_paused")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False
        self.read_paused = False
        self.write_paused = False

    def pause_reading(self) -> None:
        if not self.read_paused and not self._closed:
            self.read_paused = True
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self.read_paused and not self._closed:
            self.read_paused = False
            self._transport.resume_reading()

    def pause_writing(self) -> None:
        self.write_paused = True

    def resume_writing(self) -> None:
        self.write_paused = False
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def connection_lost(self) -> None:
        self._closed = True
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_exception(ConnectionResetError(_CLOSED))

    async def drain(self, timeout: float) -> None:
        """Return once the transport is below its high-water mark; raise if it never gets there."""
        if self._closed:
            raise ConnectionResetError(_CLOSED)
        if not self.write_paused:
            return
        waiter = self._waiter
        if waiter is None or waiter.done():
            waiter = self._waiter = self._loop.create_future()
        timer = self._loop.call_later(timeout, _expire, waiter)
        try:
            await asyncio.shield(waiter)
        finally:
            timer.cancel()


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(WriteTimeout("client did not read within write_timeout"))
