"""The asyncio protocol a connection becomes after `Upgrade: websocket` (RFC 6455).

Internal. The HTTP protocol calls `upgrade_to_websocket()` on a GET with `Upgrade: websocket`:
the transport's protocol is swapped for a `WebSocketProtocol`, which from then on owns the
connection. It runs the opening handshake, the frame codec, the closing handshake and the
keep-alive pings, and hands whole messages to the ASGI session (http/ws_session.py), which runs
the app. Everything RFC 6455 says about bytes is done by a sans-I/O library; this module only
moves bytes and keeps time.

Why the `websockets` sans-I/O layer (`ServerProtocol`) and not wsproto: it is the actively
maintained one (wsproto gets a release every year or two), it unmasks frames in C (its
`speedups` module; wsproto masks in pure Python, the hot loop of a WebSocket server), it
enforces `max_size` while parsing rather than after buffering a whole message, its
permessage-deflate supports every RFC 7692 parameter with sane memory defaults, and it already
answers pings and echoes close frames itself. We use two instances of it: one, in CONNECTING,
only to validate the upgrade request and negotiate extensions (`accept()`); one created OPEN
with the negotiated extensions to parse and build frames, since the HTTP core has already parsed
the request head that the first one would otherwise want to read.

Invariants: the connection is in `stats.connections` (phase "upgraded") from the hand-off until
connection_lost; reading pauses while `max_queue` messages wait for the app; the server closes
the TCP connection (RFC 6455 section 7.1.1), at the latest CLOSE_TIMEOUT after it sent a close
frame; connection_lost cancels every timer and tells the session once.
"""

from __future__ import annotations

import asyncio
import codecs
import logging
import os
import time
from typing import Final

from websockets.datastructures import Headers
from websockets.extensions.base import ServerExtensionFactory
from websockets.extensions.permessage_deflate import ServerPerMessageDeflateFactory
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import OPEN
from websockets.server import ServerProtocol

from aioprefork.asgi.types import ASGIApp, Scope
from aioprefork.config.model import HttpLimits, WsLimits
from aioprefork.errors import ClientDisconnected, WriteTimeout
from aioprefork.http.stats import WorkerStats
from aioprefork.http.ws_session import WebSocketSession, websocket_scope
from aioprefork.wire.accesslog import AccessLogger, HeaderFields
from aioprefork.wire.flow import FlowControl
from aioprefork.wire.writer import (
    LAST_CHUNK,
    DefaultHeaders,
    chunk,
    encode_head,
    error_response,
    status_line,
)

__all__ = ["CLOSE_TIMEOUT", "WebSocketProtocol", "upgrade_to_websocket"]

# websockets' own close_timeout default: how long we wait for the peer's close frame (and for
# the last bytes to leave) before we drop the TCP connection.
CLOSE_TIMEOUT: Final = 10.0
GOING_AWAY: Final = 1001  # RFC 6455 section 7.4.1: "server going down"
ABNORMAL: Final = 1006  # no close frame was received (never sent on the wire)
_INVALID_DATA: Final = 1007
_INTERNAL_ERROR: Final = 1011

# websockets logs "connection open/closed" at INFO for every connection; keep that out of the
# error log unless someone lowers this logger's level on purpose.
_frames_log = logging.getLogger("aioprefork.websocket")
_frames_log.setLevel(logging.WARNING)

_TEXT: Final = Opcode.TEXT
_BINARY: Final = Opcode.BINARY
_CONT: Final = Opcode.CONT
_PONG: Final = Opcode.PONG
_Utf8Decoder: Final = codecs.getincrementaldecoder("utf-8")


class _Codec(ServerProtocol):
    """websockets' frame codec, with one leniency RFC 6455 allows.

    A close frame in the middle of a fragmented message ends the connection either way; the
    peer expects its close code echoed (Autobahn 7.1.5), where websockets would fail the
    connection with 1002. The unfinished message is dropped, as it would be anyway.
    """

    def recv_frame(self, frame: Frame) -> None:
        if frame.opcode is Opcode.CLOSE:
            self.current_size = None
        super().recv_frame(frame)


