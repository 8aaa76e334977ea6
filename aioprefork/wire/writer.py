"""Response bytes: status lines, the response head, chunked framing, the Server + Date block.

Internal and pure: never touches a socket, never logs. The protocol asks `encode_head()` for the
head of one response and gets back the bytes plus the framing decision (content length, chunked,
keep-alive), so framing is testable without a transport.

Work is done once, not per request (uvicorn's STATUS_LINE, its once-a-second Date): status lines
are precomputed at import, the Server + Date lines are one `DefaultHeaders.block` refreshed once
a second by the worker's tick, and header names the app sends are validated once per distinct
name (a bounded cache). Invariant: nothing the app gives us reaches the wire unless it is a token
name and a value free of CR, LF and NUL; a status outside 100-999 is refused (ResponseError ->
500 before the response started, a closed connection after).
"""

from __future__ import annotations

import http
import re
import time
from collections.abc import Iterable
from email.utils import formatdate
from typing import Any, Final

from aioprefork.wire.framing import parse_content_length
from aioprefork.wire.memo import COMPILED, remember

__all__ = [
    "CONTINUE",
    "LAST_CHUNK",
    "STATUS_LINE",
    "DefaultHeaders",
    "ResponseError",
    "chunk",
    "encode_head",
    "encode_trailers",
    "error_body",
    "error_response",
    "status_line",
]


class ResponseError(Exception):
    """The app asked for a response we must not write (bad status, header, or body length)."""


def _phrase(status: int) -> bytes:
    try:
        return http.HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        return b""


# RFC 9112 section 4: status-line = HTTP-version SP status-code SP [ reason-phrase ] CRLF
STATUS_LINE: Final[dict[int, bytes]] = {
    code: b"HTTP/1.1 %d %s\r\n" % (code, _phrase(code)) for code in range(100, 1000)
}
CONTINUE: Final = b"HTTP/1.1 100 Continue\r\n\r\n"
LAST_CHUNK: Final = b"0\r\n\r\n"


def status_line(status: int) -> bytes:
    line = STATUS_LINE.get(status) if type(status) is int else None
    if line is None:
        raise ResponseError(f"invalid status {status!r}: must be an int in 100-999")
    return line


class DefaultHeaders:
    """The Server and Date lines every response carries, as one precomputed block.

    `refresh(now)` is called by the worker once a second (not per request): RFC 9110 section
    6.6.1 only needs second resolution. An empty server_header means no Server line at all.
    """

    __slots__ = ("_date", "_second", "block", "date_line", "server_line")

    def __init__(self, server_header: str = "aioprefork", date_header: bool = True) -> None:
        if any(c in server_header for c in "\r\n\x00"):
            raise ValueError("server_header must not contain CR, LF or NUL")
        self.server_line = b"server: %s\r\n" % server_header.encode() if server_header else b""
        self._date = date_header
        self._second = -1
        self.date_line = b""
        self.block = self.server_line
        if date_header:
            self.refresh(time.time())

    def refresh(self, now: float) -> None:
        second = int(now)
        if not self._date or second == self._second:
            return
        self._second = second
        self.date_line = b"date: %s\r\n" % formatdate(second, usegmt=True).encode("ascii")
        self.block = self.server_line + self.date_line

    def without(self, server: bool, date: bool) -> bytes:
        """The block less the lines the app set itself (its own Server or Date wins)."""
        return (b"" if server else self.server_line) + (b"" if date else self.date_line)


# Header kinds the writer acts on; everything else passes through once validated.
_PLAIN: Final = 0
_CONTENT_LENGTH: Final = 1
_TRANSFER_ENCODING: Final = 2
_CONNECTION: Final = 3
_SERVER: Final = 4
_DATE: Final = 5
_SPECIAL: Final = {
    b"content-length": _CONTENT_LENGTH,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"connection": _CONNECTION,
    b"server": _SERVER,
    b"date": _DATE,
}
_TOKEN_RE: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # RFC 9110 section 5.6.2
_KINDS: Final[dict[bytes, int]] = {}  # raw name -> kind, for names already validated
_KINDS_MAX: Final = 1024


def _kind(name: bytes) -> int:
    kind = _KINDS.get(name)
    if kind is not None:
        return kind
    if type(name) is not bytes or _TOKEN_RE.match(name) is None:
        raise ResponseError(f"invalid response header name {name!r}")
    return remember(_KINDS, name, _SPECIAL.get(name.lower(), _PLAIN), _KINDS_MAX)


_LENGTHS: Final[dict[bytes, tuple[int, bytes]]] = {}  # Content-Length value -> (int, its line)
_LENGTHS_MAX: Final = 1024


