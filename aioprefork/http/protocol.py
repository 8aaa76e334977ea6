"""HttpProtocol: one client connection speaking HTTP/1.1 over httptools, feeding ASGI cycles.

Internal; one instance per connection, made by worker/server.py. Thin on purpose: framing
rules live in framing.py, bytes in writer.py, back-pressure in flow.py, the ASGI side in
http/cycle.py. What stays here: parser callbacks, per-connection state, one timer, pipelining.

Per connection, requests are strictly sequential: parsed heads become RequestCycles queued in
order; one runs at a time and the next starts when its predecessor's response is complete
(pipelined responses stay in order). While a cycle is queued behind another, reading pauses.

One timer per connection holds the current deadline (header, body, keep-alive, or write while
closing); moving a deadline later costs an attribute store, not a timer re-arm. A head or body
that spans reads must keep arriving at its minimum rate (Apache's mod_reqtimeout MinRate): its
deadline is the stage's start + min_rate_grace + bytes so far / rate (capped by header_timeout,
and by body_timeout after the last piece), so each read moves it later by what it brought. A
client that stops reading a response (the transport paused our writing) is "stalled": it must
take what is buffered at send_min_rate, and the worker cuts the slowest stalled clients when
their buffers pass stalled_write_budget (worker/server.py enforces both, from Shared.stalled).

A GET with `Upgrade: websocket` (when ws is on) is handed to http/websocket.py for good;
any other upgrade is answered as plain HTTP and the connection closed.

Invariants: a refused request gets its status, `Connection: close`, and the connection closes
after the responses before it (a lingering close: FIN first, so a reset cannot eat the answer);
nothing after a refused head is ever parsed, so no smuggled request reaches the app. Every connection is in `stats.connections` from connection_made to
connection_lost, with `phase` one of worker/stats.PHASES; the legal combinations of parser state,
phase and deadline are http/connstate.py's table.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import struct
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Final, cast

import httptools

from aioprefork.asgi.types import ASGIApp
from aioprefork.config.model import HttpLimits
from aioprefork.errors import BodyTooLarge, HeadersTooLarge, RequestLineTooLong, RequestRejected
from aioprefork.http.coalesce import WriteCoalescer
from aioprefork.http.connstate import BODY as _BODY
from aioprefork.http.connstate import BODY_WAIT as _BODY_WAIT
from aioprefork.http.connstate import DEAD as _DEAD
from aioprefork.http.connstate import HEAD as _HEAD
from aioprefork.http.connstate import HEADER as _HEADER
from aioprefork.http.connstate import IDLE as _IDLE
from aioprefork.http.connstate import KEEPALIVE as _KEEPALIVE
from aioprefork.http.connstate import LINGER as _LINGER
from aioprefork.http.connstate import NONE as _NONE
from aioprefork.http.connstate import WRITE as _WRITE
from aioprefork.http.cycle import RequestCycle
from aioprefork.http.host import AppHost
from aioprefork.http.stats import WorkerStats
from aioprefork.tls import tls_extension
from aioprefork.wire.accesslog import AccessLogger
from aioprefork.wire.display import address, cut_target
from aioprefork.wire.flow import FlowControl
from aioprefork.wire.framing import FRAMING_NAMES, check_head
from aioprefork.wire.memo import COMPILED, remember
from aioprefork.wire.proxy import TrustedPeers, parse_proxy_protocol, resolve_forwarded
from aioprefork.wire.target import split_target
from aioprefork.wire.writer import DefaultHeaders, error_response

__all__ = ["HttpProtocol", "Shared"]

log: Final = logging.getLogger("aioprefork.http")

_FIRST_REQUEST_GRACE: Final = 1.0  # seconds an idle connection gets at graceful stop
_LINGER_TIME: Final = 2.0  # seconds a refused client gets to read our answer before the close
_HOLD_LIMIT: Final = 64 * 1024  # bytes a connection holds until the iteration ends, at most
_HOLD_BIG: Final = 256 * 1024  # ... when they are big buffers, held by reference (writelines)

_METHODS: Final = {
    m.encode(): m
    for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT")
}
# llhttp's messages for a CR without LF or an LF without CR ("Missing expected CR after header
# value", "Expected LF after headers", "Expected CRLF after version", ...).
_LINE_ENDING: Final = re.compile(r"\b(?:cr|lf|crlf)\b")
_clock: Final = time.perf_counter  # a C static in the compiled build, not a globals lookup
_RESET: Final = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() resets the connection
_PREFACE: Final = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # HTTP/2's connection preface
_PROXY_MAX: Final = 536  # a PROXY v2 header is at most 16 + 520 bytes (v1 at most 107)
_ASGI: Final[dict[str, str]] = {"version": "3.0", "spec_version": "2.4"}
# What every http scope advertises; the inner dicts are shared (they are empty by the spec).
_EXTENSIONS: Final[dict[str, dict[object, object]]] = {
    "http.response.trailers": {},
    "http.response.pathsend": {},
    "http.response.zerocopysend": {},
}


# Header name as received -> lower-cased: a lookup (which the dict lookups of the name that
# follow then get with its hash cached) instead of a bytes.lower() call per field. Bounded.
_LOWERED: Final[dict[bytes, bytes]] = {}
_LOWERED_MAX: Final = 1024


# Only the mypyc build looks a name up by its position in the previous request first
# (HttpProtocol._lower_by_position): interpreted, that costs more than the hashing it saves.
_NAMES_BY_POSITION: Final = COMPILED
_NO_NAME: Final = (b"", b"")  # holds the place of a name too long to keep (none is empty)


def _lowered(name: bytes) -> bytes:
    lowered = name.lower()
    lowered = FRAMING_NAMES.get(lowered, lowered)
    if len(name) <= 64:
        remember(_LOWERED, name, lowered, _LOWERED_MAX)
    return lowered


def _wants_websocket(headers: list[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"upgrade" and value.strip().lower() == b"websocket":
            return True
    return False


class Shared:
    """What every connection of one worker reads, built once by WorkerServer (never per request)."""

    __slots__ = (
        "access",
        "app",
        "closed",
        "coalescer",
        "defaults",
        "head_wait",
        "limits",
        "loop",
        "max_head",
        "now",
        "opened",
        "peers",
        "request_timeout",
        "scope_base",
        "stall",
        "stalled",
        "stalled_bytes",
        "state",
        "stats",
        "tls",
    )

    def __init__(
        self,
        app: ASGIApp,
        limits: HttpLimits,
        stats: WorkerStats,
        loop: asyncio.AbstractEventLoop,
        *,
        state: dict[str, Any] | None,
        opened: Callable[[Any], None],  # an HttpProtocol or an http2 H2Connection
        closed: Callable[[Any], None],
        tls: bool = True,
        stall: Callable[[], None] | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.stats = stats
        self.loop = loop
        self.now = loop.time  # bound once per worker, not per connection
        self.state = state
        self.opened = opened
        self.closed = closed
        # False when no listener has TLS: connections skip asking for an ssl_object (costly:
        # bench/README.md). True (the default) asks, so a TLS transport is never missed.
        self.tls = tls
        self.defaults = DefaultHeaders(limits.server_header, limits.date_header)
        self.coalescer = WriteCoalescer(loop)
        self.access = AccessLogger(limits.access_log_format) if limits.access_log else None
        self.request_timeout = limits.request_timeout  # (ctl set changes it for every connection)
        self.peers = TrustedPeers(limits.forwarded_allow_ips)
        # The first deadline of a head: min_rate_grace when the head has a minimum rate.
        self.head_wait = (
            min(limits.header_timeout, limits.min_rate_grace)
            if limits.header_min_rate
            else limits.header_timeout
        )
        # Connections whose client stopped reading (writing paused), and the bytes buffered for
        # them when they stalled (an upper bound: a stalled buffer only shrinks until resumed).
        self.stalled: set[HttpProtocol] = set()
        self.stalled_bytes = 0
        self.stall = stall  # called when a connection stalls (the worker checks its budget)
        self.max_head = (
            limits.limit_request_line
            + limits.limit_request_fields * (limits.limit_request_field_size + 4)
            + 8
        )
        # Every http scope key; a connection's template is a copy with its own addresses and
        # scheme (cheaper than a 13-key dict display per connection).
        self.scope_base: dict[str, Any] = {
            "type": "http",
            "asgi": None,
            "http_version": "1.1",
            "server": None,
            "client": None,
            "scheme": "http",
            "method": "GET",
            "root_path": limits.root_path,
            "path": "/",
            "raw_path": b"/",
            "query_string": b"",
            "headers": None,
            "extensions": None,
        }


class _NoCallbacks:
    """The protocol of _CLOSED_PARSER: a parser with no callbacks at all."""


# What a closed connection's _parser becomes (never fed: data_received ignores a dead connection).
# The parser holds bound callbacks of its protocol, so protocol and parser form a cycle that only
# the cyclic GC would free, a collection every few dozen connections; dropping our side at
# connection_lost lets refcounting free the connection at once.
_CLOSED_PARSER: Final = httptools.HttpRequestParser(_NoCallbacks())


def _strict(parser: httptools.HttpRequestParser) -> None:
    """Turn every llhttp leniency off explicitly, whatever the build's defaults.

    Strict llhttp (>= 9, httptools >= 0.6.4) refuses bare CR and bare LF anywhere in a head or in
    chunk framing (RFC 9112 section 2.2 allows accepting a bare LF; we do not: smuggling), so no
    pre-scan of the raw bytes is needed.
    """
    parser.set_dangerous_leniencies(
        lenient_headers=False,
        lenient_chunked_length=False,
        lenient_keep_alive=False,
        lenient_transfer_encoding=False,
        lenient_version=False,
        lenient_data_after_close=False,
        lenient_optional_lf_after_cr=False,
        lenient_optional_cr_before_lf=False,
        lenient_optional_crlf_after_chunk=False,
        lenient_spaces_after_chunk_size=False,
    )


def _parser_reason(exc: httptools.HttpParserError) -> str:
    if isinstance(exc, httptools.HttpParserInvalidMethodError):
        return "method"
    if isinstance(exc, httptools.HttpParserInvalidURLError):
        return "target"
    text = str(exc).lower()
    if _LINE_ENDING.search(text):
        return "line_ending"
    if "version" in text:
        return "version"
    if "chunk" in text or "content-length" in text or "transfer-encoding" in text:
        return "framing"
    return "bad_request"


def _alpn(transport: asyncio.BaseTransport) -> str | None:
    ssl_object = transport.get_extra_info("ssl_object")
    return None if ssl_object is None else ssl_object.selected_alpn_protocol()


def _tls_extension(transport: asyncio.BaseTransport) -> dict[object, object] | None:
    ssl_object = transport.get_extra_info("ssl_object")
    return None if ssl_object is None else tls_extension(ssl_object)


class HttpProtocol(asyncio.Protocol):
    __slots__ = (
        "_body_bytes",
        "_chunked",
        "_client",
        "_coalescer",
        "_cycle",
        "_deadline",
        "_deadline_kind",
        "_dequeue",
        "_dispatching",
        "_enqueue",
        "_extensions",
        "_feed",
        "_forwarded",
        "_fresh",
        "_head_bytes",
        "_headers",
        "_held",
        "_held_size",
        "_host",
        "_keep_alive",
        "_keepalive_timeout",
        "_limits",
        "_line",
        "_loop",
        "_max_body",
        "_max_field",
        "_max_fields",
        "_max_line",
        "_max_requests",
        "_names",
        "_now",
        "_parser",
        "_pending_error",
        "_proxy",
        "_queue",
        "_reading",
        "_refused_head",
        "_requests",
        "_root_path",
        "_scheme",
        "_send",
        "_server",
        "_shared",
        "_stage_bytes",
        "_stage_start",
        "_state",
        "_template",
        "_timer",
        "_timer_at",
        "_trailer_fields",
        "_trusted",
        "_upgrade",
        "_upgrade_asked",
        "_url",
        "defaults",
        "flow",
        "idle_since",
        "phase",
        "stall_bytes",
        "stall_due",
        "transport",
        "write_timeout",
    )

    def __init__(self, shared: Shared) -> None:
        self._shared = shared
        self._loop = shared.loop
        self._limits = shared.limits
        limits = shared.limits
        self.defaults = shared.defaults
        self.write_timeout = limits.write_timeout
        self._max_line = limits.limit_request_line
        self._max_fields = limits.limit_request_fields
        self._max_field = limits.limit_request_field_size
        self._max_body = limits.limit_request_body
        self._max_requests = limits.max_keepalive_requests
        self._keepalive_timeout = limits.keepalive_timeout
        self._root_path = limits.root_path
        self._extensions: dict[str, dict[Any, Any]] = dict(_EXTENSIONS)
        self._parser = httptools.HttpRequestParser(self)
        _strict(self._parser)
        self._host = AppHost(shared.app, shared.loop)
        self._queue: deque[RequestCycle] = deque()
        # Bound once per connection: the compiled build then calls them directly, where a call
        # by name looks the method up on every request.
        self._feed = self._parser.feed_data
        self._enqueue = self._queue.append
        self._dequeue = self._queue.popleft
        self._now = shared.now
        self._coalescer = shared.coalescer
        self._held: list[bytes] | None = None  # bytes held until this loop iteration ends
        self._held_size = 0
        self._cycle: RequestCycle | None = None  # the one whose app runs / response goes out
        self._reading: RequestCycle | None = None  # the one whose body the parser feeds
        self._state = _IDLE
        self._keep_alive = True  # the connection may serve another request
        self._pending_error = 0  # status to answer once the responses before it are out
        self._refused_head = False  # the refused request was a HEAD (its answer has no content)
        self._dispatching = False
        self._requests = 0
        self._url = b""
        self._fresh: bytes | None = None  # this read, while no message of it has begun
        self._line: bytes | None = None  # the read the current message's head began at 0 of
        self._headers: list[tuple[bytes, bytes]] = []
        # (as received, lower-cased) field names of the previous request, in order (compiled)
        self._names: list[tuple[bytes, bytes]] = []
        self._forwarded = False
        self._upgrade_asked = False  # an Upgrade field was seen (else llhttp cannot upgrade)
        self._head_bytes = 0
        self._body_bytes = 0
        self._chunked = False
        self._trailer_fields = 0  # trailer fields of the current chunked body so far
        self._deadline = 0.0
        self._deadline_kind = _NONE
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0
        self._stage_start = 0.0  # when the head or body being read began arriving
        self._stage_bytes = 0  # body bytes of that stage (a head counts _head_bytes)
        self.stall_due = 0.0  # stalled: when the client must have read what is buffered
        self.stall_bytes = 0  # stalled: bytes buffered when it stalled
        self._proxy: bytearray | None = None
        self._upgrade: dict[str, Any] | None = None  # the scope of a WebSocket upgrade request
        self.phase = "reading"
        self.idle_since = 0.0

    # --- asyncio.Protocol -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's are not registered subclasses
        self.transport = transport
        self._send = transport.write  # bound once (see __init__)
        self.flow = FlowControl(transport, self._loop)
        peer = transport.get_extra_info("peername")
        sock = transport.get_extra_info("sockname")
        if isinstance(sock, tuple):
            self._server: tuple[str, int | None] | None = (sock[0], sock[1])
            self._client: tuple[str, int] | None = (peer[0], peer[1]) if peer else None
            peer_host: str | None = self._client[0] if self._client else None
        else:
            self._server = (sock, None) if isinstance(sock, str) and sock else None
            self._client = None
            peer_host = None
        tls = _tls_extension(transport) if self._shared.tls else None
        if tls is not None:
            self._extensions["tls"] = tls
        self._scheme = "https" if tls is not None else "http"
        limits = self._limits
        self._trusted = (
            limits.proxy_headers or limits.proxy_protocol
        ) and self._shared.peers.trusts(peer_host)
        self._set_template()
        if tls is not None and _alpn(transport) == "h2" and limits.h2 is not None:
            self._to_http2(b"", preface_read=False, registered=False)
            return
        self._shared.opened(self)
        self._host.start()
        self._stage_start = self._now()
        self._set_deadline(_HEADER, self._shared.head_wait)
        if limits.proxy_protocol:
            self._proxy = bytearray()

    def connection_lost(self, exc: Exception | None) -> None:
        self.phase = "closing"
        self._state = _DEAD
        if self.stall_due:
            self._unstall()
        self.flow.connection_lost()
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        cycle = self._cycle
        if cycle is not None:
            cycle.disconnect()
        reading = self._reading
        if reading is not None:
            reading.disconnect()
        for queued in self._queue:
            queued.disconnect()
        self._queue.clear()
        self._host.close()
        self._shared.closed(self)
        self._parser = _CLOSED_PARSER  # (see _CLOSED_PARSER)
        self._feed = _CLOSED_PARSER.feed_data

    def eof_received(self) -> bool | None:
        # EOF is a disconnect (as in uvicorn): a half-closed client cannot be told apart from a
        # gone one, and apps waiting on receive() for http.disconnect matter more.
        return None

    def pause_writing(self) -> None:
        self.flow.pause_writing()
        shared = self._shared
        limits = self._limits
        if limits.send_min_rate or limits.stalled_write_budget:
            # The client stopped reading: it must take what is buffered over the low-water mark
            # at send_min_rate, after min_rate_grace (worker/server.py checks, and sheds).
            transport = self.transport
            size = transport.get_write_buffer_size()
            due = self._now() + limits.min_rate_grace
            if limits.send_min_rate:
                low = transport.get_write_buffer_limits()[0]
                due += max(0, size - low) / limits.send_min_rate
            self.stall_due = due
            self.stall_bytes = size
            shared.stalled.add(self)
            shared.stalled_bytes += size
            if shared.stall is not None:
                shared.stall()

    def _unstall(self) -> None:
        shared = self._shared
        shared.stalled.discard(self)
        shared.stalled_bytes -= self.stall_bytes
        self.stall_due = 0.0
        self.stall_bytes = 0

    def resume_writing(self) -> None:
        self.flow.resume_writing()
        if self.stall_due:
            self._unstall()
        if self._cycle is None and self._queue:
            self._loop.call_soon(self._dispatch)

    def data_received(self, data: bytes) -> None:
        if self._state == _DEAD:
            return
        if self._proxy is not None:
            data = self._read_proxy(data)
            if not data:
                return
        # A read that starts between messages starts with the next request line.
        self._fresh = data if self._state == _IDLE else None
        try:
            self._feed(data)
        except httptools.HttpParserUpgrade as upgrade:
            if self._upgrade is not None:
                self._hand_off(data[upgrade.args[0] :])
                return
            self._upgraded()
        except httptools.HttpParserError as exc:
            self._parse_error(exc, data)
        if self._state == _HEAD:
            self._head_bytes += len(data)
            if self._head_bytes > self._shared.max_head:
                self._refuse(HeadersTooLarge("request head too large"))
            elif self._deadline_kind != _HEADER or not self._deadline:
                self._stage_start = self._now()
                self._set_deadline(_HEADER, self._shared.head_wait)
            elif self._limits.header_min_rate:
                self._head_read()
        elif self._state == _BODY and not self.flow.read_paused:
            self._body_wait()  # armed only when the body spans reads (and we are reading it)
        if self._cycle is None and self._queue:
            self._dispatch()

    # --- httptools callbacks --------------------------------------------------------------
    # (no on_message_begin: the first on_url of a message starts it, one callback less)

    def on_url(self, url: bytes) -> None:
        if self._state != _HEAD:
            self._begin()
            self._url = url
        else:
            url = self._url = self._url + url
        if len(url) > self._max_line:
            raise RequestLineTooLong("request line too long")

    def _begin(self) -> None:
        self._line, self._fresh = self._fresh, None  # only the read's first message starts at 0
        self._state = _HEAD
        self._headers = []
        self._forwarded = False
        self._upgrade_asked = False
        self._head_bytes = 0
        if self._cycle is None:
            self.phase = "reading"
        if self._deadline_kind != _HEADER:
            self._deadline = 0.0  # header_timeout is armed only if the head spans reads

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._state == _BODY:
            self._on_trailer(name, value)
            return
        headers = self._headers
        if len(headers) >= self._max_fields:
            raise HeadersTooLarge("too many header fields")
        size = len(value)
        if len(name) + size > self._max_field:
            raise HeadersTooLarge("header field too large")
        if _NAMES_BY_POSITION:
            name = self._lower_by_position(name, len(headers))
        else:
            lowered = _LOWERED.get(name)
            name = _lowered(name) if lowered is None else lowered
        if size:
            last = value[size - 1]
            if last == 32 or last == 9:
                # llhttp keeps trailing SP/HTAB; a field value has none (RFC 9110 section 5.5)
                value = value.rstrip(b" \t")
        first = name[0]
        if first == 120 or first == 102:  # x-forwarded-*, forwarded
            self._forwarded = True
        elif first == 117:  # upgrade
            self._upgrade_asked = True
        headers.append((name, value))

    def _on_trailer(self, name: bytes, value: bytes) -> None:
        """A trailer field of a chunked request body: checked against the head's limits, dropped.

        Never merged into the request's headers (RFC 9110 section 6.5.1): the app already holds
        that list, and a trailer must not smuggle in a second Host, a forged Authorization or an
        X-Forwarded-For that the head's checks never saw. ASGI has no event to carry them.
        """
        self._trailer_fields += 1
        if self._trailer_fields > self._max_fields:
            raise HeadersTooLarge("too many trailer fields")
        if len(name) + len(value) > self._max_field:
            raise HeadersTooLarge("trailer field too large")

    def _lower_by_position(self, name: bytes, index: int) -> bytes:
        """`name` lower-cased, looked up first where the previous request had its index-th field.

        Clients send the same names in the same order request after request: comparing bytes
        costs less than hashing a fresh name for _LOWERED (bench/README.md has the counts).
        """
        names = self._names
        if index < len(names):
            seen, lowered = names[index]
            if seen == name:
                return lowered
        found = _LOWERED.get(name)
        lowered = _lowered(name) if found is None else found
        # At most limit_request_fields names of at most 64 bytes stay with an idle connection.
        pair = (name, lowered) if len(name) <= 64 else _NO_NAME
        if index < len(names):
            names[index] = pair
        else:
            names.append(pair)
        return lowered

    def on_headers_complete(self) -> None:
        parser = self._parser
        limits = self._limits
        method_b, method, version = self._request_line()
        url = self._url
        headers = self._headers
        path, raw_path, query_string, authority = split_target(url, method_b, self._root_path)
        framing = check_head(version, method_b, headers, authority, self._max_body)
        client = self._client
        scheme = self._scheme
        if self._forwarded and self._trusted and limits.proxy_headers:
            client, scheme, host = resolve_forwarded(
                headers,
                client,
                scheme,
                trusted=self._shared.peers,
                family=limits.proxy_headers_family,
                host=limits.proxy_forwarded_host,
            )
            if host is not None:
                authority = host
        if authority is not None:
            headers = [(n, v) for n, v in headers if n != b"host"]
            headers.insert(0, (b"host", authority))
        # A copy of the connection's template (a memcpy of its table) plus the keys that vary:
        # cheaper than building a 13-key dict.
        scope = self._template.copy()
        scope["asgi"] = _ASGI.copy()  # each request its own (a copy beats a dict display)
        if version != "1.1":
            scope["http_version"] = version
        if client is not self._client:
            scope["client"] = client
        if scheme is not self._scheme:
            scope["scheme"] = scheme
        if method != "GET":  # the template's (a store costs more than the test, compiled)
            scope["method"] = method
        scope["path"] = path
        scope["raw_path"] = raw_path
        if query_string:
            scope["query_string"] = query_string
        scope["headers"] = headers
        scope["extensions"] = self._extensions.copy()
        state = self._shared.state
        if state is not None:
            scope["state"] = state.copy()
        self._requests += 1
        keep_alive = framing.keep_alive and self._keep_alive
        if self._upgrade_asked and parser.should_upgrade():
            if (
                self._limits.websocket is not None
                and method == "GET"
                and self._cycle is None
                and not self._queue
                and _wants_websocket(headers)
            ):
                self._upgrade = scope  # handed off once the parser stops at the upgrade
                return
            keep_alive = False  # any other upgrade: answered as plain HTTP, then closed
        if self._requests == self._max_requests:
            keep_alive = False
        cycle = RequestCycle(
            self, scope, framing, method, url, version == "1.1", keep_alive, _clock()
        )
        self._state = _BODY
        self._reading = cycle
        queue = self._queue
        self._enqueue(cycle)
        if self._cycle is not None or len(queue) > 1:
            self.flow.pause_reading()  # pipelined: hold the rest until its turn
        if framing.length:
            self._chunked = framing.length < 0
            self._body_bytes = 0
            self._trailer_fields = 0
            self._stage_start = 0.0  # its deadline is armed if the body spans reads
            self._stage_bytes = 0
        self._deadline = 0.0

    def _request_line(self) -> tuple[bytes, str, str]:
        """The request's method (bytes and str) and HTTP version, read off its request line.

        When this read began with the request line (and llhttp accepted it: "METHOD SP target SP
        HTTP/x.y CRLF", single spaces in strict mode), GET and POST and the version are read off
        it; httptools' get_method() and get_http_version() each build a new object per call
        (bench/README.md has the share). Any other case asks the parser.
        """
        line = self._line
        if line is not None:
            self._line = None
            if line.startswith(b"GET "):
                method_b, method = b"GET", "GET"
            elif line.startswith(b"POST "):
                method_b, method = b"POST", "POST"
            else:
                method_b = b""
            if method_b:
                # "HTTP/1.x\r\n" at `start`, read byte by byte: an index is an int, a slice a new
                # bytes object. (llhttp accepted the line, so "TTP/" and the LF are there.)
                start = len(method_b) + len(self._url) + 2
                if (
                    len(line) > start + 8
                    and line[start] == 72  # H
                    and line[start + 5] == 49  # 1
                    and line[start + 6] == 46  # .
                    and line[start + 8] == 13  # CR
                ):
                    minor = line[start + 7]
                    if minor == 49:
                        return method_b, method, "1.1"
                    if minor == 48:
                        return method_b, method, "1.0"
        parser = self._parser
        method_b = parser.get_method()
        method = _METHODS.get(method_b) or method_b.decode("ascii")
        return method_b, method, parser.get_http_version()

    def on_body(self, body: bytes) -> None:
        if self._chunked:
            self._body_bytes += len(body)
            if 0 < self._max_body < self._body_bytes:
                raise BodyTooLarge("chunked body too large")
        cycle = self._reading
        if cycle is None or cycle.complete or cycle.disconnected:
            return  # the response is out already: drop what the app did not read
        cycle.feed_body(body)
        self._stage_bytes += len(body)
        if cycle.buffered > self._limits.high_water:
            self.flow.pause_reading()
            self._deadline = 0.0  # we stopped reading: the client is not slow

    def on_message_complete(self) -> None:
        self._state = _IDLE
        self._deadline = 0.0
        cycle = self._reading
        if cycle is not None:
            self._reading = None
            if cycle.more_body:
                cycle.end_body()

    # --- writing ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Every byte of a response goes out through here (or writelines).

        The first write of a loop iteration goes out at once; later ones are held until the
        iteration ends (http/coalesce.py), at most _HOLD_LIMIT bytes per connection. A
        refused or upgraded connection (_DEAD) writes at once: its close or hand-off follows.
        """
        held = self._held
        if held is not None:
            held.append(data)
            self._held_size += len(data)
            if self._held_size >= _HOLD_LIMIT:
                self.flush_held()
        elif self._state != _DEAD and self._coalescer.holding():
            self._held = [data]
            self._held_size = len(data)
            self._coalescer.held(self)
        else:
            self._send(data)

    def writelines(self, pieces: Sequence[bytes]) -> None:
        """Big buffers, never copied: held like write()'s, up to _HOLD_BIG bytes."""
        size = 0
        for data in pieces:
            size += len(data)
        held = self._held
        if held is not None:
            held.extend(pieces)
            self._held_size += size
            if self._held_size >= _HOLD_BIG:
                self.flush_held()
        elif self._state != _DEAD and self._coalescer.holding():
            self._held = list(pieces)
            self._held_size = size
            self._coalescer.held(self)
        else:
            self.transport.writelines(pieces)

    def flush_held(self) -> None:
        """Write what this connection holds now (before a close, a file, or at the iteration's end)."""
        held = self._held
        if held is not None:
            self._held = None
            if self.transport.is_closing():
                return  # gone (or aborted): nothing more reaches the client
            if len(held) == 1:
                self._send(held[0])
            elif self._held_size < _HOLD_LIMIT:
                self._send(b"".join(held))
            else:
                self.transport.writelines(held)  # big bodies are not copied

    # --- the cycle's owner ------------------------------------------------------------------

    def body_wanted(self, cycle: RequestCycle) -> None:
        if cycle is self._reading and self.flow.read_paused and len(self._queue) <= 1:
            self.flow.resume_reading()
            # we stopped reading, not the client: its rate is measured afresh
            self._stage_start = 0.0
            self._stage_bytes = 0
        if self._state == _BODY:
            self._body_wait()

    def response_done(self, cycle: RequestCycle) -> None:
        cycle.stop_timer()
        shared = self._shared
        duration = _clock() - cycle.start
        shared.stats.observe(cycle.method, cycle.status, duration, cycle.sent)
        if shared.access is not None and shared.access.enabled:
            self._log_access(shared.access, cycle, duration)
        if cycle is self._cycle:
            self._cycle = None
        if not cycle.keep_alive or (self._state == _DEAD and not self._pending_error):
            if self._state == _BODY:
                self._linger()  # the client may still be sending the body we did not read
            else:
                self._close()
        elif self._queue:
            if not self._dispatching:
                self._loop.call_soon(self._dispatch)
        elif self._pending_error:
            self.write(error_response(self._pending_error, shared.defaults, self._refused_head))
            self._linger()
        elif not self._keep_alive:
            self._close()
        elif self._state == _IDLE:
            self.phase = "keepalive"
            self.idle_since = now = self._now()
            self._deadline_kind = _KEEPALIVE
            self._deadline = at = now + self._keepalive_timeout
            if self._timer is None or at < self._timer_at:
                self._set_deadline(_KEEPALIVE, self._keepalive_timeout)
            if self.flow.read_paused:
                self.flow.resume_reading()
        else:
            self.phase = "reading"
            self.flow.resume_reading()

    def _log_access(self, access: AccessLogger, cycle: RequestCycle, duration: float) -> None:
        # Headers go as references: only the format's %{Name}i / %{Name}o directives read them.
        scope = cycle.scope
        client = scope["client"]
        peer = self._client
        access.log(
            client=client[0] if client else "-",
            peer=peer[0] if peer else "-",
            method=cycle.method,
            target=cycle.target,
            http_version=scope["http_version"],
            status=cycle.status,
            size=cycle.sent,
            request_headers=scope["headers"],
            response_headers=cycle.response_headers,
            duration=duration,
            now=time.time(),
        )

    def _timed_out(self, cycle: RequestCycle) -> None:
        """request_timeout passed while `cycle`'s app runs: report where it waits, answer (or
        cut a streaming response, when request_timeout_streaming says so), cancel it."""
        cycle.timer = None
        limits = self._limits
        if cycle.complete or (cycle.head_sent and not limits.request_timeout_streaming):
            return
        self._shared.stats.request_timeouts += 1
        client = address(cycle.scope.get("client"))
        self._host.report_timeout(cycle, self._shared.request_timeout, client, "")
        cycle.abandon(limits.request_timeout_status)
        self._host.cancel()
        self._host.watch_cancelled(cycle)

    def _dispatch(self) -> None:
        """Start queued cycles, one at a time, in order (pipelining)."""
        if self._dispatching:
            return
        self._dispatching = True
        queue = self._queue
        try:
            # A client that does not read our answers gets no new ones (bounded buffering).
            while (
                self._cycle is None
                and queue
                and not self.flow.write_paused
                and self.phase != "closing"
            ):
                cycle = self._cycle = self._dequeue()
                self.phase = "active"
                self._host.run(cycle)
                timeout = self._shared.request_timeout
                if timeout > 0 and not cycle.complete:
                    cycle.timer = self._loop.call_later(timeout, self._timed_out, cycle)
        finally:
            self._dispatching = False
        if self.flow.read_paused and not queue and self._cycle is None and self._state != _DEAD:
            reading = self._reading
            if reading is None or reading.buffered <= self._limits.high_water:
                self.flow.resume_reading()

    # --- refusals, upgrades, PROXY ------------------------------------------------------------

    def _parse_error(self, exc: httptools.HttpParserError, data: bytes) -> None:
        cause = exc.__context__
        if cause is None and self._requests == 0 and str(exc).startswith("Pause on PRI"):
            # llhttp stops after the whole HTTP/2 preface (only a connection's first bytes can
            # be one): h2c by prior knowledge. Free for HTTP/1.1: this is the error path.
            h2 = self._limits.h2
            if h2 is not None and h2.cleartext and self._cycle is None and not self._queue:
                # the preface began this message; the reads before this one held _head_bytes of it
                rest = data[len(_PREFACE) - self._head_bytes :]
                self._to_http2(rest, preface_read=True, registered=True)
                return
            self._refuse(RequestRejected("HTTP/2 is not enabled here", reason="http2_off"))
            return
        if isinstance(cause, RequestRejected):
            self._refuse(cause)
        elif cause is not None:
            log.error("error while parsing a request", exc_info=cause)
            self._refuse(RequestRejected("internal error", status=500, reason="internal"))
        else:
            self._refuse(RequestRejected(str(exc), reason=_parser_reason(exc)))

    def _refuse(self, exc: RequestRejected) -> None:
        """Answer `exc.status` and close, after the responses already owed (in order)."""
        if self.phase == "closing":
            return
        self._shared.stats.reject(exc.reason)
        # (a head begun means its method was parsed: a HEAD gets its answer without content)
        self._refused_head = self._state != _IDLE and self._parser.get_method() == b"HEAD"
        reading = self._reading
        if self._state == _BODY and reading is not None:
            self._reading = None
            if reading in self._queue:
                self._queue.remove(reading)
            elif reading is self._cycle:
                self._cycle = None
                reading.disconnect()
                if reading.head_sent:
                    reading.complete = True
                    self._state = _DEAD
                    self._close()
                    return
                reading.complete = True
        self._state = _DEAD
        self._keep_alive = False
        self._deadline = 0.0
        self.flow.pause_reading()
        if self._cycle is None and not self._queue:
            self.write(error_response(exc.status, self._shared.defaults, self._refused_head))
            self._linger()
        else:
            self._pending_error = exc.status

    def _upgraded(self) -> None:
        """An Upgrade request we do not switch for: answered as plain HTTP, then closed."""
        self._state = _DEAD
        self._keep_alive = False

    def _hand_off(self, buffered: bytes) -> None:
        """Give the connection to the WebSocket protocol (http/websocket.py) for good."""
        from aioprefork.http.websocket import upgrade_to_websocket

        scope, self._upgrade = self._upgrade, None
        assert scope is not None
        self._state = _DEAD
        self.phase = "upgraded"
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._host.close()
        self.flush_held()
        shared = self._shared
        shared.closed(self)  # the WebSocket protocol registers itself in stats.connections
        try:
            upgrade_to_websocket(
                self.transport,
                scope,
                shared.app,
                self._limits,
                shared.stats,
                self.defaults,
                buffered,
                access=shared.access,
                peer=self._client[0] if self._client else "-",
                target=self._url,
            )
        except Exception:
            log.exception("WebSocket upgrade failed")
            self.transport.abort()

    def _to_http2(self, buffered: bytes, *, preface_read: bool, registered: bool) -> None:
        """Give the connection to the HTTP/2 engine (http/h2/connection.py) for good."""
        from aioprefork.http.h2.connection import serve_http2

        self._state = _DEAD
        self.phase = "upgraded"
        self._deadline = 0.0
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._host.close()
        shared = self._shared
        if registered:
            shared.closed(self)  # the HTTP/2 connection registers itself
        self._parser = _CLOSED_PARSER
        self._feed = _CLOSED_PARSER.feed_data
        try:
            serve_http2(
                self.transport,
                shared,
                self._template,
                self._extensions,
                self._trusted,
                buffered,
                preface_read,
            )
        except Exception:
            log.exception("HTTP/2 hand-off failed")
            self.transport.abort()

    def _read_proxy(self, data: bytes) -> bytes:
        """Strip the PROXY v1/v2 header the connection starts with; its source is the client."""
        buffer = self._proxy
        assert buffer is not None
        if not self._trusted:
            self._refuse(
                RequestRejected("PROXY header from an untrusted peer", reason="proxy_protocol")
            )
            return b""
        buffer += data
        try:
            header = parse_proxy_protocol(buffer)
        except RequestRejected as exc:
            self._refuse(exc)
            return b""
        if header is None:
            if len(buffer) > _PROXY_MAX:
                self._refuse(RequestRejected("PROXY header too long", reason="proxy_protocol"))
            return b""
        self._proxy = None
        if header.source is not None:
            self._client = header.source
            self._trusted = self._limits.proxy_headers and self._shared.peers.trusts(
                header.source[0]
            )
        else:
            self._trusted = False
        self._set_template()
        return bytes(buffer[header.consumed :])

    def _set_template(self) -> None:
        """The http scope keys one connection's requests share (copied per request)."""
        template = self._template = self._shared.scope_base.copy()
        template["server"] = self._server
        template["client"] = self._client
        template["scheme"] = self._scheme

    # --- deadlines ----------------------------------------------------------------------------

    def _head_read(self) -> None:
        """More of a head that spans reads: its deadline moves by what arrived (MinRate)."""
        limits = self._limits
        start = self._stage_start
        at = start + limits.min_rate_grace + self._head_bytes / limits.header_min_rate
        cap = start + limits.header_timeout
        self._deadline = at if at < cap else cap  # later only: the timer re-arms itself

    def _body_wait(self) -> None:
        """The body deadline: body_timeout from now, and no later than its MinRate allows."""
        limits = self._limits
        now = self._now()
        at = now + limits.body_timeout
        rate = limits.body_min_rate
        if rate:
            start = self._stage_start
            if not start:
                start = self._stage_start = now  # the body's first wait
            floor = start + limits.min_rate_grace + self._stage_bytes / rate
            if floor < at:
                at = floor
        self._deadline_at(_BODY_WAIT, at)

    def due(self) -> float:
        """When this connection's client must next have made progress, while it is the client
        holding the connection up (reading a head or body, or a stalled response); else 0.

        worker/server.py sheds the connection with the earliest one first at capacity.
        """
        kind = self._deadline_kind
        deadline = self._deadline
        if not deadline or kind not in (_HEADER, _BODY_WAIT, _WRITE):
            deadline = 0.0
        stall = self.stall_due
        if stall and (not deadline or stall < deadline):
            return stall
        return deadline

    def reason(self) -> str:
        """What this connection is waiting on its client for (the shed metric's label)."""
        if self.stall_due or self._deadline_kind == _WRITE:
            return "slow_reader"
        if self._deadline_kind == _BODY_WAIT:
            return "slow_body"
        return "slow_head"

    @property
    def idle(self) -> bool:
        """Between requests, keep-alive, and not already being closed: reclaimable first."""
        return self.phase == "keepalive" and self._keep_alive and not self.stall_due

    def shed(self) -> None:
        """Cut the connection now (a slow client shed to make room, or over budget).

        With a reset (SO_LINGER 0), as nginx's reset_timedout_connection: a plain close would
        leave the kernel sending what it holds to the slow reader, an orphan that still costs
        its send buffer and that the client cannot tell from a live connection.
        """
        if self.stall_due:
            self._unstall()  # its buffer is freed now, not at connection_lost
        self._held = None
        sock = self.transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _RESET)
        self.transport.abort()

    def _set_deadline(self, kind: int, delay: float) -> None:
        self._deadline_at(kind, self._now() + delay)

    def _deadline_at(self, kind: int, at: float) -> None:
        """The one deadline is now `at` (loop time); the timer is re-armed only to go earlier."""
        self._deadline = at
        self._deadline_kind = kind
        timer = self._timer
        if timer is None or at < self._timer_at:
            if timer is not None:
                timer.cancel()
            self._timer = self._loop.call_at(at, self._on_timer)
            self._timer_at = at

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline
        if not deadline:
            return
        if self._loop.time() < deadline:
            self._timer = self._loop.call_at(deadline, self._on_timer)
            self._timer_at = deadline
            return
        self._deadline = 0.0
        kind = self._deadline_kind
        if kind == _KEEPALIVE:
            self._close()
        elif kind == _WRITE:
            self.transport.abort()
        elif kind == _LINGER:
            self.transport.close()
        elif kind == _HEADER:
            if self._state == _HEAD or self._proxy:
                self._refuse(
                    RequestRejected("request head timed out", status=408, reason="header_timeout")
                )
            elif self._cycle is None and not self._queue:
                self._close()  # a connection that never sent a byte: no answer owed
        elif kind == _BODY_WAIT and self._state == _BODY:
            self._refuse(
                RequestRejected("request body timed out", status=408, reason="body_timeout")
            )

    # --- closing ------------------------------------------------------------------------------

    def _close(self) -> None:
        """Close after what was written is flushed; a client that never reads is cut at write_timeout."""
        if self.phase == "closing" and self.transport.is_closing():
            return
        self.flush_held()
        self.phase = "closing"
        self._state = _DEAD
        # No request follows: the host task ends when its apps do, rather than parking until
        # connection_lost wakes it (a Connection: close request then costs no wake-up at all).
        self._host.close()
        transport = self.transport
        if transport.get_write_buffer_size():
            self._set_deadline(_WRITE, self._limits.write_timeout)
        transport.close()

    def _linger(self) -> None:
        """Close after a refusal without resetting the answer away (Apache's lingering close).

        Closing with unread input makes the kernel send RST, and a client may lose our answer
        to it. So: send FIN after the answer, read and drop what the client still sends, and
        close at its EOF or after _LINGER_TIME.
        """
        transport = self.transport
        if self.phase == "closing" or not transport.can_write_eof():
            self._close()
            return
        self.flush_held()
        self.phase = "closing"
        self._state = _DEAD
        transport.write_eof()
        self.flow.resume_reading()
        self._set_deadline(_LINGER, min(_LINGER_TIME, self._limits.write_timeout))

    def shutdown(self) -> None:
        """Graceful stop: close now if idle; otherwise after the response(s) in flight."""
        self._keep_alive = False
        for cycle in (self._cycle, *self._queue):
            if cycle is not None and not cycle.head_sent:
                cycle.keep_alive = False
        if self._cycle is None and not self._queue and self._state != _HEAD:
            if self._state == _BODY and self._reading is not None and not self._reading.complete:
                return
            if self._state == _IDLE:
                # Idle (just accepted, or keep-alive between requests): its next request may
                # already be on the wire, and closing a socket with unread data resets it. Give
                # it a moment to arrive (then it is served with Connection: close), else close.
                self._set_deadline(_KEEPALIVE, _FIRST_REQUEST_GRACE)
                return
            self._close()

    def retire(self) -> None:
        """Make the next request this connection's last: its response says Connection: close.

        For handing a connection back to the pool (worker/balance.py): unlike shutdown(), it never
        closes between requests, where the client's next request may already be on the wire.
        """
        last = self._requests + 1
        if not 0 < self._max_requests <= last:
            self._max_requests = last

    def request_row(self, target_length: int) -> tuple[str, str, str, str, str, str, float] | None:
        """This connection as `ctl status --requests` lists it (worker/inflight.py): only built
        when asked, from what the connection holds anyway."""
        peer = address(self._client)
        cycle = self._cycle or self._reading
        if cycle is None:
            if self.phase == "keepalive":
                idle = self._now() - self.idle_since
                return peer, peer, "HTTP/1.1", "-", "-", "keep-alive", idle
            if self.phase == "reading":
                return peer, peer, "HTTP/1.1", "-", "-", "reading head", 0.0
            return None
        if self.phase == "upgraded":
            phase, protocol = "websocket", "WebSocket"
        else:
            protocol = "HTTP/1.1" if cycle.http11 else "HTTP/1.0"
            if cycle.more_body:
                phase = "reading body"
            elif cycle.complete:
                phase = "closing"
            elif self.flow.write_paused:
                phase = "writing"
            else:
                phase = "in app"
        target = cut_target(cycle.target.decode("latin-1"), target_length)
        client = address(cycle.scope.get("client"))
        return client, peer, protocol, cycle.method, target, phase, _clock() - cycle.start

    def hosted_tasks(self) -> list[tuple[asyncio.Task[None], object]]:
        """This connection's app tasks and what each runs (`ctl dump`, worker/stacks.py)."""
        return self._host.hosted()

    def abort(self) -> None:
        """Immediate stop: drop the connection and cancel its apps."""
        self._host.cancel()
        self._held = None
        self.transport.abort()