def _extensions(limits: WsLimits) -> list[ServerExtensionFactory]:
    if not limits.per_message_deflate:
        return []
    # websockets' defaults for servers: 4 KiB windows and memLevel 5 keep a compressor around
    # 64 KiB instead of ~300 KiB per connection, for little loss of ratio.
    return [
        ServerPerMessageDeflateFactory(
            server_max_window_bits=12,
            client_max_window_bits=12,
            compress_settings={"memLevel": 5},
        )
    ]


def upgrade_to_websocket(
    transport: asyncio.Transport,
    http_scope: Scope,
    app: ASGIApp,
    limits: HttpLimits,
    stats: WorkerStats,
    defaults: DefaultHeaders,
    buffered: bytes = b"",
    *,
    access: AccessLogger | None = None,
    peer: str = "-",
    target: bytes = b"",
) -> WebSocketProtocol:
    """Take `transport` over after a WebSocket upgrade request; the caller stops using it.

    `http_scope` is the http scope the HTTP core built for the request (headers, client, proxy
    resolution, tls and state already done); `buffered` is what was read past its head. The
    caller has already dropped the connection from `stats.connections` and cancelled its own
    timers; `limits.websocket` is not None (the caller checks ws is enabled). `access`, when
    given, gets the handshake's line and the session's closing line (`peer`: the TCP peer's
    address, `target`: the request target as sent).
    """
    assert limits.websocket is not None
    protocol = WebSocketProtocol(
        transport,
        websocket_scope(http_scope),
        limits.websocket,
        stats,
        defaults,
        write_timeout=limits.write_timeout,
        access=_AccessLine(access, http_scope, peer, target) if access is not None else None,
    )
    transport.set_protocol(protocol)
    protocol.start(app, http_scope, buffered)
    return protocol


class _AccessLine:
    """What the access log needs about one WebSocket session, kept from its upgrade request."""

    __slots__ = ("client", "headers", "logger", "peer", "target", "version")

    def __init__(self, logger: AccessLogger, http_scope: Scope, peer: str, target: bytes) -> None:
        client = http_scope.get("client")
        self.logger = logger
        self.client: str = client[0] if client else "-"
        self.peer = peer
        self.target = target
        self.version: str = http_scope.get("http_version", "1.1")
        self.headers: list[tuple[bytes, bytes]] = http_scope["headers"]

    def handshake(self, status: int, sent: int, headers: HeaderFields, duration: float) -> None:
        if self.logger.enabled:
            self.logger.log(
                client=self.client,
                peer=self.peer,
                method="GET",
                target=self.target,
                http_version=self.version,
                status=status,
                size=sent,
                request_headers=self.headers,
                response_headers=headers,
                duration=duration,
                now=time.time(),
                event="websocket.handshake",
            )

    def close(self, code: int, sent: int, headers: HeaderFields, duration: float) -> None:
        if self.logger.enabled:
            self.logger.log_websocket_close(
                client=self.client,
                peer=self.peer,
                target=self.target,
                http_version=self.version,
                size=sent,
                request_headers=self.headers,
                response_headers=headers,
                duration=duration,
                now=time.time(),
                close_code=code,
            )


