"""H2Stream: one HTTP/2 stream's ASGI receive()/send() (the HTTP/2 twin of http/cycle.RequestCycle).

Internal. The connection (http/h2/connection.py) feeds the request body in and frames what the app
sends out; this class holds the per-stream ASGI state in between. The same policies as HTTP/1.1:
an invalid response (bad status, bad header, body longer or shorter than its Content-Length) is
a 500 if nothing was sent, else a reset stream; a client gone (RST_STREAM, connection lost) is
`http.disconnect` for receive() and ClientDisconnected for send(), never logged as an error.

Flow control: body bytes the app has read are returned to the stream's window as it reads them
(`H2Connection.consumed`), so a slow app pushes back on its own stream only; a response body
waits in the stream's queue until the peer's windows allow it, and send() waits (at most
write_timeout) while more than a window's worth is queued.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
from typing import TYPE_CHECKING, Any, Final

from aioprefork.asgi.cycle import AppCycle
from aioprefork.asgi.types import Message, Scope
from aioprefork.errors import ClientDisconnected
from aioprefork.http.h2 import frames as f
from aioprefork.wire.writer import error_body

if TYPE_CHECKING:
    from aioprefork.http.h2.connection import H2Connection

__all__ = ["H2Stream", "ResponseHeaderError", "response_fields"]

log: Final = logging.getLogger("aioprefork.app")

_REQUEST: Final[dict[str, Any]] = {"type": "http.request", "body": b"", "more_body": False}
_FILE_EVENTS: Final = frozenset({"http.response.pathsend", "http.response.zerocopysend"})
# Fields that mean something only to an HTTP/1.1 connection: never sent over HTTP/2 (RFC 9113
# section 8.2.2), dropped from what the app sends.
_HOP_BY_HOP: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_SPECIAL: Final[dict[bytes, int]] = dict.fromkeys(_HOP_BY_HOP, 1) | {
    b"content-length": 2,
    b"server": 2,
    b"date": 2,
}
_FILE_CHUNK: Final = 64 * 1024
_QUEUE_LIMIT: Final = 256 * 1024  # response bytes queued per stream before send() waits
# what a name may hold (RFC 9110 section 5.6.2 tchar, upper case folded by the caller)
_TCHAR: Final = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz")
_CHECKED: Final[dict[bytes, bytes]] = {}  # raw name -> lower-cased, for names already valid
_CHECKED_MAX: Final = 1024
_CHECKED_VALUES: Final[set[bytes]] = set()  # short values already found valid, bounded
_BAD_VALUE: Final = re.compile(rb"[\r\n\x00]")


class ResponseHeaderError(ValueError):
    """The app sent a response header that cannot be sent."""


def _name(raw: object) -> bytes:
    if type(raw) is not bytes:
        raise ResponseHeaderError(f"header name must be bytes, not {type(raw).__name__}")
    name = _CHECKED.get(raw)
    if name is not None:
        return name
    name = raw.lower()
    if not name or not all(c in _TCHAR for c in name):
        raise ResponseHeaderError(f"invalid header name {raw!r}")
    if len(_CHECKED) < _CHECKED_MAX:
        _CHECKED[raw] = name
    return name


def _value(raw: object) -> bytes:
    if type(raw) is not bytes:
        raise ResponseHeaderError(f"header value must be bytes, not {type(raw).__name__}")
    if raw in _CHECKED_VALUES:
        return raw
    # (not `b"\r" in raw`: bytes.__contains__ tries the operand as an int first, and pays for a
    # TypeError each time)
    if _BAD_VALUE.search(raw):
        raise ResponseHeaderError("header value contains CR, LF or NUL")
    if len(raw) <= 256 and len(_CHECKED_VALUES) < _CHECKED_MAX:
        _CHECKED_VALUES.add(raw)
    return raw


def response_fields(
    status: int, headers: Any, server: bytes, date: bytes
) -> tuple[list[tuple[bytes, bytes]], int]:
    """The HTTP/2 field list of a response (without :status), and its Content-Length (-1 when
    the app set none).

    Names are lower-cased and checked, connection-specific fields dropped, Server and Date added
    unless the app set its own (an empty `server`/`date`: none).
    """
    fields: list[tuple[bytes, bytes]] = []
    length = -1
    has_server = has_date = False
    for raw_name, raw_value in headers:
        name = _name(raw_name)
        value = _value(raw_value)
        special = _SPECIAL.get(name, 0)
        if not special:
            fields.append((name, value))
            continue
        if special == 1:
            continue  # connection-specific
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                raise ResponseHeaderError(f"invalid content-length {value!r}") from None
            if length < 0:
                raise ResponseHeaderError(f"invalid content-length {value!r}")
        elif name == b"server":
            has_server = True
        elif name == b"date":
            has_date = True
        fields.append((name, value))
    if server and not has_server:
        fields.append((b"server", server))
    if date and not has_date:
        fields.append((b"date", date))
    return fields, length


def trailer_fields(headers: Any) -> list[tuple[bytes, bytes]]:
    fields: list[tuple[bytes, bytes]] = []
    for raw_name, raw_value in headers:
        name = _name(raw_name)
        if name in _HOP_BY_HOP:
            continue
        fields.append((name, _value(raw_value)))
    return fields


class H2Stream(AppCycle):
    """One stream: request body in, response out. Made once per request."""

    # Request side.
    more_body = True  # body bytes still to come (END_STREAM not seen)
    received = 0  # body bytes received in all (checked against content_length)
    recv_window = 0  # what the client may still send on this stream
    content_length = -1  # the request's Content-Length, -1 = none
    expect_continue = False  # expect: 100-continue, not answered yet
    # Response side.
    status = 0
    sent = 0
    _length = -1
    # Send side, run by the connection.
    out_pending: list[bytes] | None = None  # body bytes waiting for window
    out_size = 0
    out_end = False  # END_STREAM after the pending bytes (or the trailers)
    out_trailers: list[tuple[bytes, bytes]] | None = None  # sent after the pending bytes
    local_closed = False  # END_STREAM sent
    remote_closed = False  # END_STREAM received
    reset = False  # RST_STREAM sent or received
    wire_sent = 0  # body bytes framed so far (the stall check watches it move)
    _drained: asyncio.Future[None] | None = None

    def __init__(
        self,
        owner: H2Connection,
        stream_id: int,
        scope: Scope,
        method: str,
        target: bytes,
        send_window: int,
        start: float,
        te_trailers: bool,
    ) -> None:
        self._owner = owner
        self.stream_id = stream_id
        self.scope = scope
        self.method = method
        self.target = target
        self.send_window = send_window
        self.start = start
        self.te_trailers = te_trailers

    # --- fed by the connection --------------------------------------------------------------

    def end_body(self) -> None:
        self.more_body = False
        self.remote_closed = True
        self._wake()

    def disconnect(self) -> None:
        self.disconnected = True
        self._wake()
        self.drained()

    def drained(self) -> None:
        """The connection sent what was queued (or never will): a waiting send() goes on."""
        waiter = self._drained
        if waiter is not None:
            self._drained = None
            if not waiter.done():
                waiter.set_result(None)

    # --- the ASGI callables -------------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._delivered and not self.disconnected:
            if self.expect_continue:
                self.expect_continue = False
                if self.more_body and not self._pieces and not self.head_sent:
                    self._owner.send_continue(self)
            while self.more_body and not self._pieces and not self.disconnected:
                waiter = self._waiter
                if waiter is None:
                    waiter = self._waiter = asyncio.get_running_loop().create_future()
                # a client that stops sending the body is cut at body_timeout (as HTTP/1.1)
                timer = waiter.get_loop().call_later(
                    self._owner.body_timeout, self._owner.body_timed_out, self
                )
                try:
                    await waiter
                finally:
                    timer.cancel()
            if self.disconnected:
                return {"type": "http.disconnect"}
            pieces = self._pieces
            body = (b"".join(pieces) if len(pieces) > 1 else pieces[0]) if pieces else b""
            more = self.more_body
            if pieces:
                self._pieces = ()
                size = self.buffered
                self.buffered = 0
                if more:
                    self._owner.consumed(self, size)
            if not more:
                self._delivered = True
            event = _REQUEST.copy()
            event["body"] = body
            event["more_body"] = more
            return event
        while not (self.disconnected or self.complete):
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        event: dict[str, Any] = message if type(message) is dict else dict(message)
        kind: str = event["type"]
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        if kind == "http.response.body":
            if self._head is None or self.complete:
                raise RuntimeError(f"unexpected ASGI message {kind!r} in this state")
            body = event.get("body", b"")
            more = event.get("more_body", False)
            if not self.head_sent:
                self._send_head(more or bool(body), len(body) if not more else -1)
            self._send_body(body, more)
            if more and self.out_size > _QUEUE_LIMIT:
                await self._drain()
        elif kind == "http.response.start":
            if self._head is not None:
                raise RuntimeError("http.response.start sent twice")
            status = event["status"]
            if type(status) is not int or not 200 <= status <= 599:
                self._fail()
                raise ResponseHeaderError(f"invalid status {status!r}: must be an int in 200-599")
            self._head = (status, event.get("headers", ()), bool(event.get("trailers", False)))
            self.status = status
        elif kind in _FILE_EVENTS:
            if self._head is None or self.complete:
                raise RuntimeError(f"unexpected ASGI message {kind!r} in this state")
            await self._send_file(event)
        elif kind == "http.response.trailers":
            self._send_trailers(event)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    def _body_allowed(self) -> bool:
        return not (self.method == "HEAD" or self.status in (204, 304))

    @property
    def response_headers(self) -> Any:
        """The header fields of the app's response start (the access log's %{Name}o); () if none."""
        head = self._head
        return () if head is None else head[1]

    def _send_head(self, has_body: bool, length: int) -> None:
        """HEADERS for the start message; END_STREAM on it when no body and no trailers follow."""
        head = self._head
        assert head is not None
        status, headers, trailers = head
        owner = self._owner
        try:
            fields, declared = response_fields(status, headers, owner.server, owner.date)
        except ResponseHeaderError:
            self._fail()
            raise
        if trailers:
            if self.te_trailers and self._body_allowed():
                self._trailers = True
            else:
                self._dropping_trailers = True
        if declared < 0 and length >= 0 and not self._trailers and self._body_allowed():
            fields.append((b"content-length", b"%d" % length))
        self._length = declared
        end = not self._body_allowed() or (not has_body and not self._trailers)
        self.head_sent = True
        owner.send_response_head(self, status, fields, end)
        if end:
            self._complete()

    def _send_body(self, body: bytes, more: bool) -> None:
        if self.complete:
            return  # HEAD, 204, 304: the head ended the stream
        if body:
            sent = self.sent + len(body)
            if 0 <= self._length < sent:
                self._fail()
                raise ResponseHeaderError("response body longer than its Content-Length")
            self.sent = sent
        if more:
            if body:
                self._owner.send_data(self, body, False)
            return
        if 0 <= self._length != self.sent:
            self._fail()
            raise ResponseHeaderError(
                f"response body shorter than its Content-Length ({self.sent} < {self._length})"
            )
        if self._trailers:
            if body:
                self._owner.send_data(self, body, False)
            return  # END_STREAM comes with the trailers
        self._owner.send_data(self, body, True)
        self._complete()

    def _send_trailers(self, event: dict[str, Any]) -> None:
        dropping = self._dropping_trailers
        fields = self._take_trailers(event)
        if fields is None:
            if dropping and not self._dropping_trailers and not self.complete:
                self._owner.send_data(self, b"", True)  # the last dropped one ends the stream
                self._complete()
            return
        try:
            checked = trailer_fields(fields)
        except ResponseHeaderError:
            self._fail()
            raise
        self._owner.send_trailers(self, checked)
        self._complete()

    async def _send_file(self, message: Message) -> None:
        """pathsend / zerocopysend: read in a thread (a cold disk never stalls the loop), framed."""
        from aioprefork.http import pathsend

        region = pathsend.open_region(message)
        try:
            more = region.more_body
            if not self.head_sent:
                self._send_head(bool(region.count) or more, -1 if more else region.count)
            if self.complete:
                return
            if 0 <= self._length < self.sent + region.count:
                self._fail()
                raise ResponseHeaderError("file longer than the response's Content-Length")
            loop = asyncio.get_running_loop()
            done = 0
            while done < region.count:
                size = min(_FILE_CHUNK, region.count - done)
                data = await loop.run_in_executor(
                    None, os.pread, region.fd, size, region.offset + done
                )
                if self.disconnected:
                    raise ClientDisconnected("client disconnected")
                if not data:
                    self._fail()
                    raise pathsend.ShortFile(f"file ended after {done} of {region.count} bytes")
                done += len(data)
                self.sent += len(data)
                last = done >= region.count and not more and not self._trailers
                self._owner.send_data(self, data, last)
                if last:
                    self._complete()
                elif self.out_size > _QUEUE_LIMIT:
                    await self._drain()
            region.advance(done)
            if not region.count and not more and not self._trailers:
                self._owner.send_data(self, b"", True)
                self._complete()
        finally:
            region.close()

    async def _drain(self) -> None:
        """Wait until the queued body went out. A peer that never opens its window stalls the
        stream: the connection resets it after write_timeout (H2Connection._check_stall), which
        ends this wait as a disconnect."""
        while self.out_size > _QUEUE_LIMIT // 2 and not self.disconnected:
            waiter = self._drained
            if waiter is None:
                waiter = self._drained = asyncio.get_running_loop().create_future()
            await waiter
        if self.disconnected:
            raise ClientDisconnected("client disconnected")

    def _complete(self) -> None:
        self.complete = True
        self._wake()
        self._owner.response_done(self)

    def abandon(self, status: int) -> None:
        """request_timeout passed: answer `status` if nothing was sent, else reset the stream
        (CANCEL); the app's later send() calls raise ClientDisconnected."""
        self._fail(status, f.CANCEL)

    def _fail(self, status: int = 500, reset_code: int = f.INTERNAL_ERROR) -> None:
        """An invalid response: 500 if nothing was sent, else reset the stream."""
        if self.complete:
            return
        owner = self._owner
        if not self.head_sent and not self.disconnected:
            self.status = status
            self.head_sent = True
            body = error_body(status)
            fields = [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
            ]
            owner.send_response_head(self, status, fields, False)
            owner.send_data(self, body, True)
        elif not self.disconnected:
            owner.reset_stream(self, reset_code)
        self.complete = True
        self.disconnected = True
        self._wake()
        owner.response_done(self)

    def app_done(self, exc: BaseException | None) -> None:
        self.finished = True
        if exc is not None:
            if isinstance(exc, ClientDisconnected) or self.disconnected:
                log.debug("app stopped after the client disconnected: %r", exc)
            elif isinstance(exc, asyncio.CancelledError):
                log.debug("app cancelled")
            else:
                log.error("Exception in ASGI application", exc_info=exc)
        elif not self.complete and not self.disconnected:
            log.error("ASGI application returned without completing the response")
        if not self.complete:
            self._fail()
