"""The access log: one line per response on the "aioprefork.access" logger.

Internal. The format is an Apache LogFormat ("combined" by default, "common", or any string of
the directives below) or "json" (JSON lines: one object per line, for log pipelines). A
LogFormat is compiled once into a `str.format` template plus one small getter per directive, so
`log()` does no parsing, and nothing at all when the logger drops INFO (callers check `enabled`
first and skip even gathering the arguments). Headers are looked up only by the directives that
name them: a format without `%{Name}o` never reads the response headers. Request-derived fields
are escaped the way Apache's ap_escape_logitem does (`\\"`, `\\\\`, `\\n`, `\\xhh` for anything
outside printable ASCII), so a client can never inject a line break or a fake field; JSON lines
get the same guarantee from json.dumps (ASCII only, every control escaped). `%t` and the JSON
time are rebuilt at most once a second.

A WebSocket session writes two lines: the handshake (status 101, or the status the app or the
handshake check denied it with) and its close: the same LogFormat with the session's duration
and bytes, followed by ` ws_close=<code> ws_duration=<seconds>s` (JSON: "event":
"websocket.close", "close_code", "duration_us").
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from typing import Final

__all__ = ["COMBINED", "COMMON", "JSON", "AccessLogger", "check_format"]

COMMON: Final = '%h %l %u %t "%r" %>s %b'
COMBINED: Final = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'
JSON: Final = "json"
_SOURCE: Final = __file__
_NAMED: Final = {"common": COMMON, "combined": COMBINED}

_MONTHS: Final = (
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
)

# ap_escape_logitem: printable ASCII stays, `"` and `\` get a backslash, \b \n \r \t \v their C
# escapes, every other byte (controls, DEL, non-ASCII) becomes \xhh.
_SAFE: Final = bytes(c for c in range(0x20, 0x7F) if c not in b'"\\')
_ESCAPES: Final = tuple(
    chr(c)
    if c in _SAFE
    else {0x22: '\\"', 0x5C: "\\\\", 0x08: "\\b", 0x0A: "\\n", 0x0D: "\\r", 0x09: "\\t"}.get(
        c, "\\v" if c == 0x0B else f"\\x{c:02x}"
    )
    for c in range(256)
)


def escape(value: bytes) -> str:
    """A request-derived byte string made safe for one log line; "-" when empty (Apache)."""
    if not value:
        return "-"
    if not value.translate(None, _SAFE):  # every byte is safe: the common case
        return value.decode("ascii")
    return "".join([_ESCAPES[c] for c in value])


def _escape_str(value: str) -> str:
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value or "-"
    return escape(value.encode("utf-8", "surrogateescape"))


HeaderFields = Sequence[tuple[bytes, bytes]]

# The arguments of one log() call, positionally (cheaper than a per-request object).
_Args = tuple[str, str, str, bytes, str, int, int, HeaderFields, HeaderFields, float, float]
_Getter = Callable[[_Args], str]
_CLIENT: Final = 0  # the client address after X-Forwarded-For / PROXY (scope["client"])
_PEER: Final = 1  # the TCP peer (the proxy, behind one)
_METHOD: Final = 2
_TARGET: Final = 3
_VERSION: Final = 4
_STATUS: Final = 5
_SIZE: Final = 6
_REQUEST_HEADERS: Final = 7  # lower-case names (the HTTP core lowers them)
_RESPONSE_HEADERS: Final = 8  # as the app sent them: any case
_DURATION: Final = 9
_NOW: Final = 10


def _protocol(version: str) -> str:
    return version if version.startswith("HTTP/") else "HTTP/" + version


def _request_line(a: _Args) -> str:
    return f"{_escape_str(a[_METHOD])} {escape(a[_TARGET])} {_escape_str(_protocol(a[_VERSION]))}"


def _path(a: _Args) -> str:
    return escape(a[_TARGET].partition(b"?")[0])


def _query(a: _Args) -> str:
    _, mark, query = a[_TARGET].partition(b"?")
    return "?" + escape(query) if mark and query else ""


def request_header(headers: HeaderFields, name: bytes) -> bytes:
    """The first value of field `name` (lower-case) in lower-cased request headers; b"" if none."""
    for field, value in headers:
        if field == name:
            return value
    return b""


def response_header(headers: HeaderFields, name: bytes) -> bytes:
    """The first value of field `name` (lower-case) among the app's headers (any case)."""
    for field, value in headers:
        if field.lower() == name:
            return value
    return b""


