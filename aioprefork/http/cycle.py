"""One HTTP request's ASGI receive()/send() cycle (http/host.py runs the app that uses it).

Internal. `RequestCycle` turns the parser's body pieces into `http.request` events and the app's
`http.response.*` messages into bytes (via protocol/writer), with back-pressure (protocol/flow).
The response head is held until the first body message, so the common start + single body
goes out in ONE transport.write with a computed Content-Length.

The 500/close policy, in one place (`app_done`, `_fail`):
* the app raises, returns without a complete response, or asks for an invalid one (bad status,
  header with CR/LF/NUL, body longer than its Content-Length): if nothing reached the wire we
  answer 500 and close; otherwise we close the connection (the client sees a truncated reply).
* the client disconnects: receive() returns `http.disconnect`; the app is NOT cancelled; its
  later send() calls raise `ClientDisconnected` (an OSError, as ASGI spec 2.4 allows), which
  Starlette and others turn into their own ClientDisconnect. It is never logged as an error.

Output corking: while the host runs one synchronous step of the app (`corked`), the response's
writes are held and go out as one write when the step ends.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, Final

from aioprefork.asgi.cycle import AppCycle
from aioprefork.asgi.types import Message, Scope
from aioprefork.errors import ClientDisconnected, WriteTimeout
from aioprefork.wire.framing import BodyFraming
from aioprefork.wire.writer import (
    CONTINUE,
    LAST_CHUNK,
    STATUS_LINE,
    ResponseError,
    chunk,
    encode_head,
    encode_trailers,
    error_response,
    status_line,
)

__all__ = ["RequestCycle"]

log: Final = logging.getLogger("aioprefork.app")

_BIG: Final = 16 * 1024  # above this, a body is written as its own buffer, never joined
_CORK_LIMIT: Final = 64 * 1024  # held bytes that go out at once, even mid-step
_REQUEST: Final[dict[str, Any]] = {"type": "http.request", "body": b"", "more_body": False}
_FILE_EVENTS: Final = frozenset({"http.response.pathsend", "http.response.zerocopysend"})


# What a cycle needs from its connection: transport, flow, defaults, write_timeout, and two
# callbacks, response_done(cycle) (count it, then keep-alive or close) and body_wanted(cycle)
# (resume reading, arm body_timeout). Typed as the one class that owns cycles, not as a Protocol:
# the compiled build then calls its methods and reads its fields natively, not by name.
if TYPE_CHECKING:
    from aioprefork.http.protocol import HttpProtocol as Owner


def _accepts_trailers(headers: list[tuple[bytes, bytes]]) -> bool:
    """The request's TE field lists `trailers` (RFC 9110 section 10.1.4)."""
    for name, value in headers:
        if name == b"te":
            for token in value.split(b","):
                if token.strip().lower() == b"trailers":
                    return True
    return False


def _disconnect() -> Message:
    return {"type": "http.disconnect"}


