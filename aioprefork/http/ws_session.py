"""One WebSocket's ASGI side: the websocket scope, the app's receive()/send(), and the app run.

Internal. `WebSocketSession` is the ASGI websocket spec (asgiref 2.4) as a small state machine;
it never touches a socket. It drives a `WebSocketConnection` (http/websocket.py, which owns
the transport and the RFC 6455 codec) and is fed by it (`deliver`, `disconnected`).

    CONNECTING --accept--------------------> ACCEPTED --close / app returns--> CLOSED
        |------close / app returns (403)-----------------------------------> CLOSED
        |------http.response.start--> DENYING --body (more_body=False)-----> CLOSED

Policy, in one place (`run`):
* the app returns or raises before accepting: 403 (returned) or 500 (raised), no handshake;
* it returns or raises after accepting without closing: close 1000 (returned) or 1011 (raised);
* it returns in the middle of a denial response: the connection is dropped;
* send() once the connection is gone raises `ClientDisconnected` (an OSError, ASGI spec 2.4);
  an invalid message for the state raises RuntimeError.
Invariants: receive() yields `websocket.connect` first, then the peer's messages in order, then
one `websocket.disconnect` (repeated if asked again); at most `max_queue` messages wait here
before the connection is asked to stop reading.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Iterable
from typing import Any, Final, Protocol

from aioprefork.asgi.types import ASGIApp, Message, Scope
from aioprefork.errors import ClientDisconnected

__all__ = ["WebSocketConnection", "WebSocketSession", "check_headers", "websocket_scope"]

log: Final = logging.getLogger("aioprefork.app")

CONNECTING: Final = 0
ACCEPTED: Final = 1
DENYING: Final = 2
CLOSED: Final = 3

# RFC 6455 section 7.4.1 (and the IANA registry): the codes an endpoint may send.
NORMAL_CLOSURE: Final = 1000
INTERNAL_ERROR: Final = 1011
_SENDABLE: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

# Extensions of the http scope that make no sense on a websocket scope.
_HTTP_ONLY: Final = frozenset(
    {"http.response.pathsend", "http.response.zerocopysend", "http.response.trailers"}
)
_TOKEN: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 section 5.6.2
_BAD_VALUE: Final = re.compile(rb"[\r\n\x00]")


class WebSocketConnection(Protocol):
    """What a session needs from its connection (protocol/websocket.WebSocketProtocol)."""

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        """Send the 101 response (with the app's subprotocol and extra headers)."""

    def reject(self, status: int) -> None:
        """Answer the handshake with a small plain-text error and close."""

    def respond_start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        """Begin a denial response (`websocket.http.response.start`)."""

    def respond_body(self, body: bytes, more_body: bool) -> None:
        """Continue a denial response; close the connection after the last piece."""

    def send_data(self, data: str | bytes) -> None:
        """Send one text (str) or binary (bytes) message."""

    async def drain(self) -> None:
        """Wait while the client reads slower than we write."""

    def close(self, code: int, reason: str) -> None:
        """Start the closing handshake (if it has not started)."""

    def drop(self) -> None:
        """Close the TCP connection now."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


def websocket_scope(http_scope: Scope) -> Scope:
    """The websocket scope for an upgrade request, from the http scope the HTTP core built."""
    scope: dict[str, Any] = dict(http_scope)
    scope["type"] = "websocket"
    scope["scheme"] = "wss" if http_scope.get("scheme") in ("https", "wss") else "ws"
    scope.pop("method", None)
    subprotocols: list[str] = []
    for name, value in http_scope["headers"]:
        if name.lower() == b"sec-websocket-protocol":
            subprotocols += [p.strip() for p in value.decode("latin-1").split(",") if p.strip()]
    scope["subprotocols"] = subprotocols
    extensions = {
        k: v for k, v in (http_scope.get("extensions") or {}).items() if k not in _HTTP_ONLY
    }
    extensions["websocket.http.response"] = {}
    scope["extensions"] = extensions
    return scope


def check_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The app's extra headers as a list, refused (ValueError) if any could split the head."""
    checked: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if type(name) is not bytes or _TOKEN.match(name) is None:
            raise ValueError(f"invalid header name {name!r}")
        if type(value) is not bytes or _BAD_VALUE.search(value):
            raise ValueError(f"invalid value for header {name!r}")
        checked.append((name, value))
    return checked


class WebSocketSession:
    """The ASGI state of one WebSocket, shared by the connection and the app."""

    __slots__ = (
        "_conn",
        "_disconnect",
        "_inbox",
        "_max_queue",
        "_paused",
        "_waiter",
        "scope",
        "state",
    )

    def __init__(self, conn: WebSocketConnection, scope: Scope, max_queue: int) -> None:
        self._conn = conn
        self.scope = scope
        self.state = CONNECTING
        self._inbox: deque[Message] = deque([{"type": "websocket.connect"}])
        self._max_queue = max_queue
        self._paused = False
        self._disconnect: Message | None = None
        self._waiter: asyncio.Future[None] | None = None

    @property
    def gone(self) -> bool:
        """The connection is closed (or closing): nothing more goes out."""
        return self._disconnect is not None

    # --- fed by the connection --------------------------------------------------------------

    def deliver(self, message: Message) -> None:
        """One whole message from the peer; stop reading while the app lags `max_queue` behind."""
        self._inbox.append(message)
        if len(self._inbox) >= self._max_queue and not self._paused:
            self._paused = True
            self._conn.pause_reading()
        self._wake()

    def disconnected(self, code: int, reason: str = "") -> None:
        """The connection is gone (closing handshake done, or dropped); idempotent."""
        if self._disconnect is None:
            self._disconnect = {"type": "websocket.disconnect", "code": code, "reason": reason}
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    # --- the ASGI callables -----------------------------------------------------------------

    async def receive(self) -> Message:
        inbox = self._inbox
        while not inbox:
            if self._disconnect is not None:
                return self._disconnect
            waiter = self._waiter
            if waiter is None:
                waiter = self._waiter = asyncio.get_running_loop().create_future()
            await waiter
        message = inbox.popleft()
        if self._paused and len(inbox) < self._max_queue:
            self._paused = False
            self._conn.resume_reading()
        return message

    async def send(self, message: Message) -> None:
        kind = message["type"]
        state = self.state
        if state == ACCEPTED:
            if kind == "websocket.send":
                if self._disconnect is not None:
                    raise ClientDisconnected("websocket closed")
                self._conn.send_data(_payload(message))
                await self._conn.drain()
            elif kind == "websocket.close":
                self.state = CLOSED
                code, reason = _code(message), _reason(message)
                if self._disconnect is None:
                    self._conn.close(code, reason)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} after websocket.accept")
        elif state == CONNECTING:
            if self._disconnect is not None:
                raise ClientDisconnected("websocket closed before the handshake completed")
            if kind == "websocket.accept":
                subprotocol = message.get("subprotocol")
                if subprotocol is not None and (
                    not isinstance(subprotocol, str) or _TOKEN.match(subprotocol.encode()) is None
                ):
                    raise ValueError(f"invalid websocket.accept subprotocol {subprotocol!r}")
                headers = check_headers(message.get("headers") or ())
                self.state = ACCEPTED
                self._conn.accept(subprotocol, headers)
            elif kind == "websocket.close":
                self.state = CLOSED
                self._conn.reject(403)
            elif kind == "websocket.http.response.start":
                status = message["status"]
                if type(status) is not int or not 100 <= status <= 999 or status == 101:
                    raise ValueError(f"invalid denial response status {status!r}")
                headers = check_headers(message.get("headers") or ())
                self.state = DENYING
                self._conn.respond_start(status, headers)
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r} before websocket.accept")
        elif state == DENYING:
            if kind != "websocket.http.response.body":
                raise RuntimeError(f"unexpected ASGI message {kind!r} in a denial response")
            if self._disconnect is not None:
                raise ClientDisconnected("websocket closed")
            more = bool(message.get("more_body", False))
            if not more:
                self.state = CLOSED
            self._conn.respond_body(message.get("body", b""), more)
            if more:
                await self._conn.drain()
        else:
            if self._disconnect is not None:
                raise ClientDisconnected("websocket closed")
            raise RuntimeError(f"unexpected ASGI message {kind!r} after the websocket closed")

    # --- the app ----------------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        """Run the app to its end, then apply the close policy of the module docstring."""
        try:
            await app(self.scope, self.receive, self.send)
        except asyncio.CancelledError:
            self._finish(error=False)
            raise
        except ClientDisconnected:
            log.debug("websocket app stopped after the client disconnected")
            self._finish(error=False)
        except Exception:
            log.exception("Exception in ASGI application (websocket)")
            self._finish(error=True)
        else:
            self._finish(error=False)

    def _finish(self, *, error: bool) -> None:
        state = self.state
        self.state = CLOSED
        if self._disconnect is not None:
            if state == DENYING:
                self._conn.drop()
            return
        if state == CONNECTING:
            self._conn.reject(500 if error else 403)
        elif state == ACCEPTED:
            self._conn.close(INTERNAL_ERROR if error else NORMAL_CLOSURE, "")
        elif state == DENYING:
            self._conn.drop()


def _payload(message: Message) -> str | bytes:
    data = message.get("bytes")
    text = message.get("text")
    if data is not None:
        if text is not None:
            raise ValueError("websocket.send with both 'bytes' and 'text'")
        if not isinstance(data, bytes | bytearray | memoryview):
            raise TypeError("websocket.send 'bytes' must be bytes")
        return bytes(data)
    if not isinstance(text, str):
        raise TypeError("websocket.send needs 'bytes' or 'text'")
    return text


def _reason(message: Message) -> str:
    reason = message.get("reason") or ""
    if not isinstance(reason, str) or len(reason.encode()) > 123:
        # RFC 6455 section 5.5: a control frame carries at most 125 bytes, 2 of them the code
        raise ValueError("websocket.close reason must be a str of at most 123 UTF-8 bytes")
    return reason


def _code(message: Message) -> int:
    code = message.get("code", NORMAL_CLOSURE)
    if code is None:
        return NORMAL_CLOSURE
    if type(code) is not int or not (code in _SENDABLE or 3000 <= code <= 4999):
        raise ValueError(f"websocket.close code {code!r} cannot be sent (RFC 6455 section 7.4)")
    return code