class WebSocketProtocol(asyncio.Protocol):
    """One upgraded connection: frames in and out, pings, and the closing handshake."""

    def __init__(
        self,
        transport: asyncio.Transport,
        scope: Scope,
        limits: WsLimits,
        stats: WorkerStats,
        defaults: DefaultHeaders,
        *,
        write_timeout: float,
        access: _AccessLine | None = None,
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._access = access
        self._sent = 0  # bytes written after the 101 (the access log's closing line)
        self._accepted_headers: HeaderFields = ()
        self._transport = transport
        self._flow = FlowControl(transport, self._loop)
        self._limits = limits
        self._stats = stats
        self._defaults = defaults
        self._write_timeout = write_timeout
        self._started = time.monotonic()
        self.session = WebSocketSession(self, scope, limits.max_queue)
        self._handshake: ServerProtocol | None = None
        self._response: Response | None = None
        self._proto: _Codec | None = None  # the frame codec, once the 101 is sent
        self._early: list[bytes] = []  # bytes that came before our 101
        self._task: asyncio.Task[None] | None = None
        self._decoder: codecs.IncrementalDecoder | None = None  # a text message in progress
        self._parts: list[bytes] = []  # a binary message in progress
        self._texts: list[str] = []  # the decoded pieces of a text message in progress
        self._ping_handle: asyncio.TimerHandle | None = None
        self._pong_handle: asyncio.TimerHandle | None = None
        self._ping_payload = b""
        self._close_handle: asyncio.TimerHandle | None = None
        self._deny: tuple[int, list[tuple[bytes, bytes]]] | None = None
        self._deny_chunked = False
        self._going_away = False
        self._lost = False
        stats.connections.add(self)

    # --- what the worker sees (worker/stats.Connection) -------------------------------------

    @property
    def phase(self) -> str:
        return "upgraded"

    def shutdown(self) -> None:
        """Graceful stop: close with 1001 once what the app already sent is on its way."""
        self._going_away = True
        proto = self._proto
        if proto is not None and proto.state is OPEN and not self._lost:
            self._close(GOING_AWAY, "")
        # Still in the handshake: accept() sees _going_away and closes right after the 101.

    def abort(self) -> None:
        """Close now. The app is not cancelled (as for HTTP): its receive() says disconnect."""
        self._transport.abort()
        self.connection_lost(None)  # now, not on the next loop turn

    # --- the opening handshake --------------------------------------------------------------

    def start(self, app: ASGIApp, http_scope: Scope, buffered: bytes) -> None:
        """Check the upgrade request; run the app if it is a valid handshake, else answer it."""
        raw_path: bytes = http_scope.get("raw_path") or http_scope["path"].encode()
        query: bytes = http_scope.get("query_string", b"")
        request = Request(
            (raw_path + b"?" + query if query else raw_path).decode("latin-1"),
            Headers((k.decode("latin-1"), v.decode("latin-1")) for k, v in http_scope["headers"]),
            method=http_scope.get("method", "GET"),
            protocol="HTTP/" + http_scope.get("http_version", "1.1"),
        )
        handshake = ServerProtocol(
            extensions=_extensions(self._limits),
            max_size=self._limits.max_size,
            logger=_frames_log,
        )
        response = handshake.accept(request)
        if buffered:
            self._early.append(buffered)
        if response.status_code != 101:
            # Not a valid WebSocket handshake (bad key, version, method...): the app never sees it.
            self.session.disconnected(ABNORMAL)
            self._answer(response.status_code, response.serialize())
            return
        self._handshake = handshake
        self._response = response
        if not self._transport.is_reading():  # whatever the HTTP side paused is ours to resume
            self._transport.resume_reading()
        self._task = self._loop.create_task(self.session.run(app))

    def accept(self, subprotocol: str | None, headers: list[tuple[bytes, bytes]]) -> None:
        handshake, response = self._handshake, self._response
        if self._lost or handshake is None or response is None:
            raise ClientDisconnected("websocket closed before the handshake completed")
        self._handshake = self._response = None
        parts = [status_line(101)]
        for key, text in response.headers.raw_items():
            if key != "Date":  # ours comes with the Server line, cached once a second
                parts.append(f"{key}: {text}\r\n".encode("latin-1"))
        if subprotocol is not None:
            parts.append(b"sec-websocket-protocol: %s\r\n" % subprotocol.encode())
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts += (self._defaults.block, b"\r\n")
        head = b"".join(parts)
        self._transport.write(head)
        self._accepted_headers = headers
        self._observe(101, len(head), headers)

        proto = _Codec(state=OPEN, max_size=self._limits.max_size, logger=_frames_log)
        proto.extensions = handshake.extensions
        self._proto = proto
        if self._limits.ping_interval > 0:
            self._ping_handle = self._loop.call_later(self._limits.ping_interval, self._ping)
        early, self._early = self._early, []
        if early:
            self._flow.resume_reading()
            self._receive(b"".join(early))
        if self._going_away and proto.state is OPEN:
            self._close(GOING_AWAY, "")

    def reject(self, status: int) -> None:
        self._drop_handshake()
        self._answer(status, error_response(status, self._defaults))

    def respond_start(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self._drop_handshake()
        self._deny = (status, headers)

    def respond_body(self, body: bytes, more_body: bool) -> None:
        if self._lost:
            return
        if self._deny is not None:
            status, headers = self._deny
            self._deny = None
            head, _, chunked, _ = encode_head(
                status,
                headers,
                self._defaults,
                keep_alive=False,
                body_length=-1 if more_body else len(body),
            )
            self._deny_chunked = chunked
            self._transport.write(head)
            self._observe(status, len(head) + len(body), headers)
        if body:
            self._transport.write(chunk(body) if self._deny_chunked else body)
        if not more_body:
            if self._deny_chunked:
                self._transport.write(LAST_CHUNK)
            self._transport.close()

    def _drop_handshake(self) -> None:
        self._handshake = self._response = None
        self._early.clear()

    def _answer(self, status: int, data: bytes) -> None:
        """A complete HTTP answer instead of the 101; the server closes after it."""
        if not self._lost:
            self._transport.write(data)
            self._transport.close()
        self._observe(status, len(data))

    def _observe(self, status: int, sent: int, headers: HeaderFields = ()) -> None:
        """The handshake's outcome: 101, or the status that denied it (counted and logged)."""
        duration = time.monotonic() - self._started
        self._stats.observe("GET", status, duration, sent)
        if self._access is not None:
            self._access.handshake(status, sent, headers, duration)

    # --- frames in --------------------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._proto is None:
            # The client may not send frames before our 101 (RFC 6455 section 4.1), but if it
            # does, keep them for after the app accepts and stop reading meanwhile.
            self._early.append(data)
            self._flow.pause_reading()
            return
        self._receive(data)

    def eof_received(self) -> bool | None:
        proto = self._proto
        if proto is not None:
            proto.receive_eof()
            self._flush()
        return None  # let the transport close itself

    def _receive(self, data: bytes) -> None:
        proto = self._proto
        assert proto is not None
        proto.receive_data(data)
        session = self.session
        for frame in proto.events_received():
            if not isinstance(frame, Frame):  # only a CONNECTING codec yields Request/Response
                continue
            opcode = frame.opcode
            if opcode is _TEXT:
                if frame.fin:
                    try:
                        text = bytes(frame.data).decode()
                    except UnicodeDecodeError:
                        self._fail(_INVALID_DATA, "invalid UTF-8 in a text message")
                        break
                    session.deliver({"type": "websocket.receive", "text": text})
                else:
                    self._decoder = _Utf8Decoder()
                    if not self._decode(bytes(frame.data), False):
                        break
            elif opcode is _BINARY:
                if frame.fin:
                    session.deliver({"type": "websocket.receive", "bytes": bytes(frame.data)})
                else:
                    self._parts = [bytes(frame.data)]
            elif opcode is _CONT:
                if self._decoder is not None:
                    if not self._decode(bytes(frame.data), frame.fin):
                        break
                else:
                    self._parts.append(bytes(frame.data))
                    if frame.fin:
                        parts, self._parts = self._parts, []
                        session.deliver({"type": "websocket.receive", "bytes": b"".join(parts)})
            elif (
                opcode is _PONG
                and self._pong_handle is not None
                and frame.data == self._ping_payload
            ):
                self._pong_handle.cancel()
                self._pong_handle = None
        self._flush()

    def _decode(self, data: bytes, final: bool) -> bool:
        """Feed a piece of a fragmented text message; fail fast on invalid UTF-8."""
        decoder = self._decoder
        assert decoder is not None
        try:
            text = decoder.decode(data, final)
        except UnicodeDecodeError:
            self._decoder = None
            self._fail(_INVALID_DATA, "invalid UTF-8 in a text message")
            return False
        self._texts.append(text)
        if final:
            texts, self._texts = self._texts, []
            self._decoder = None
            self.session.deliver({"type": "websocket.receive", "text": "".join(texts)})
        return True

    # --- frames out -------------------------------------------------------------------------

    def send_data(self, data: str | bytes) -> None:
        proto = self._proto
        if proto is None or proto.state is not OPEN or self._lost:
            raise ClientDisconnected("websocket closed")
        if isinstance(data, str):
            proto.send_text(data.encode())
        else:
            proto.send_binary(data)
        self._flush()

    async def drain(self) -> None:
        if self._flow.write_paused:
            try:
                await self._flow.drain(self._write_timeout)
            except WriteTimeout:
                self._transport.abort()
                raise ClientDisconnected("client did not read within write_timeout") from None
            except ConnectionError:
                raise ClientDisconnected("websocket closed") from None

    def close(self, code: int, reason: str) -> None:
        proto = self._proto
        if proto is not None and proto.state is OPEN and not self._lost:
            self._close(code, reason)

    def drop(self) -> None:
        self._transport.abort()
        self.connection_lost(None)

    def _close(self, code: int, reason: str) -> None:
        proto = self._proto
        assert proto is not None
        proto.send_close(code, reason)
        self._flush()
        self._arm_close_timer()

    def _fail(self, code: int, reason: str) -> None:
        proto = self._proto
        assert proto is not None
        proto.fail(code, reason)
        self._flush()

    def _flush(self) -> None:
        proto = self._proto
        assert proto is not None
        for data in proto.data_to_send():
            if data:
                self._transport.write(data)
                self._sent += len(data)
            else:  # SEND_EOF: the server closes the TCP connection (RFC 6455 section 7.1.1)
                self._transport.close()
                self._arm_close_timer()

    def _arm_close_timer(self) -> None:
        if self._close_handle is None and not self._lost:
            self._close_handle = self._loop.call_later(CLOSE_TIMEOUT, self._transport.abort)

    # --- keep-alive -------------------------------------------------------------------------

    def _ping(self) -> None:
        proto = self._proto
        if proto is None or proto.state is not OPEN or self._lost:
            return
        limits = self._limits
        if self._pong_handle is None:
            self._ping_payload = os.urandom(4)
            proto.send_ping(self._ping_payload)
            self._flush()
            if limits.ping_timeout > 0:
                self._pong_handle = self._loop.call_later(limits.ping_timeout, self._no_pong)
        self._ping_handle = self._loop.call_later(limits.ping_interval, self._ping)

    def _no_pong(self) -> None:
        self._pong_handle = None
        proto = self._proto
        if proto is not None and proto.state is OPEN and not self._lost:
            self._fail(_INTERNAL_ERROR, "keepalive ping timeout")

    # --- transport callbacks ----------------------------------------------------------------

    def pause_writing(self) -> None:
        self._flow.pause_writing()

    def resume_writing(self) -> None:
        self._flow.resume_writing()

    def pause_reading(self) -> None:
        self._flow.pause_reading()

    def resume_reading(self) -> None:
        if self._proto is not None:  # before the 101, early bytes keep reading paused
            self._flow.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lost:
            return
        self._lost = True
        for handle in (self._ping_handle, self._pong_handle, self._close_handle):
            if handle is not None:
                handle.cancel()
        self._ping_handle = self._pong_handle = self._close_handle = None
        self._flow.connection_lost()
        self._stats.connections.discard(self)
        self._handshake = self._response = None
        proto = self._proto
        received = proto.close_rcvd if proto is not None else None
        if received is not None:
            self.session.disconnected(received.code, received.reason)
        else:
            self.session.disconnected(ABNORMAL)
        if proto is not None and self._access is not None:
            # the peer's close code; else ours (it never answered); 1006: no close frame at all
            sent_close = proto.close_sent
            code = (
                received.code
                if received is not None
                else (sent_close.code if sent_close is not None else ABNORMAL)
            )
            duration = time.monotonic() - self._started
            self._access.close(code, self._sent, self._accepted_headers, duration)
