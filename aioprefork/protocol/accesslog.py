"""The access log: one Apache LogFormat line per response on the "aioprefork.access" logger.

Internal. The format is compiled once into a `str.format` template plus one small getter per
directive, so `log()` does no parsing, and nothing at all when the logger drops INFO (callers
check `enabled` first and skip even gathering the arguments). Request-derived fields are escaped
the way Apache's ap_escape_logitem does (`\\"`, `\\\\`, `\\n`, `\\xhh` for anything outside
printable ASCII), so a client can never inject a line break or a fake field. `%t` is rebuilt at
most once a second.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from typing import Final

__all__ = ["COMBINED", "COMMON", "AccessLogger", "check_format"]

COMMON: Final = '%h %l %u %t "%r" %>s %b'
COMBINED: Final = '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"'
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


# The arguments of one log() call, positionally (cheaper than a per-request object).
_Args = tuple[str, str, bytes, str, int, int, bytes, bytes, float, float]
_Getter = Callable[[_Args], str]
_CLIENT: Final = 0
_METHOD: Final = 1
_TARGET: Final = 2
_VERSION: Final = 3
_STATUS: Final = 4
_SIZE: Final = 5
_REFERER: Final = 6
_UA: Final = 7
_DURATION: Final = 8
_NOW: Final = 9


def _protocol(version: str) -> str:
    return version if version.startswith("HTTP/") else "HTTP/" + version


def _request_line(a: _Args) -> str:
    return f"{_escape_str(a[_METHOD])} {escape(a[_TARGET])} {_escape_str(_protocol(a[_VERSION]))}"


def _path(a: _Args) -> str:
    return escape(a[_TARGET].partition(b"?")[0])


def _query(a: _Args) -> str:
    _, mark, query = a[_TARGET].partition(b"?")
    return "?" + escape(query) if mark and query else ""


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
_HEADERS: Final[dict[str, _Getter]] = {
    "referer": lambda a: escape(a[_REFERER]),
    "user-agent": lambda a: escape(a[_UA]),
}
# %% | %[<>]?{param}?letter  (Apache mod_log_config; status conditions like %400r unsupported)
_DIRECTIVE_RE: Final = re.compile(r"%(?:(%)|([<>]?)(?:\{([^}]*)\})?([A-Za-z])?)")


class AccessLogger:
    """Formats and emits access-log lines: "combined" (default), "common" or a LogFormat string."""

    __slots__ = ("_getters", "_logger", "_t_second", "_t_text", "_template", "format")

    def __init__(self, fmt: str = "combined") -> None:
        self.format = _NAMED.get(fmt, fmt)
        self._logger = logging.getLogger("aioprefork.access")
        self._template, getters = _compile(self.format, self._time)
        self._getters: tuple[_Getter, ...] = tuple(getters)
        self._t_second = -1
        self._t_text = ""

    @property
    def enabled(self) -> bool:
        """False when the "aioprefork.access" logger would drop an INFO record."""
        return self._logger.isEnabledFor(logging.INFO)

    def log(
        self,
        *,
        client: str,
        method: str,
        target: bytes,
        http_version: str,
        status: int,
        size: int,
        referer: bytes,
        user_agent: bytes,
        duration: float,
        now: float,
    ) -> None:
        """Emit one line. `now` is wall-clock time (time.time()), `duration` in seconds."""
        if not self._logger.isEnabledFor(logging.INFO):
            return
        args: _Args = (
            client,
            method,
            target,
            http_version,
            status,
            size,
            referer,
            user_agent,
            duration,
            now,
        )
        self._logger.info(self._template.format(*[get(args) for get in self._getters]))

    def _time(self, a: _Args) -> str:
        second = int(a[_NOW])
        if second != self._t_second:
            self._t_text = _apache_time(second)
            self._t_second = second
        return self._t_text


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
            getter = _HEADERS.get(param.lower()) if letter == "i" else None
            if getter is None:
                raise ValueError(
                    f"access log format {fmt!r}: unsupported directive %{{{param}}}{letter} "
                    "(request headers available: %{Referer}i and %{User-agent}i)"
                )
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
                    "(supported: %h %a %l %u %t %r %s %>s %b %B %D %T %m %U %q %H %P %% "
                    "%{Referer}i %{User-agent}i)"
                )
            getter = found
        template.append("{}")
        getters.append(getter)
    template.append(fmt[pos:].replace("{", "{{").replace("}", "}}"))
    return "".join(template), getters
