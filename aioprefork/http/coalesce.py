"""Write coalescing across one worker's connections: one burst of sends per loop iteration.

Internal. Under load one loop iteration serves many connections (uvloop hands us every socket
epoll found readable), and writing each response the moment it is ready wakes the client's
side once per response: the sender pays for every wakeup (an IPI, a VM exit on a virtual
machine). Measured with wrk -c64 on one core: the client slept 0.16-0.20 times per request;
holding the responses after the first until the iteration ends brought it to 0.02, and the
server's kernel time from 7.4-7.7 to 6.3-6.8 us per request (bench/README.md).

So the first write of an iteration goes out at once (a lone request, or the first of a burst,
keeps its latency), and the connections that write after it in the same iteration hold their
bytes (HttpProtocol.write) until `flush()`, which a call_soon scheduled by that first write runs
right after the iteration's I/O callbacks. At most MAX_HOLDING connections wait: the next one
flushes them all, so a response waits for at most that many others (~0.4 ms at ~12 us each),
however many sockets one iteration serves. A connection holds at most 64 KiB of small writes
(joined into one buffer) or 256 KiB of big ones (writelines: held by reference, never copied, and
written with one writev). Per connection, order is kept: once it holds bytes,
everything it writes joins them, and whatever must reach the socket first (a close, a
write_eof, a file sent zero-copy, a WebSocket hand-off) flushes its own held bytes before.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Final

__all__ = ["MAX_HOLDING", "WriteCoalescer"]

log: Final = logging.getLogger("aioprefork.http")
MAX_HOLDING: Final = 32  # connections holding bytes at once; one more flushes them all

if TYPE_CHECKING:
    from aioprefork.http.protocol import HttpProtocol


class WriteCoalescer:
    """One per worker loop: which connections hold bytes until this iteration ends."""

    __slots__ = ("_flush", "_holding", "_loop", "_open")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._open = False  # a write went out this iteration, and flush() is scheduled
        self._holding: list[HttpProtocol] = []
        self._flush = self.flush  # bound once: one call_soon per iteration, not a bind each

    def holding(self) -> bool:
        """True: a write went out this iteration, so hold this one (then call held()).

        False: this is the first; write it now (flush() is scheduled for the iteration's end).
        """
        if self._open:
            return True
        self._open = True
        self._loop.call_soon(self._flush)
        return False

    def held(self, protocol: HttpProtocol) -> None:
        """`protocol` now holds bytes; with MAX_HOLDING others waiting, all go out now."""
        holding = self._holding
        holding.append(protocol)
        if len(holding) > MAX_HOLDING:
            self._write_held()

    def flush(self) -> None:
        """The iteration's I/O is done: every held write goes out, connection by connection."""
        self._open = False
        if self._holding:
            self._write_held()

    def _write_held(self) -> None:
        holding = self._holding
        self._holding = []
        for protocol in holding:
            try:
                protocol.flush_held()
            except Exception:  # one broken transport must not strand the others' bytes
                log.exception("writing a held response failed; dropping its connection")
                protocol.abort()
