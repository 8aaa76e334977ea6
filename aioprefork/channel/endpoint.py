"""asyncio glue over one end of a control-channel socketpair (the master's or the worker's).

The only module that moves channel bytes: `send(msg)` writes one frame without awaiting (the
frames are small and the peer reads continuously), `async for msg in endpoint` yields decoded
messages in order and ends at EOF, `recv()` raises PeerGone there instead. EOF is the pipe of
death: the worker reads it as "the master died", the master as "the worker is gone". A frame
that does not decode aborts the connection and surfaces as ProtocolViolation to the reader.
Works on any loop (the master's asyncio loop, a worker's uvloop loop).
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any, Generic, TypeVar, cast

from aioprefork.channel.codec import FrameDecoder, encode
from aioprefork.channel.messages import TO_MASTER, TO_WORKER, Message, ToMaster, ToWorker
from aioprefork.errors import AiopreforkError, ProtocolViolation


class PeerGone(AiopreforkError):
    """The other end closed the channel (EOF, reset or we closed it): stop talking to it."""


class _ChannelProtocol(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.decoder = FrameDecoder()
        self.inbox: collections.deque[Message] = collections.deque()
        self.error: ProtocolViolation | None = None
        self.eof = False
        self.waiter: asyncio.Future[None] | None = None
        self.drain_waiter: asyncio.Future[None] | None = None
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass

    def data_received(self, data: bytes) -> None:
        try:
            self.inbox.extend(self.decoder.feed(data))
        except ProtocolViolation as exc:
            self.error = exc
            self.eof = True
            if self.transport is not None:
                self.transport.abort()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: a half-open channel has no use

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.paused = False
        self._wake()
        self._release_drain()

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._release_drain()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _release_drain(self) -> None:
        if self.drain_waiter is not None and not self.drain_waiter.done():
            self.drain_waiter.set_result(None)


SendT = TypeVar("SendT", bound=Message)
RecvT = TypeVar("RecvT", bound=Message)


class Endpoint(Generic[SendT, RecvT]):
    """One end of the channel, bound to the running loop: `await open_master_end(sock)` or
    `await open_worker_end(sock)`. It sends one direction's messages and receives the other's;
    a frame of the wrong direction is a ProtocolViolation."""

    __slots__ = ("_proto", "_receives", "_transport")

    def __init__(
        self,
        transport: asyncio.Transport,
        proto: _ChannelProtocol,
        receives: tuple[type[RecvT], ...],
    ) -> None:
        self._transport = transport
        self._proto = proto
        self._receives = receives

    @classmethod
    async def open(
        cls, sock: socket.socket, receives: tuple[type[RecvT], ...]
    ) -> Endpoint[SendT, RecvT]:
        """Take ownership of `sock` (one end of a socketpair) on the running loop."""
        loop = asyncio.get_running_loop()
        sock.setblocking(False)
        transport, proto = await loop.connect_accepted_socket(_ChannelProtocol, sock=sock)
        return cls(transport, proto, receives)

    @property
    def closed(self) -> bool:
        """True once the peer is gone or we closed; `send` would raise PeerGone."""
        return self._proto.eof or self._transport.is_closing()

    def send(self, msg: SendT) -> None:
        """Queue one frame; never blocks. Raises PeerGone when the channel is closed."""
        if self.closed:
            raise PeerGone(f"cannot send {type(msg).__name__}: channel closed")
        self._transport.write(encode(msg))

    async def drain(self) -> None:
        """Wait until queued frames are handed to the kernel (or the channel is gone)."""
        proto = self._proto
        if proto.paused and not self.closed:
            proto.drain_waiter = asyncio.get_running_loop().create_future()
            await proto.drain_waiter

    async def recv(self) -> RecvT:
        """The next message; PeerGone at EOF, ProtocolViolation if the peer sent garbage."""
        proto = self._proto
        while not proto.inbox:
            if proto.error is not None:
                raise proto.error
            if proto.eof:
                raise PeerGone("peer closed the channel")
            proto.waiter = asyncio.get_running_loop().create_future()
            try:
                await proto.waiter
            finally:
                proto.waiter = None
        msg: Message = proto.inbox.popleft()
        if not isinstance(msg, self._receives):
            self.abort()
            raise ProtocolViolation(f"{type(msg).__name__} does not travel this way")
        return cast(RecvT, msg)

    def __aiter__(self) -> Endpoint[SendT, RecvT]:
        return self

    async def __anext__(self) -> RecvT:
        try:
            return await self.recv()
        except PeerGone:
            raise StopAsyncIteration from None

    def close(self) -> None:
        """Close our end; the peer sees EOF."""
        self._transport.close()

    def abort(self) -> None:
        self._transport.abort()

    def __repr__(self) -> str:
        state: Any = "closed" if self.closed else "open"
        return f"<Endpoint {state} inbox={len(self._proto.inbox)}>"


MasterEnd = Endpoint[ToWorker, ToMaster]
WorkerEnd = Endpoint[ToMaster, ToWorker]


async def open_master_end(sock: socket.socket) -> MasterEnd:
    """The master's end of one worker's channel: sends ToWorker, receives ToMaster."""
    return await MasterEnd.open(sock, TO_MASTER)


async def open_worker_end(sock: socket.socket) -> WorkerEnd:
    """A worker's end of its channel: sends ToMaster, receives ToWorker."""
    return await WorkerEnd.open(sock, TO_WORKER)
