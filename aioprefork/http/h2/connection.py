"""H2Connection: one HTTP/2 connection (h2c by prior knowledge, or h2 by ALPN), serving ASGI.

Internal. http/protocol.HttpProtocol hands a connection over (`serve_http2`) when it starts with
the HTTP/2 preface or TLS negotiated `h2`; from then on this protocol owns the transport. It reads
frames (http/h2/frames.py), runs the stream states of RFC 9113 section 5.1, decodes header blocks
(http/h2/hpack.py), checks requests (http/h2/request.py) and runs one ASGI app per stream
(http/h2/stream.py) on the connection's AppHost: eagerly, inside data_received, like HTTP/1.1.

Output: every frame is appended to one buffer, written once at the end of data_received (or at
the end of the loop iteration when an app task wrote): one socket write per connection per
iteration, however many streams answered.

Flow control: connection credit is returned as soon as DATA is read (one WINDOW_UPDATE per read);
stream credit as the app reads the body (H2Stream.receive). Response bodies wait per stream for
the peer's windows, which SETTINGS_INITIAL_WINDOW_SIZE changes move.

Defences, each answered with the RFC's error and counted in `stats.rejected` (label h2_*):
rapid reset (resets per second -> GOAWAY ENHANCE_YOUR_CALM), CONTINUATION flood (a header block
bounded in bytes and frames), HPACK bombs (the decoder's header list limit), SETTINGS / PING /
empty-frame floods, zero-window stalls (a stream that cannot send for write_timeout is reset),
stream-id abuse (even, reused or decreasing ids: PROTOCOL_ERROR).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Final, cast
from urllib.parse import unquote_to_bytes

from aioprefork.config.model import H2Limits
from aioprefork.http.h2 import frames as f
from aioprefork.http.h2.frames import ConnectionError_, StreamError
from aioprefork.http.h2.hpack import Decoder, Encoder, HeaderListTooLarge, HpackError
from aioprefork.http.h2.request import Malformed, TooLarge, check_request, check_trailers
from aioprefork.http.h2.stream import H2Stream
from aioprefork.http.host import AppHost
from aioprefork.wire.display import address, cut_target
from aioprefork.wire.proxy import resolve_forwarded

if TYPE_CHECKING:
    from aioprefork.channel.messages import RequestRow
    from aioprefork.http.protocol import Shared

__all__ = ["H2Connection", "serve_http2"]

log: Final = logging.getLogger("aioprefork.http")

_ASGI: Final[dict[str, str]] = {"version": "3.0", "spec_version": "2.4"}
_CONNECTION_WINDOW: Final = 16 * 1024 * 1024  # what the peer may send before we read it
_FLOOD_INTERVAL: Final = 1.0  # seconds of each flood-counting window
_MAX_RESETS: Final = 200  # streams reset by the peer (or refused) per interval: rapid reset
_MAX_PINGS: Final = 100  # PING frames per interval
_MAX_SETTINGS: Final = 100  # SETTINGS frames per interval
_MAX_EMPTY: Final = 200  # DATA/CONTINUATION without payload or END flag per interval
_MAX_CONTINUATIONS: Final = 64  # CONTINUATION frames in one header block
_DRAIN_PING: Final = b"draining"  # the PING of a graceful stop (8 bytes)
_DRAIN_WAIT: Final = 1.0  # seconds a graceful stop waits for that PING before the last GOAWAY
_RECENT: Final = 512  # closed stream ids remembered (their late frames are told apart)
_CONTROL_BACKLOG: Final = 1024 * 1024  # bytes unread by the peer before control answers stop
# How a remembered stream closed: what a late frame on it gets.
_ENDED: Final = 0  # both sides sent END_STREAM: HEADERS/DATA are STREAM_CLOSED (connection)
_RESET_BY_US: Final = 1  # we reset it: late frames are ignored (they were in flight)
_RESET_BY_PEER: Final = 2  # the peer reset it: frames are a stream error STREAM_CLOSED
_METHODS: Final = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
}
_clock: Final = time.perf_counter


class _Flood:
    """Events per fixed window of _FLOOD_INTERVAL seconds; `hit` is True past `limit`."""

    __slots__ = ("count", "limit", "start")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.start = 0.0

    def hit(self, now: float) -> bool:
        if now - self.start > _FLOOD_INTERVAL:
            self.start = now
            self.count = 0
        self.count += 1
        return self.count > self.limit


def serve_http2(
    transport: asyncio.Transport,
    shared: Shared,
    template: dict[str, Any],
    extensions: dict[str, Any],
    trusted: bool,
    buffered: bytes,
    preface_read: bool,
) -> H2Connection:
    """Hand `transport` to a new H2Connection; `buffered`: bytes already read after the preface
    (or, `preface_read` False, from the start: the preface is still to come)."""
    limits = shared.limits.h2
    assert limits is not None
    connection = H2Connection(shared, limits, template, extensions, trusted, preface_read)
    transport.set_protocol(connection)
    connection.connection_made(transport)
    if buffered:
        connection.data_received(buffered)
    return connection


class H2Connection(asyncio.Protocol):
    def __init__(
        self,
        shared: Shared,
        limits: H2Limits,
        template: dict[str, Any],
        extensions: dict[str, Any],
        trusted: bool,
        preface_read: bool,
    ) -> None:
        self._shared = shared
        self._loop = shared.loop
        self._h2 = limits
        self._http = shared.limits
        self.write_timeout = shared.limits.write_timeout
        self.body_timeout = shared.limits.body_timeout
        self._template = template
        self._extensions = extensions
        self._trusted = trusted
        self._preface = not preface_read  # the 24-byte preface is still to be read
        self._settings_seen = False  # the client's first SETTINGS (its preface's end)
        self._buf = b""
        self._out: list[bytes] = []
        self._out_size = 0
        self._receiving = False
        self._flush_scheduled = False
        self._closed = False  # GOAWAY for an error sent, or connection lost: read nothing more
        self._going_away = False  # GOAWAY sent: no new streams
        self._draining = False  # graceful stop begun: GOAWAY 2^31-1 sent, the final one to come
        self._peer_gone = False  # the peer sent GOAWAY
        self._streams: dict[int, H2Stream] = {}
        self._recent: dict[int, int] = {}  # closed stream id -> how it closed
        self._last_sid = 0  # highest client stream id seen
        self._blocked: dict[H2Stream, None] = {}  # streams with body waiting for window
        self._write_paused = False
        # HEADERS + CONTINUATION being collected
        self._cont_sid = 0
        self._cont_block: list[bytes] = []
        self._cont_size = 0
        self._cont_frames = 0
        self._cont_end_stream = False
        self._cont_new = False
        self._cont_error = 0
        # receive side
        self._max_frame = limits.max_frame_size
        self._recv_window = f.DEFAULT_WINDOW  # the connection window we granted
        self._unacked = 0  # connection credit to return after this read
        self._stream_window = max(limits.window_size, f.DEFAULT_WINDOW)  # until SETTINGS ACK
        self._decoder = Decoder(max_header_list_size=limits.max_header_list_size)
        self._max_block = limits.max_header_list_size + 16 * 1024
        # send side
        self._encoder = Encoder()
        self._send_window = f.DEFAULT_WINDOW
        self._peer_initial = f.DEFAULT_WINDOW
        self._peer_max_frame = f.DEFAULT_FRAME_SIZE
        # floods
        self._resets = _Flood(max(_MAX_RESETS, 2 * limits.max_streams))
        self._pings = _Flood(_MAX_PINGS)
        self._settings = _Flood(_MAX_SETTINGS)
        self._empty = _Flood(_MAX_EMPTY)
        self._host = AppHost(shared.app, shared.loop)
        self._timer: asyncio.TimerHandle | None = None
        self._idle_at = 0.0
        self._date_line = b""
        self.server = b""
        self.date = b""
        self.phase = "keepalive"
        self.idle_since = 0.0
        self.streams_open = 0

    # --- asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self._shared.opened(self)
        self._host.start()
        limits = self._h2
        pairs = [
            (f.MAX_CONCURRENT_STREAMS, limits.max_streams),
            (f.INITIAL_WINDOW_SIZE, limits.window_size),
            (f.MAX_FRAME_SIZE, limits.max_frame_size),
            (f.MAX_HEADER_LIST_SIZE, limits.max_header_list_size),
        ]
        self._write(f.settings(pairs))
        self._write(f.window_update(0, _CONNECTION_WINDOW - f.DEFAULT_WINDOW))
        self._recv_window = _CONNECTION_WINDOW
        self.idle_since = self._loop.time()
        self._arm_idle(self._http.header_timeout if self._preface else self._http.keepalive_timeout)
        if not self._receiving:
            self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.phase = "closing"
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for stream in list(self._streams.values()):
            stream.disconnect()
            self._forget(stream, _RESET_BY_PEER)
        self._blocked.clear()
        self._out = []
        self._host.close()
        self._shared.closed(self)

    def eof_received(self) -> bool | None:
        return None

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._blocked:
            self._pump()
            self._flush()

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        buf = self._buf + data if self._buf else data
        self._receiving = True
        try:
            if self._preface:
                if len(buf) < len(f.PREFACE):
                    if not f.PREFACE.startswith(buf):
                        raise ConnectionError_(f.PROTOCOL_ERROR, "invalid connection preface")
                    self._buf = buf
                    return
                if not buf.startswith(f.PREFACE):
                    raise ConnectionError_(f.PROTOCOL_ERROR, "invalid connection preface")
                buf = buf[len(f.PREFACE) :]
                self._preface = False
            self._buf = self._frames(buf)
        except ConnectionError_ as exc:
            self._connection_error(exc.code, str(exc))
        except Exception:
            log.exception("HTTP/2 connection failed")
            self._connection_error(f.INTERNAL_ERROR, "internal error")
        finally:
            self._receiving = False
        if self._unacked and not self._closed:
            self._write(f.window_update(0, self._unacked))
            self._recv_window += self._unacked
            self._unacked = 0
        self._flush()

    # --- reading frames -----------------------------------------------------------------------

    def _frames(self, buf: bytes) -> bytes:
        """Handle every whole frame in `buf`; return what is left (a partial frame)."""
        offset = 0
        end = len(buf)
        max_frame = self._max_frame
        while end - offset >= 9 and not self._closed:
            length, kind, flags, sid = f.frame_header(buf, offset)
            if length > max_frame:
                raise ConnectionError_(
                    f.FRAME_SIZE_ERROR, "frame larger than SETTINGS_MAX_FRAME_SIZE"
                )
            start = offset + 9
            if end - start < length:
                break
            offset = start + length
            payload = buf[start:offset]
            try:
                self._frame(kind, flags, sid, payload)
            except StreamError as exc:
                self._stream_error(exc.stream_id, exc.code, str(exc))
        return buf[offset:] if offset < end else b""

    def _frame(self, kind: int, flags: int, sid: int, payload: bytes) -> None:
        if not self._settings_seen:
            # the client preface ends with a SETTINGS frame (RFC 9113 section 3.4)
            if kind != f.SETTINGS or flags & f.ACK:
                raise ConnectionError_(f.PROTOCOL_ERROR, "preface not followed by SETTINGS")
            self._settings_seen = True
        if self._cont_sid:
            if kind != f.CONTINUATION or sid != self._cont_sid:
                raise ConnectionError_(f.PROTOCOL_ERROR, "expected CONTINUATION")
            self._on_continuation(flags, payload)
        elif kind == f.DATA:
            self._on_data(flags, sid, payload)
        elif kind == f.HEADERS:
            self._on_headers(flags, sid, payload)
        elif kind == f.SETTINGS:
            self._on_settings(flags, sid, payload)
        elif kind == f.WINDOW_UPDATE:
            self._on_window_update(sid, payload)
        elif kind == f.RST_STREAM:
            self._on_rst_stream(sid, payload)
        elif kind == f.PING:
            self._on_ping(flags, sid, payload)
        elif kind == f.PRIORITY:
            self._on_priority(sid, payload)
        elif kind == f.GOAWAY:
            if sid:
                raise ConnectionError_(f.PROTOCOL_ERROR, "GOAWAY on a stream")
            f.parse_goaway(payload)
            self._peer_gone = True
            self._going_away = True
            if not self._streams:
                self._close()
        elif kind == f.CONTINUATION:
            raise ConnectionError_(f.PROTOCOL_ERROR, "CONTINUATION without HEADERS")
        elif kind == f.PUSH_PROMISE:
            raise ConnectionError_(f.PROTOCOL_ERROR, "PUSH_PROMISE from a client")
        # unknown frame types are ignored (section 5.5)

    def _late_frame(self, sid: int, kind: str) -> None:
        """A DATA or HEADERS frame on a stream that is not open."""
        if sid > self._last_sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, f"{kind} on an idle stream")
        how = self._recent.get(sid, _ENDED)
        if how == _RESET_BY_US:
            return
        if how == _RESET_BY_PEER:
            raise StreamError(sid, f.STREAM_CLOSED, f"{kind} on a reset stream")
        raise ConnectionError_(f.STREAM_CLOSED, f"{kind} on a closed stream")

    def _on_data(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "DATA on stream 0")
        length = len(payload)
        self._recv_window -= length
        if self._recv_window < 0:
            raise ConnectionError_(f.FLOW_CONTROL_ERROR, "connection window exceeded")
        self._unacked += length
        stream = self._streams.get(sid)
        if stream is None:
            self._late_frame(sid, "DATA")
            return
        if stream.remote_closed:
            raise StreamError(sid, f.STREAM_CLOSED, "DATA after END_STREAM")
        data = f.strip_padding(payload, flags)
        end = flags & f.END_STREAM
        if not length and not end and self._empty.hit(self._loop.time()):
            self._calm("h2_empty_frames", "empty frame flood")
            return
        stream.recv_window -= length
        if stream.recv_window < 0:
            raise StreamError(sid, f.FLOW_CONTROL_ERROR, "stream window exceeded")
        if length > len(data):  # padding: its credit comes back at once
            self._stream_credit(stream, length - len(data))
        size = len(data)
        if size:
            stream.received += size
            if 0 <= stream.content_length < stream.received:
                self._shared.stats.reject("h2_malformed")
                raise StreamError(sid, f.PROTOCOL_ERROR, "DATA beyond content-length")
            limit = self._http.limit_request_body
            if 0 < limit < stream.received:
                self._shared.stats.reject("body_too_large")
                if not stream.head_sent:
                    self._answer(stream, 413)
                raise StreamError(sid, f.CANCEL, "request body too large")
            if stream.complete:
                self._stream_credit(stream, size)  # answered already: nobody reads it
            else:
                stream.feed_body(data)
        if end:
            if 0 <= stream.content_length != stream.received:
                self._shared.stats.reject("h2_malformed")
                raise StreamError(sid, f.PROTOCOL_ERROR, "body shorter than content-length")
            stream.end_body()
            if stream.local_closed:
                self._forget(stream, _ENDED)

    def _on_headers(self, flags: int, sid: int, payload: bytes) -> None:
        if not sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "HEADERS on stream 0")
        block, depends_on = f.split_headers_payload(payload, flags)
        if not sid & 1:
            raise ConnectionError_(f.PROTOCOL_ERROR, "even stream id from a client")
        # A stream error found here is sent only after the block is decoded: the HPACK state
        # is the connection's, and a block left undecoded would corrupt every later one.
        error = 0
        new = False
        stream = self._streams.get(sid)
        if stream is None:
            if sid > self._last_sid:
                new = True
                self._last_sid = sid
            else:
                how = self._recent.get(sid)
                if how is None:
                    raise ConnectionError_(f.PROTOCOL_ERROR, "stream id not increasing")
                if how == _ENDED:
                    raise ConnectionError_(f.STREAM_CLOSED, "HEADERS on a closed stream")
                if how == _RESET_BY_PEER:
                    error = f.STREAM_CLOSED
                # reset by us: a frame in flight, decoded and dropped
        elif stream.remote_closed:
            error = f.STREAM_CLOSED
        if depends_on == sid:
            error = f.PROTOCOL_ERROR  # a stream cannot depend on itself (section 5.3.1)
        if flags & f.END_HEADERS:
            self._header_block(sid, block, bool(flags & f.END_STREAM), new, error)
            return
        self._cont_sid = sid
        self._cont_block = [block]
        self._cont_size = len(block)
        self._cont_frames = 0
        self._cont_end_stream = bool(flags & f.END_STREAM)
        self._cont_new = new
        self._cont_error = error

    def _on_continuation(self, flags: int, payload: bytes) -> None:
        self._cont_block.append(payload)
        self._cont_size += len(payload)
        self._cont_frames += 1
        if self._cont_size > self._max_block or self._cont_frames > _MAX_CONTINUATIONS:
            self._calm("h2_continuation_flood", "header block too large")
            return
        if flags & f.END_HEADERS:
            sid = self._cont_sid
            self._cont_sid = 0
            block = b"".join(self._cont_block)
            self._cont_block = []
            self._header_block(sid, block, self._cont_end_stream, self._cont_new, self._cont_error)

    def _header_block(
        self, sid: int, block: bytes, end_stream: bool, new: bool, error: int
    ) -> None:
        """A whole header block: decoded always (the HPACK state is the connection's)."""
        try:
            fields = self._decoder.decode(block)
        except HeaderListTooLarge:
            self._shared.stats.reject("h2_header_list_too_large")
            if error:
                raise StreamError(sid, error, "refused header block") from None
            if not new:
                if sid in self._streams:  # trailers
                    raise StreamError(sid, f.PROTOCOL_ERROR, "trailers too large") from None
                return
            # the decoder kept its table whole: refuse this request only
            self._answer_new(sid, 431, end_stream)
            return
        except HpackError as exc:
            raise ConnectionError_(f.COMPRESSION_ERROR, f"header block: {exc}") from None
        if error:
            raise StreamError(sid, error, "HEADERS refused on this stream")
        if not new:
            stream = self._streams.get(sid)
            if stream is not None:
                self._trailers(stream, fields, end_stream)
            return
        if self._going_away:
            return  # after our GOAWAY: not processed (the client retries elsewhere)
        if len(self._streams) >= self._h2.max_streams:
            self._shared.stats.reject("h2_refused_stream")
            self._write(f.rst_stream(sid, f.REFUSED_STREAM))
            self._recent_add(sid, _RESET_BY_US)
            if self._resets.hit(self._loop.time()):
                self._calm("h2_rapid_reset", "too many refused streams")
            return
        self._request(sid, fields, end_stream)

    def _trailers(self, stream: H2Stream, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        sid = stream.stream_id
        if not end:
            raise StreamError(sid, f.PROTOCOL_ERROR, "trailers without END_STREAM")
        try:
            check_trailers(fields)
        except Malformed as exc:
            self._shared.stats.reject("h2_malformed")
            raise StreamError(sid, f.PROTOCOL_ERROR, str(exc)) from None
        if 0 <= stream.content_length != stream.received:
            raise StreamError(sid, f.PROTOCOL_ERROR, "body shorter than content-length")
        stream.end_body()  # trailer fields are dropped, as HTTP/1.1's are
        if stream.local_closed:
            self._forget(stream, _ENDED)

    def _request(self, sid: int, fields: list[tuple[bytes, bytes]], end_stream: bool) -> None:
        http = self._http
        try:
            head = check_request(fields, http.limit_request_fields, http.limit_request_field_size)
        except Malformed as exc:
            self._shared.stats.reject("h2_malformed")
            raise StreamError(sid, f.PROTOCOL_ERROR, str(exc)) from None
        except TooLarge:
            self._shared.stats.reject("headers_too_large")
            self._answer_new(sid, 431, end_stream)
            return
        if end_stream and head.content_length > 0:
            self._shared.stats.reject("h2_malformed")
            raise StreamError(sid, f.PROTOCOL_ERROR, "content-length without a body")
        method_b = head.method
        method = _METHODS.get(method_b) or method_b.decode("ascii")
        if method == "CONNECT":
            self._shared.stats.reject("method")
            self._answer_new(sid, 501, end_stream)
            return
        if 0 < http.limit_request_body < head.content_length:
            self._shared.stats.reject("body_too_large")
            self._answer_new(sid, 413, end_stream)
            return
        target = head.path
        query = target.find(b"?")
        raw_path = target if query < 0 else target[:query]
        query_string = b"" if query < 0 else target[query + 1 :]
        try:
            path = raw_path.decode("ascii")
        except UnicodeDecodeError:
            path = "%"
        if "%" in path:
            path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
        scope = self._template.copy()
        headers = head.headers
        if self._trusted and http.proxy_headers:
            client, scheme, host = resolve_forwarded(
                headers,
                scope["client"],
                scope["scheme"],
                trusted=self._shared.peers,
                family=http.proxy_headers_family,
                host=http.proxy_forwarded_host,
            )
            scope["client"] = client
            scope["scheme"] = scheme
            if host is not None:
                headers = [(n, v) for n, v in headers if n != b"host"]
                headers.insert(0, (b"host", host))
        root_path = http.root_path
        if root_path:
            path = root_path + path
            raw_path = root_path.encode() + raw_path
        scope["asgi"] = _ASGI.copy()
        scope["http_version"] = "2"
        scope["method"] = method
        scope["path"] = path
        scope["raw_path"] = raw_path
        scope["query_string"] = query_string
        scope["headers"] = headers
        scope["extensions"] = self._extensions.copy()
        state = self._shared.state
        if state is not None:
            scope["state"] = state.copy()
        self._refresh_defaults()
        stream = H2Stream(
            self, sid, scope, method, target, self._peer_initial, _clock(), head.te_trailers
        )
        stream.recv_window = self._stream_window
        stream.content_length = head.content_length
        stream.expect_continue = head.expect_continue
        self._streams[sid] = stream
        self._opened_stream()
        if end_stream:
            stream.more_body = False
            stream.remote_closed = True
        self._host.run(stream)
        timeout = self._shared.request_timeout
        if timeout > 0 and not stream.complete:
            stream.timer = self._loop.call_later(timeout, self._timed_out, stream)

    def _timed_out(self, stream: H2Stream) -> None:
        """request_timeout passed while `stream`'s app runs: report where it waits, answer (or
        reset a streaming response, when request_timeout_streaming says so), cancel that app
        alone; the connection's other streams go on."""
        stream.timer = None
        http = self._http
        if stream.complete or stream.disconnected:
            return
        if stream.head_sent and not http.request_timeout_streaming:
            return
        self._shared.stats.request_timeouts += 1
        client = address(stream.scope.get("client"))
        self._host.report_timeout(stream, self._shared.request_timeout, client, " over HTTP/2")
        stream.abandon(http.request_timeout_status)
        if self._host.cancel_one(stream):
            self._host.watch_cancelled(stream)

    def _on_settings(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "SETTINGS on a stream")
        if flags & f.ACK:
            if payload:
                raise ConnectionError_(f.FRAME_SIZE_ERROR, "SETTINGS ACK with a payload")
            self._stream_window = self._h2.window_size
            return
        pairs = f.parse_settings(payload)
        if self._settings.hit(self._loop.time()):
            self._calm("h2_settings_flood", "SETTINGS flood")
            return
        for ident, value in pairs:
            if ident == f.INITIAL_WINDOW_SIZE:
                delta = value - self._peer_initial
                self._peer_initial = value
                for stream in self._streams.values():
                    stream.send_window += delta
                    if stream.send_window > f.MAX_WINDOW:
                        raise ConnectionError_(f.FLOW_CONTROL_ERROR, "window overflow")
            elif ident == f.MAX_FRAME_SIZE:
                self._peer_max_frame = value
            elif ident == f.HEADER_TABLE_SIZE:
                self._encoder.set_max_table_size(min(value, 4096))
        self._control(f.SETTINGS_ACK)
        if self._blocked:
            self._pump()

    def _on_window_update(self, sid: int, payload: bytes) -> None:
        increment = f.window_increment(payload)
        if not sid:
            if not increment:
                raise ConnectionError_(f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            self._send_window += increment
            if self._send_window > f.MAX_WINDOW:
                raise ConnectionError_(f.FLOW_CONTROL_ERROR, "connection window overflow")
        else:
            stream = self._streams.get(sid)
            if stream is None:
                if sid > self._last_sid:
                    raise ConnectionError_(f.PROTOCOL_ERROR, "WINDOW_UPDATE on an idle stream")
                return
            if not increment:
                raise StreamError(sid, f.PROTOCOL_ERROR, "WINDOW_UPDATE of 0")
            stream.send_window += increment
            if stream.send_window > f.MAX_WINDOW:
                raise StreamError(sid, f.FLOW_CONTROL_ERROR, "stream window overflow")
        if self._blocked:
            self._pump()

    def _on_rst_stream(self, sid: int, payload: bytes) -> None:
        if not sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "RST_STREAM on stream 0")
        if len(payload) != 4:
            raise ConnectionError_(f.FRAME_SIZE_ERROR, "RST_STREAM length must be 4")
        if sid > self._last_sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "RST_STREAM on an idle stream")
        stream = self._streams.get(sid)
        if stream is None:
            return
        stream.reset = True
        stream.disconnect()
        self._forget(stream, _RESET_BY_PEER)
        if self._resets.hit(self._loop.time()):
            self._calm("h2_rapid_reset", "too many stream resets")

    def _on_ping(self, flags: int, sid: int, payload: bytes) -> None:
        if sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "PING on a stream")
        if len(payload) != 8:
            raise ConnectionError_(f.FRAME_SIZE_ERROR, "PING length must be 8")
        if flags & f.ACK:
            if self._draining and payload == _DRAIN_PING:
                self._final_goaway()
            return
        if self._pings.hit(self._loop.time()):
            self._calm("h2_ping_flood", "PING flood")
            return
        self._control(f.ping(payload, True))

    def _on_priority(self, sid: int, payload: bytes) -> None:
        """Priorities are ignored (RFC 9113 section 5.3.2), but the frame must be well formed."""
        if not sid:
            raise ConnectionError_(f.PROTOCOL_ERROR, "PRIORITY on stream 0")
        if len(payload) != 5:
            raise StreamError(sid, f.FRAME_SIZE_ERROR, "PRIORITY length must be 5")
        if int.from_bytes(payload[:4], "big") & 0x7FFFFFFF == sid:
            raise StreamError(sid, f.PROTOCOL_ERROR, "stream depends on itself")

    # --- errors -------------------------------------------------------------------------------

    def _calm(self, reason: str, message: str) -> None:
        self._connection_error(f.ENHANCE_YOUR_CALM, message, reason)

    def _connection_error(self, code: int, message: str, reason: str = "h2_protocol") -> None:
        if self._closed:
            return
        self._shared.stats.reject(reason)
        log.debug("HTTP/2 connection error %d: %s", code, message)
        self._write(f.goaway(self._last_sid, code, message.encode("ascii", "replace")[:128]))
        self._closed = True
        self._going_away = True
        for stream in list(self._streams.values()):
            stream.reset = True
            stream.disconnect()
            self._forget(stream, _RESET_BY_US)
        self._blocked.clear()
        self._close()

    def _stream_error(self, sid: int, code: int, message: str) -> None:
        log.debug("HTTP/2 stream %d error %d: %s", sid, code, message)
        if self._closed:
            return
        self._write(f.rst_stream(sid, code))
        stream = self._streams.get(sid)
        if stream is not None:
            stream.reset = True
            stream.disconnect()
            self._forget(stream, _RESET_BY_US)
        else:
            self._recent_add(sid, _RESET_BY_US)

    def _answer_new(self, sid: int, status: int, end_stream: bool) -> None:
        """Refuse a request before any app sees it: `status`, then the stream is done."""
        block = self._encoder.encode_response(
            status, [(b"content-length", b"0"), *self._defaults()]
        )
        self._write(f.headers_frames(sid, block, True, self._peer_max_frame))
        if not end_stream:
            self._write(f.rst_stream(sid, f.NO_ERROR))
            self._recent_add(sid, _RESET_BY_US)
        else:
            self._recent_add(sid, _ENDED)

    def _answer(self, stream: H2Stream, status: int) -> None:
        """Answer an open stream's request with `status` before its app answered."""
        stream.head_sent = True
        stream.status = status
        block = self._encoder.encode_response(
            status, [(b"content-length", b"0"), *self._defaults()]
        )
        self._write(f.headers_frames(stream.stream_id, block, True, self._peer_max_frame))
        stream.local_closed = True

    def _defaults(self) -> list[tuple[bytes, bytes]]:
        self._refresh_defaults()
        out: list[tuple[bytes, bytes]] = []
        if self.server:
            out.append((b"server", self.server))
        if self.date:
            out.append((b"date", self.date))
        return out

    def _refresh_defaults(self) -> None:
        defaults = self._shared.defaults
        line = defaults.date_line
        if line is not self._date_line:
            self._date_line = line
            self.date = line[6:-2]
            self.server = defaults.server_line[8:-2]

    # --- streams ------------------------------------------------------------------------------

    def _opened_stream(self) -> None:
        self.streams_open = len(self._streams)
        self.phase = "active"
        stats = self._shared.stats
        stats.h2_streams += 1
        if self.streams_open == 1:
            stats.h2_busy += 1

    def _forget(self, stream: H2Stream, how: int) -> None:
        """The stream is closed: out of the table, its id remembered for late frames."""
        sid = stream.stream_id
        if self._streams.pop(sid, None) is None:
            return
        stream.stop_timer()
        stats = self._shared.stats
        stats.h2_streams -= 1
        self._blocked.pop(stream, None)
        self._recent_add(sid, how)
        self.streams_open = len(self._streams)
        if not self._streams:
            stats.h2_busy -= 1
            self.phase = "closing" if self._closed else "keepalive"
            self.idle_since = self._loop.time()
            if self._going_away:
                self._close()
            elif not self._closed:
                self._arm_idle(self._http.keepalive_timeout)

    def _recent_add(self, sid: int, how: int) -> None:
        recent = self._recent
        recent[sid] = how
        if len(recent) > 2 * _RECENT:
            # keep the newest _RECENT: one rebuild per _RECENT closes, not an eviction per close
            self._recent = dict(list(recent.items())[_RECENT:])

    def _stream_credit(self, stream: H2Stream, size: int) -> None:
        if size and not stream.remote_closed and not stream.reset and not self._closed:
            stream.recv_window += size
            self._write(f.window_update(stream.stream_id, size))

    def consumed(self, stream: H2Stream, size: int) -> None:
        """The app read `size` body bytes: the client may send that many more on the stream."""
        self._stream_credit(stream, size)

    # --- writing ------------------------------------------------------------------------------

    def send_response_head(
        self, stream: H2Stream, status: int, fields: list[tuple[bytes, bytes]], end: bool
    ) -> None:
        if stream.reset or self._closed:
            return
        block = self._encoder.encode_response(status, fields)
        self._write(f.headers_frames(stream.stream_id, block, end, self._peer_max_frame))
        if end:
            self._local_end(stream)

    def send_continue(self, stream: H2Stream) -> None:
        """100 (Continue): the app reads the body the client holds back until it hears this."""
        if stream.reset or self._closed:
            return
        block = self._encoder.encode_response(100, [])
        self._write(f.headers_frames(stream.stream_id, block, False, self._peer_max_frame))
        if not self._receiving:
            self._schedule_flush()

    def send_headers(self, stream: H2Stream, fields: list[tuple[bytes, bytes]], end: bool) -> None:
        if stream.reset or self._closed:
            return
        block = self._encoder.encode(fields)
        self._write(f.headers_frames(stream.stream_id, block, end, self._peer_max_frame))
        if end:
            self._local_end(stream)

    def send_data(self, stream: H2Stream, data: bytes, end: bool) -> None:
        if stream.reset or self._closed:
            return
        size = len(data)
        if (
            stream.out_pending is None
            and not self._write_paused
            and size <= stream.send_window
            and size <= self._send_window
        ):
            stream.send_window -= size
            self._send_window -= size
            if size <= self._peer_max_frame:
                head = f.head_of(size, f.DATA, f.END_STREAM if end else 0, stream.stream_id)
                self._write(head + data if size < 4096 else head)
                if size >= 4096:
                    self._write(data)
            else:
                for piece in f.data_frames(stream.stream_id, data, end, self._peer_max_frame):
                    self._write(piece)
            if end:
                self._local_end(stream)
            return
        pending = stream.out_pending
        if pending is None:
            pending = stream.out_pending = []
        if data:
            pending.append(data)
            stream.out_size += size
        stream.out_end = end
        if stream not in self._blocked:
            self._blocked[stream] = None
            self._loop.call_later(self.write_timeout, self._check_stall, stream, stream.wire_sent)
        self._pump()

    def send_trailers(self, stream: H2Stream, fields: list[tuple[bytes, bytes]]) -> None:
        if stream.reset or self._closed:
            return
        if stream.out_pending is not None:
            stream.out_trailers = fields
            stream.out_end = True
            self._pump()
            return
        self.send_headers(stream, fields, True)

    def _pump(self) -> None:
        """Send queued bodies as far as the peer's windows (and the socket) allow."""
        for stream in list(self._blocked):
            if self._write_paused or self._send_window <= 0:
                break
            pending = stream.out_pending
            assert pending is not None
            sid = stream.stream_id
            ended = False
            while pending:
                room = min(stream.send_window, self._send_window, self._peer_max_frame)
                if room <= 0:
                    break
                data = pending[0]
                if len(data) > room:
                    pending[0] = data[room:]
                    data = data[:room]
                else:
                    pending.pop(0)
                size = len(data)
                stream.send_window -= size
                self._send_window -= size
                stream.out_size -= size
                stream.wire_sent += size
                ended = not pending and stream.out_end and stream.out_trailers is None
                self._write(f.head_of(size, f.DATA, f.END_STREAM if ended else 0, sid))
                self._write(data)
            if pending:
                stream.drained()  # its send() re-checks how much is still queued
                continue
            del self._blocked[stream]
            stream.out_pending = None
            if stream.out_end:
                trailers = stream.out_trailers
                if trailers is not None:
                    stream.out_trailers = None
                    self.send_headers(stream, trailers, True)
                elif not stream.local_closed:
                    if not ended:
                        self._write(f.head_of(0, f.DATA, f.END_STREAM, sid))
                    self._local_end(stream)
            stream.drained()
        if not self._receiving:
            self._schedule_flush()

    def _local_end(self, stream: H2Stream) -> None:
        """END_STREAM is out: closed if the client ended too, else it is told to stop sending."""
        stream.local_closed = True
        if stream.remote_closed:
            self._forget(stream, _ENDED)
        elif not stream.reset:
            stream.reset = True
            self._write(f.rst_stream(stream.stream_id, f.NO_ERROR))
            self._forget(stream, _RESET_BY_US)

    def reset_stream(self, stream: H2Stream, code: int) -> None:
        if stream.reset or self._closed:
            return
        stream.reset = True
        self._write(f.rst_stream(stream.stream_id, code))
        self._forget(stream, _RESET_BY_US)
        if not self._receiving:
            self._schedule_flush()

    def body_timed_out(self, stream: H2Stream) -> None:
        """The request body stopped arriving for body_timeout while the app waited: reset."""
        if stream.more_body and not stream.disconnected:
            self._shared.stats.reject("body_timeout")
            self.reset_stream(stream, f.CANCEL)
            stream.disconnect()

    def _check_stall(self, stream: H2Stream, mark: int) -> None:
        """A response that sent nothing for write_timeout (a zero window): reset, and its app
        sees a disconnect. Bounded: a stalled peer cannot hold a stream (and its body) forever."""
        if stream not in self._blocked or self._closed:
            return
        if stream.wire_sent != mark:
            self._loop.call_later(self.write_timeout, self._check_stall, stream, stream.wire_sent)
            return
        self._shared.stats.reject("h2_send_timeout")
        self.reset_stream(stream, f.CANCEL)
        stream.disconnect()

    def _control(self, frame: bytes) -> None:
        """A PING or SETTINGS answer; a peer that does not read them is cut (no unbounded buffer)."""
        if self.transport.get_write_buffer_size() > _CONTROL_BACKLOG:
            self._calm("h2_control_backlog", "peer does not read")
            return
        self._write(frame)

    def _write(self, data: bytes) -> None:
        self._out.append(data)
        self._out_size += len(data)
        if not self._receiving and not self._flush_scheduled:
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled and self._out:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        out = self._out
        if not out:
            return
        self._out = []
        size = self._out_size
        self._out_size = 0
        transport = self.transport
        if transport.is_closing():
            return
        if len(out) == 1:
            transport.write(out[0])
        elif size < 64 * 1024:
            transport.write(b"".join(out))
        else:
            transport.writelines(out)

    # --- the end of a response ----------------------------------------------------------------

    def response_done(self, stream: H2Stream) -> None:
        stream.stop_timer()
        shared = self._shared
        duration = _clock() - stream.start
        shared.stats.observe(stream.method, stream.status, duration, stream.sent)
        shared.stats.h2_requests_total += 1
        access = shared.access
        if access is not None and access.enabled:
            # Headers go as references: only the format's %{Name}i / %{Name}o directives read them.
            client, peer = stream.scope["client"], self._template["client"]
            access.log(
                client=client[0] if client else "-",
                peer=peer[0] if peer else "-",
                method=stream.method,
                target=stream.target,
                http_version="HTTP/2.0",
                status=stream.status,
                size=stream.sent,
                request_headers=stream.scope["headers"],
                response_headers=stream.response_headers,
                duration=duration,
                now=time.time(),
            )
        if not self._receiving:
            self._schedule_flush()

    # --- timers, closing ----------------------------------------------------------------------

    def _arm_idle(self, delay: float) -> None:
        at = self._loop.time() + delay
        self._idle_at = at
        if self._timer is None:
            self._timer = self._loop.call_at(at, self._on_idle)

    def _on_idle(self) -> None:
        self._timer = None
        if self._closed:
            return
        if self._streams:
            return  # re-armed when the last stream closes
        now = self._loop.time()
        if now < self._idle_at:
            self._timer = self._loop.call_at(self._idle_at, self._on_idle)
            return
        self._goaway()
        self._close()

    def _goaway(self) -> None:
        if not self._going_away:
            self._going_away = True
            self._write(f.goaway(self._last_sid, f.NO_ERROR))
            if not self._receiving:
                self._schedule_flush()

    def _close(self) -> None:
        self.phase = "closing"
        self._host.close()
        self._flush()
        transport = self.transport
        if not transport.is_closing():
            transport.close()

    def shutdown(self) -> None:
        """Graceful stop in two steps (RFC 9113 section 6.8): GOAWAY with 2^31-1 and a PING;
        when the PING comes back (every stream the client sent before it has arrived), or after
        _DRAIN_WAIT, GOAWAY with the last stream id. Streams up to it finish, then the close."""
        if self._closed or self._going_away or self._draining:
            return
        self._draining = True
        self._write(f.goaway(f.MAX_WINDOW, f.NO_ERROR))
        self._write(f.ping(_DRAIN_PING, False))
        if not self._receiving:
            self._schedule_flush()
        self._loop.call_later(_DRAIN_WAIT, self._final_goaway)

    def _final_goaway(self) -> None:
        if self._closed or self._going_away:
            return
        self._goaway()
        if not self._streams:
            self._close()

    def retire(self) -> None:
        """Hand back to the pool (worker/balance.py): GOAWAY, the client reconnects elsewhere."""
        self.shutdown()

    def abort(self) -> None:
        self._host.cancel()
        self._out = []
        self.transport.abort()

    def hosted_tasks(self) -> list[tuple[asyncio.Task[None], object]]:
        """This connection's app tasks and what each runs (`ctl dump`, worker/stacks.py)."""
        return self._host.hosted()

    def request_rows(self, target_length: int) -> list[RequestRow]:
        """This connection as `ctl status --requests` lists it (worker/inflight.py): a row per
        open stream, else one keep-alive row; built only when asked."""
        peer = address(self.transport.get_extra_info("peername"))
        if not self._streams:
            if self.phase != "keepalive":
                return []
            idle = self._loop.time() - self.idle_since
            return [(peer, peer, "HTTP/2", "-", "-", "keep-alive", idle)]
        now = _clock()
        rows: list[RequestRow] = []
        for stream in self._streams.values():
            if stream.more_body:
                phase = "reading body"
            elif stream.out_pending:
                phase = "writing"  # body held for the client's flow-control window
            elif stream.complete:
                phase = "closing"
            else:
                phase = "in app"
            target = cut_target(stream.target.decode("latin-1"), target_length)
            client = address(stream.scope.get("client"))
            rows.append((client, peer, "HTTP/2", stream.method, target, phase, now - stream.start))
        return rows