def _request_getter(name: str) -> _Getter:
    wanted = name.lower().encode("latin-1")
    return lambda a: escape(request_header(a[_REQUEST_HEADERS], wanted))


def _response_getter(name: str) -> _Getter:
    wanted = name.lower().encode("latin-1")
    return lambda a: escape(response_header(a[_RESPONSE_HEADERS], wanted))


_GETTERS: Final[dict[str, _Getter]] = {
    "h": lambda a: _escape_str(a[_CLIENT]),
    "a": lambda a: _escape_str(a[_CLIENT]),
    "r": _request_line,
    "s": lambda a: str(a[_STATUS]),
    "b": lambda a: str(a[_SIZE]) if a[_SIZE] else "-",
    "B": lambda a: str(a[_SIZE]),
    "D": lambda a: str(int(a[_DURATION] * 1_000_000)),
    "T": lambda a: str(int(a[_DURATION])),
    "m": lambda a: _escape_str(a[_METHOD]),
    "U": _path,
    "q": _query,
    "H": lambda a: _escape_str(_protocol(a[_VERSION])),
    "P": lambda a: str(os.getpid()),  # per call: the logger may be built before fork
}


def _peer(a: _Args) -> str:
    return _escape_str(a[_PEER])


_SUPPORTED: Final = "%h %a %{c}a %l %u %t %r %s %>s %b %B %D %T %m %U %q %H %P %% %{Name}i %{Name}o"
# %% | %[<>]?{param}?letter  (Apache mod_log_config; status conditions like %400r unsupported)
_DIRECTIVE_RE: Final = re.compile(r"%(?:(%)|([<>]?)(?:\{([^}]*)\})?([A-Za-z])?)")
_HEADER_NAME_RE: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")  # an RFC 9110 token


class AccessLogger:
    """Formats and emits access-log lines: "combined" (default), "common", "json" or a LogFormat."""

    __slots__ = (
        "_getters",
        "_json",
        "_logger",
        "_t_second",
        "_t_text",
        "_template",
        "_utc_second",
        "_utc_text",
        "format",
    )

    def __init__(self, fmt: str = "combined") -> None:
        self.format = _NAMED.get(fmt, fmt)
        self._json = fmt == JSON
        self._logger = logging.getLogger("aioprefork.access")
        getters: list[_Getter] = []
        self._template = ""
        if not self._json:
            self._template, getters = _compile(self.format, self._time)
        self._getters: tuple[_Getter, ...] = tuple(getters)
        self._t_second = self._utc_second = -1
        self._t_text = self._utc_text = ""

    @property
    def enabled(self) -> bool:
        """False when the "aioprefork.access" logger would drop an INFO record."""
        return self._logger.isEnabledFor(logging.INFO)

    def log(
        self,
        *,
        client: str,
        peer: str,
        method: str,
        target: bytes,
        http_version: str,
        status: int,
        size: int,
        request_headers: HeaderFields,
        response_headers: HeaderFields,
        duration: float,
        now: float,
        event: str = "http",
    ) -> None:
        """Emit one line. `now` is wall-clock time (time.time()), `duration` in seconds.

        `event` is JSON's "event" field: "http", or "websocket.handshake" for a WebSocket
        handshake (status 101, or the status that denied it).
        """
        if not self._logger.isEnabledFor(logging.INFO):
            return
        args: _Args = (
            client,
            peer,
            method,
            target,
            http_version,
            status,
            size,
            request_headers,
            response_headers,
            duration,
            now,
        )
        if self._json:
            self._emit(self._json_line(args, event, 0))
        else:
            self._emit(self._template.format(*[get(args) for get in self._getters]))

    def log_websocket_close(
        self,
        *,
        client: str,
        peer: str,
        target: bytes,
        http_version: str,
        size: int,
        request_headers: HeaderFields,
        response_headers: HeaderFields,
        duration: float,
        now: float,
        close_code: int,
    ) -> None:
        """The line for the end of a WebSocket session: `duration` and `size` are the session's."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        args: _Args = (
            client,
            peer,
            "GET",
            target,
            http_version,
            101,
            size,
            request_headers,
            response_headers,
            duration,
            now,
        )
        if self._json:
            line = self._json_line(args, "websocket.close", close_code)
        else:
            line = (
                self._template.format(*[get(args) for get in self._getters])
                + f" ws_close={close_code} ws_duration={duration:.3f}s"
            )
        self._emit(line)

    def _emit(self, line: str) -> None:
        """logger.info(line) without its search of the call stack for a file and line number
        (findCaller), which an access line never shows: a fifth of the line's cost."""
        logger = self._logger
        logger.handle(logger.makeRecord(logger.name, logging.INFO, _SOURCE, 0, line, (), None))

    def _time(self, a: _Args) -> str:
        second = int(a[_NOW])
        if second != self._t_second:
            self._t_text = _apache_time(second)
            self._t_second = second
        return self._t_text

    def _json_line(self, a: _Args, event: str, close_code: int) -> str:
        now = a[_NOW]
        second = int(now)
        if second != self._utc_second:
            self._utc_text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._utc_second = second
        return json_line(
            a, event, close_code, f"{self._utc_text}.{int((now - second) * 1000):03d}Z"
        )