def _length(value: bytes) -> tuple[int, bytes]:
    length = parse_content_length(value) if type(value) is bytes else -1
    if length < 0:
        raise ResponseError(f"invalid content-length {value!r}")
    return remember(_LENGTHS, value, (length, b"content-length: %d\r\n" % length), _LENGTHS_MAX)


class _AppHead:
    """What an app's (status, headers) encodes to, before the parts that vary per response.

    Apps send the same few heads again and again, so a cache hit skips the per-header
    validation. `full` is the whole head of the common case (the app gave a Content-Length, the
    connection stays open, HTTP/1.1), rebuilt only when the Date block changes (once a second).
    """

    __slots__ = (
        "block",
        "close",
        "content_length",
        "full",
        "length_line",
        "own_date",
        "own_server",
        "prefix",
        "simple",
    )

    def __init__(
        self,
        status: int,
        prefix: bytes,
        content_length: int,
        length_line: bytes,
        close: bool,
        own_server: bool,
        own_date: bool,
    ) -> None:
        self.prefix = prefix  # status line + the app's validated headers
        self.content_length = content_length  # or -1
        self.length_line = length_line
        self.close = close  # the app said Connection: close
        self.own_server = own_server
        self.own_date = own_date
        self.simple = (
            content_length >= 0
            and not (close or own_server or own_date)
            and status >= 200
            and status != 204
        )
        self.block = b""  # the DefaultHeaders.block `full` was built with
        self.full = b""


# (status, tuple(headers)) -> its _AppHead. Bounded: cleared when full.
_HEADS: Final[dict[tuple[object, ...], _AppHead]] = {}
_HEADS_MAX: Final = 512


class _LastHead:
    """The (status, headers) encoded last, and its _AppHead.

    An app answers the same way again and again, usually with the very same header tuples
    (constants of its code): recognising them by identity skips building and hashing the
    cache key (bench/README.md, "Where the instructions go"). A pair that is a new tuple
    with the same name object and an equal bytes value matches too (a computed Content-Length).
    Anything else takes the cache's path.
    """

    __slots__ = ("app", "pairs", "status")

    def __init__(self) -> None:
        self.status = -1
        self.pairs: tuple[Any, ...] = ()
        self.app: _AppHead | None = None

    def same(self, status: int, headers: list[Any]) -> bool:
        pairs = self.pairs
        if status != self.status or len(headers) != len(pairs):
            return False
        for i in range(len(pairs)):
            given: Any = headers[i]
            known: Any = pairs[i]
            if given is not known:
                if type(given) is not tuple or len(given) != 2:
                    return False
                value = given[1]
                if given[0] is not known[0] or type(value) is not bytes or value != known[1]:
                    return False
        return True


_LAST: Final = _LastHead()
# Only the mypyc build asks _LAST first: there its loop is native and saves instructions; an
# interpreted loop costs more than the C-level hashing it would save (bench/README.md).
_ASK_LAST: Final = COMPILED


def _app_head(status: int, headers: Iterable[Any]) -> _AppHead:
    """Validate and encode the status line and the app's headers (the cacheable part).

    `headers` is typed loosely on purpose: ASGI allows [name, value] lists too, and anything
    else must become a ResponseError here, not a TypeError (also when compiled with mypyc).
    """
    parts = [status_line(status)]
    lines = 1
    content_length = -1
    length_line = b""
    close = own_server = own_date = False
    try:
        for name, value in headers:
            kind = _KINDS.get(name)
            if kind is None:
                kind = _kind(name)
            if kind:
                if kind == _CONTENT_LENGTH:
                    if content_length >= 0:
                        raise ResponseError("more than one content-length")
                    cached = _LENGTHS.get(value)
                    if cached is None:
                        cached = _length(value)
                    content_length, length_line = cached
                    continue
                if kind == _CONNECTION:
                    if b"close" in [t.strip() for t in value.lower().split(b",")]:
                        close = True
                    continue
                if kind == _TRANSFER_ENCODING:
                    continue
                if kind == _SERVER:
                    own_server = True
                else:
                    own_date = True
            parts += (name, b": ", value, b"\r\n")
            lines += 1
        prefix = b"".join(parts)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ResponseError):
            raise
        raise ResponseError(f"invalid response headers: {exc}") from None
    # Each line holds exactly one CR and one LF: any other means a value carried one.
    if prefix.count(b"\n") != lines or prefix.count(b"\r") != lines or b"\x00" in prefix:
        raise ResponseError("response header value contains CR, LF or NUL")
    return _AppHead(status, prefix, content_length, length_line, close, own_server, own_date)