class RequestCycle(AppCycle):
    """The state of one request/response exchange, shared by the protocol and the app.

    No __slots__: most fields keep their class-level default for the whole request, so a new
    cycle only stores the handful that differ (this object is made once per request).
    """

    # Request side.
    more_body = False  # body bytes still to come from the client
    _expect = False  # Expect: 100-continue still unanswered
    # Response side.
    status = 0
    sent = 0  # body bytes written
    _length = -1  # Content-Length of the response, -1 = none
    _chunked = False
    # Output corking: while the host runs one synchronous step of the app, the response's bytes
    # are held and go out as ONE write when the step ends (a 10-chunk stream: one send(2), not
    # eleven), when the response completes, or when _CORK_LIMIT bytes pile up.
    _held: list[bytes] | None = None
    _held_size = 0

    def __init__(
        self,
        owner: Owner,
        scope: Scope,
        framing: BodyFraming,
        method: str,
        target: bytes,
        http11: bool,
        keep_alive: bool,
        start: float,
    ) -> None:
        self._owner = owner
        self.scope = scope
        self.method = method
        self.target = target
        self.http11 = http11
        self.keep_alive = keep_alive
        self.start = start
        if framing.length:
            self.more_body = True
            self._expect = framing.expect_continue

    @property
    def response_headers(self) -> Any:
        """The header fields of the app's response start (the access log's %{Name}o); () if none."""
        head = self._head
        return () if head is None else head[1]

    # --- fed by the protocol ----------------------------------------------------------------

    def end_body(self) -> None:
        self.more_body = False
        self._wake()

    def disconnect(self) -> None:
        """The connection is gone (or the request was refused mid-body): no more I/O."""
        self.disconnected = True
        self._wake()

    async def _wait(self) -> None:
        waiter = self._waiter
        if waiter is None:
            waiter = self._waiter = asyncio.get_running_loop().create_future()
        await waiter

    # --- the ASGI callables -----------------------------------------------------------------

    async def receive(self) -> Message:
        if not self._delivered and not self.disconnected:
            if self.more_body and not self._pieces:
                if self._expect:
                    self._expect = False
                    if not self.head_sent:
                        self._write(CONTINUE)
                self._owner.body_wanted(self)
                while self.more_body and not self._pieces and not self.disconnected:
                    await self._wait()
                if self.disconnected:
                    return _disconnect()
            pieces = self._pieces
            body = (b"".join(pieces) if len(pieces) > 1 else pieces[0]) if pieces else b""
            more = self.more_body
            if pieces:
                self._pieces = ()
                self.buffered = 0
                if more:
                    self._owner.body_wanted(self)
            if not more:
                self._delivered = True
            event = _REQUEST.copy()  # a copy of a template beats a dict display
            event["body"] = body
            event["more_body"] = more
            return event
        while not (self.disconnected or self.complete):
            await self._wait()
        return _disconnect()

    async def send(self, message: Message) -> None:
        # Events are dicts (ASGI); typed as one here so the compiled build does dict lookups
        # directly instead of method calls. Any other mapping is copied into one.
        event: dict[str, Any] = message if type(message) is dict else dict(message)
        kind: str = event["type"]  # a str compares natively (a non-str is an app error)
        if self.disconnected:
            raise ClientDisconnected("client disconnected")
        if kind == "http.response.body":
            if self._head is None or self.complete:
                raise RuntimeError(f"unexpected ASGI message {kind!r} in this state")
            body = event.get("body", b"")
            more = event.get("more_body", False)
            if not self.head_sent:
                self._send_head(body, more)
            elif body:
                self._send_body(body)
            if not more:
                self._finish()
            elif self._owner.flow.write_paused:
                await self._drain()
        elif kind == "http.response.start":
            if self._head is not None:
                raise RuntimeError("http.response.start sent twice")
            status = event["status"]
            if type(status) is not int or status not in STATUS_LINE or status < 200:
                self._fail()
                status_line(status)  # raises ResponseError, naming the bad status
                # an interim (1xx) status is no final answer (RFC 9110 section 15.2)
                raise ResponseError(f"status {status} cannot end a response")
            self._head = (status, event.get("headers", ()), event.get("trailers", False))
            self.status = status
        elif kind in _FILE_EVENTS:
            if self._head is None or self.complete:
                raise RuntimeError(f"unexpected ASGI message {kind!r} in this state")
            await self._send_file(event)
        elif kind == "http.response.trailers":
            self._send_trailers(event)
        else:
            raise RuntimeError(f"unexpected ASGI message {kind!r}")

    async def _drain(self) -> None:
        """Wait until the client reads; one that never does (or is gone) is a disconnect.

        Raised into the app as ClientDisconnected, never logged as an app error: a client that
        stops reading must not be able to fill the error log.
        """
        owner = self._owner
        try:
            await owner.flow.drain(owner.write_timeout)
        except WriteTimeout:
            self.disconnected = True
            owner.transport.abort()
            raise ClientDisconnected("client did not read within write_timeout") from None
        except ConnectionError:
            self.disconnected = True
            raise ClientDisconnected("client disconnected") from None

    def _send_trailers(self, event: dict[str, Any]) -> None:
        """http.response.trailers, after the last body message of a response that promised them.

        The fields of every message are written together, after the last chunk, when the final
        one (more_trailers false) arrives. A response that cannot carry them (no chunked coding:
        HTTP/1.0, HEAD, 204/304, the app's own Content-Length) or whose client did not send
        `TE: trailers` (ASGI's HTTP Trailers extension) ended at its last body message; its
        trailers messages are accepted and dropped.
        """
        fields = self._take_trailers(event)
        if fields is None:
            return
        try:
            data = encode_trailers(fields)
        except ResponseError:
            self._fail()
            raise
        self._write(data)
        self._complete()

    async def _send_file(self, message: Message) -> None:
        """http.response.pathsend / zerocopysend: the file goes out zero-copy (asgi/pathsend)."""
        from aioprefork.http import pathsend

        region = pathsend.open_region(message)
        self.uncork()  # the file goes straight to the socket: what is held goes first
        try:
            more = region.more_body
            if not self.head_sent:
                self._send_head(b"", more, region.count, known=True)
            owner = self._owner
            owner.flush_held()
            if not region.count or not self._body_allowed():
                pass
            elif 0 <= self._length < self.sent + region.count:
                self._fail()
                raise ResponseError("file longer than the response's Content-Length")
            elif self._chunked:
                owner.transport.write(b"%x\r\n" % region.count)
                self.sent += await pathsend.send_region(
                    owner.transport, owner.flow, region, owner.write_timeout
                )
                owner.transport.write(b"\r\n")
            else:
                self.sent += await pathsend.send_region(
                    owner.transport, owner.flow, region, owner.write_timeout
                )
        except (ClientDisconnected, pathsend.ShortFile):
            self.disconnected = True
            self._fail()
            raise
        finally:
            region.close()
        if not more:
            self._finish()

    def _body_allowed(self) -> bool:
        return not (self.method == "HEAD" or self.status < 200 or self.status in (204, 304))

    def _send_head(self, body: bytes, more: bool, length: int = -1, known: bool = False) -> None:
        """Write the head (with `body` when it fits in the same write).

        `length` >= 0 overrides len(body) as the body's size; `known`: that size is certain
        (a file), so a HEAD response carries it too.
        """
        assert self._head is not None
        status, headers, trailers = self._head
        keep_alive = self.keep_alive and not self.more_body  # else unread body bytes follow
        head_request = self.method == "HEAD"
        try:
            head, length, chunked, keep_alive = encode_head(
                status,
                headers,
                self._owner.defaults,
                keep_alive,
                self.http11,
                head_request and not known,
                -1 if more or trailers else (length if length >= 0 else len(body)),
            )
        except ResponseError:
            self._fail()
            raise
        self.keep_alive = keep_alive
        self._length = length
        self._chunked = chunked
        body_allowed = self._body_allowed()
        if trailers:
            if chunked and body_allowed and _accepts_trailers(self.scope["headers"]):
                self._trailers = True
            else:
                self._dropping_trailers = True
        if not body_allowed:
            self.head_sent = True
            self._write(head)
            return
        if length >= 0 and len(body) > length:
            self._fail()
            raise ResponseError("response body longer than its Content-Length")
        self.head_sent = True
        if not body:
            self._write(head)
            return
        self.sent = len(body)
        if len(body) >= _BIG:  # no copy of a big body into the head's buffer
            if chunked:
                self._write_pieces((head + b"%x\r\n" % len(body), body, b"\r\n"))
            else:
                self._write_pieces((head, body))
        elif chunked:
            self._write(head + chunk(body))
        elif more or self._held is not None:
            self._write(head + body)
        else:
            self._owner.write(head + body)  # the whole response: nothing to hold

    def _send_body(self, body: bytes) -> None:
        if not self._body_allowed():
            return
        sent = self.sent + len(body)
        if 0 <= self._length < sent:
            self._fail()
            raise ResponseError("response body longer than its Content-Length")
        self.sent = sent
        if self._chunked:
            if len(body) < _BIG:
                self._write(chunk(body))
            else:
                self._write_pieces((b"%x\r\n" % len(body), body, b"\r\n"))
        else:
            self._write(body)

    def _finish(self) -> None:
        """The last body message: end the framing, or fail a short Content-Length body."""
        if not self._body_allowed():
            self._complete()
        elif self._chunked:
            if not self._trailers:
                self._write(LAST_CHUNK)
                self._complete()
        elif 0 <= self._length != self.sent:
            self._fail()
            raise ResponseError(
                f"response body shorter than its Content-Length ({self.sent} < {self._length})"
            )
        else:
            self._complete()

    def _write(self, data: bytes) -> None:
        if not self.corked:
            self._owner.write(data)
            return
        held = self._held
        if held is None:
            self._held = [data]
            self._held_size = len(data)
        else:
            held.append(data)
            self._held_size += len(data)
            if self._held_size >= _CORK_LIMIT:
                self._flush()

    def _write_pieces(self, pieces: tuple[bytes, ...]) -> None:
        """Several buffers in order, as one writev when not corked (a big body is never copied)."""
        if not self.corked:
            self._owner.writelines(pieces)
            return
        for data in pieces:
            self._write(data)

    def _flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if len(held) == 1:
                self._owner.write(held[0])
            elif self._held_size < _BIG:
                self._owner.write(b"".join(held))
            else:
                self._owner.writelines(held)

    def uncork(self) -> None:
        """The step ended (the app waits or returned): write what is held, in one go."""
        self.corked = False
        if self._held is not None:
            self._flush()

    def _complete(self) -> None:
        self.uncork()
        self.complete = True
        self._wake()
        self._owner.response_done(self)

    def abandon(self, status: int) -> None:
        """request_timeout passed: answer `status` if nothing was written, else drop the
        connection; the app's later send() calls raise ClientDisconnected."""
        self._fail(status)

    def _fail(self, status: int = 500) -> None:
        """An invalid response: 500 if nothing was written, else drop the connection."""
        if self.complete:
            return
        self.uncork()
        self.keep_alive = False
        if not self.head_sent and not self.disconnected:
            self._owner.write(error_response(status, self._owner.defaults, self.method == "HEAD"))
            self.status = status
            self._head = None  # the app's header fields never went out
            self.head_sent = True
        elif self.head_sent:
            self._owner.transport.abort()
        self.complete = True
        self.disconnected = True  # later send() calls raise, receive() says disconnect
        self._wake()
        self._owner.response_done(self)

    def app_done(self, exc: BaseException | None) -> None:
        """The app coroutine finished (`exc` = what it raised): enforce the 500/close policy."""
        self.finished = True
        if exc is not None:
            if isinstance(exc, ClientDisconnected) or (self.disconnected and self.complete):
                log.debug("app stopped after the client disconnected: %r", exc)
            elif isinstance(exc, asyncio.CancelledError):
                log.debug("app cancelled")
            else:
                log.error("Exception in ASGI application", exc_info=exc)
        elif not self.complete and not self.disconnected:
            log.error("ASGI application returned without completing the response")
        if not self.complete:
            self._fail()