def _text(value: bytes) -> str | None:
    """Bytes as JSON text, lossless (latin-1: one code point per byte); None when empty."""
    return value.decode("latin-1") if value else None


def _address(address: str) -> str | None:
    return None if address in ("", "-") else address  # a Unix socket has none


def json_line(a: _Args, event: str, close_code: int, when: str) -> str:
    """One JSON object on one line (json.dumps escapes every control and non-ASCII character)."""
    path, mark, query = a[_TARGET].partition(b"?")
    request_headers = a[_REQUEST_HEADERS]
    request_id = request_header(request_headers, b"x-request-id") or response_header(
        a[_RESPONSE_HEADERS], b"x-request-id"
    )
    record: dict[str, object] = {
        "time": when,
        "event": event,
        "client": _address(a[_CLIENT]),
        "peer": _address(a[_PEER]),
        "method": a[_METHOD],
        "path": path.decode("latin-1"),
        "query": query.decode("latin-1") if mark else None,
        "protocol": _protocol(a[_VERSION]),
        "status": a[_STATUS],
        "bytes": a[_SIZE],
        "duration_us": int(a[_DURATION] * 1_000_000),
        "request_id": _text(request_id),
        "user_agent": _text(request_header(request_headers, b"user-agent")),
        "referer": _text(request_header(request_headers, b"referer")),
    }
    if close_code:
        record["close_code"] = close_code
    return json.dumps(record, separators=(",", ":"))


def _apache_time(second: int) -> str:
    """[10/Oct/2000:13:55:36 -0700]: local time, English month whatever the locale (Apache %t)."""
    t = time.localtime(second)
    offset = t.tm_gmtoff // 60
    sign = "-" if offset < 0 else "+"
    offset = abs(offset)
    return (
        f"[{t.tm_mday:02d}/{_MONTHS[t.tm_mon - 1]}/{t.tm_year:04d}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {sign}{offset // 60:02d}{offset % 60:02d}]"
    )


def check_format(fmt: str) -> None:
    """Raise ValueError, naming the directive, if `fmt` is no format AccessLogger can use."""
    if fmt != JSON:
        _compile(_NAMED.get(fmt, fmt), str)


def _compile(fmt: str, time_getter: _Getter) -> tuple[str, list[_Getter]]:
    """LogFormat -> (str.format template, one getter per placeholder); ValueError if unknown."""
    template: list[str] = []
    getters: list[_Getter] = []
    pos = 0
    for match in _DIRECTIVE_RE.finditer(fmt):
        template.append(fmt[pos : match.start()].replace("{", "{{").replace("}", "}}"))
        pos = match.end()
        if match.group(1):
            template.append("%")
            continue
        param, letter = match.group(3), match.group(4)
        if letter is None:
            raise ValueError(
                f"access log format {fmt!r}: incomplete directive at {match.group()!r}"
            )
        if param is not None:
            found = None
            if letter in "io" and _HEADER_NAME_RE.fullmatch(param):
                found = _request_getter(param) if letter == "i" else _response_getter(param)
            elif letter == "a" and param == "c":
                found = _peer
            if found is None:
                raise ValueError(
                    f"access log format {fmt!r}: unsupported directive %{{{param}}}{letter} "
                    f"(supported: {_SUPPORTED})"
                )
            getter = found
        elif letter in "lu":  # identd user, auth user: never known here, folded into the text
            template.append("-")
            continue
        elif letter == "t":
            getter = time_getter
        else:
            found = _GETTERS.get(letter)
            if found is None:
                raise ValueError(
                    f"access log format {fmt!r}: unknown directive %{letter} "
                    f"(supported: {_SUPPORTED}, or the format json)"
                )
            getter = found
        template.append("{}")
        getters.append(getter)
    template.append(fmt[pos:].replace("{", "{{").replace("}", "}}"))
    return "".join(template), getters