def encode_head(
    status: object,  # checked here: an app's status may be anything (and mypyc checks types)
    headers: Iterable[tuple[bytes, bytes]],
    defaults: DefaultHeaders,
    keep_alive: bool,
    http11: bool = True,
    head_request: bool = False,
    body_length: int = -1,
) -> tuple[bytes, int, bool, bool]:
    """Encode one response head; returns (head, content_length or -1, chunked, keep_alive).

    `body_length` >= 0 means the whole body is already known (one final body message): with no
    Content-Length from the app we send that length instead of chunking. Framing follows RFC 9112
    section 6: 1xx and 204 carry neither Content-Length nor Transfer-Encoding; 304 and HEAD keep
    the app's Content-Length but never gain one; no length on HTTP/1.1 -> chunked, on HTTP/1.0 ->
    close-delimited. The app's Connection and Transfer-Encoding are replaced by our own.
    """
    if type(status) is not int:
        raise ResponseError(f"invalid status {status!r}: must be an int in 100-999")
    last = _LAST
    app = last.app
    if app is None or not (_ASK_LAST and type(headers) is list and last.same(status, headers)):
        try:
            pairs = tuple(headers)
        except TypeError:
            raise ResponseError("invalid response headers: not an iterable of pairs") from None
        key = (status, pairs)
        try:
            app = _HEADS.get(key)
        except TypeError:  # unhashable pieces (list pairs, bytearray values): no caching
            app = _app_head(status, pairs)
        else:
            if app is None:
                app = remember(_HEADS, key, _app_head(status, pairs), _HEADS_MAX)
            if _ASK_LAST:
                last.status = status
                last.pairs = pairs
                last.app = app
    if app.simple and keep_alive and http11:
        block = defaults.block
        if app.block is not block:
            app.full = app.prefix + app.length_line + block + b"\r\n"
            app.block = block
        return app.full, app.content_length, False, True
    head = app.prefix
    content_length = app.content_length
    close = app.close
    own_server = app.own_server
    own_date = app.own_date
    if close:
        keep_alive = False
    chunked = False
    if status < 200 or status == 204:
        if status < 200:
            keep_alive = False  # a client still waits for the final response after a 1xx
        content_length = 0 if status == 204 else -1
    elif content_length >= 0:
        head += app.length_line  # 304 and HEAD keep the app's Content-Length too
    elif status == 304 or head_request:
        pass
    elif body_length >= 0:
        content_length = body_length
        head += b"content-length: %d\r\n" % content_length
    elif http11:
        chunked = True
        head += b"transfer-encoding: chunked\r\n"
    else:
        keep_alive = False  # HTTP/1.0 without a length: the close delimits the body
    if not keep_alive:
        head += b"connection: close\r\n"
    elif not http11:
        head += b"connection: keep-alive\r\n"
    block = defaults.without(own_server, own_date) if own_server or own_date else defaults.block
    return head + block + b"\r\n", content_length, chunked, keep_alive


def chunk(data: bytes) -> bytes:
    """One chunk of a chunked body (RFC 9112 section 7.1); never call it with empty data."""
    return b"%x\r\n%b\r\n" % (len(data), data)


def encode_trailers(headers: Iterable[Any]) -> bytes:
    """The last chunk plus a trailer section (RFC 9112 section 7.1.2), validated like a head."""
    parts = [b"0\r\n"]
    lines = 2
    try:
        for name, value in headers:
            if _KINDS.get(name) is None:
                _kind(name)
            parts += (name, b": ", value, b"\r\n")
            lines += 1
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ResponseError):
            raise
        raise ResponseError(f"invalid trailers: {exc}") from None
    parts.append(b"\r\n")
    data = b"".join(parts)
    if data.count(b"\n") != lines or data.count(b"\r") != lines or b"\x00" in data:
        raise ResponseError("trailer value contains CR, LF or NUL")
    return data


_ERROR_HEADS: Final[dict[int, bytes]] = {}


def error_body(status: int) -> bytes:
    """The plain-text content of an error answer: the status's reason phrase and a newline."""
    return (_phrase(status) or b"Error") + b"\n"


def error_response(status: int, defaults: DefaultHeaders, head_request: bool = False) -> bytes:
    """A complete small plain-text answer that closes the connection (rejections, 500, 503).

    `head_request`: the answer to a HEAD has the same head and no content (RFC 9110 9.3.2).
    """
    head = _ERROR_HEADS.get(status)
    if head is None:
        body = _phrase(status) or b"Error"
        head = b"".join(
            (
                STATUS_LINE[status],
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: %d\r\n" % (len(body) + 1),
                b"connection: close\r\n",
            )
        )
        _ERROR_HEADS[status] = head
    if head_request:
        return b"%s%s\r\n" % (head, defaults.block)
    return b"%s%s\r\n%s\n" % (head, defaults.block, _phrase(status) or b"Error")
