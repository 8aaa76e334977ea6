"""The checks on an HTTP/2 request's header list (RFC 9113 section 8.2, 8.3), as a pure function.

Internal. The same strictness as the HTTP/1.1 path: a request that breaks a rule is malformed
(`Malformed`: the connection resets the stream with PROTOCOL_ERROR), one over the field limits
is refused with 431 (`TooLarge`). What passes becomes a `RequestHead` with the header list as
ASGI wants it: regular fields only, `host` first (from :authority when the client sent no Host),
several `cookie` fields joined into one (section 8.2.3).
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["Malformed", "RequestHead", "TooLarge", "check_request", "check_trailers"]

# Fields that belong to an HTTP/1.1 connection, never to an HTTP/2 message (section 8.2.2).
_CONNECTION_SPECIFIC: Final = frozenset(
    {b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade"}
)
_REQUEST_PSEUDO: Final = frozenset({b":method", b":scheme", b":path", b":authority"})
# RFC 9110 section 5.6.2 tchar, lower case only (section 8.2.1: upper case is malformed)
_NAME: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+\Z")
_METHOD: Final = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# no NUL, CR or LF anywhere, no leading or trailing SP/HTAB (section 8.2.1)
_BAD_VALUE: Final = re.compile(rb"[\x00\r\n]|\A[ \t]|[ \t]\Z")
_DIGITS: Final = re.compile(rb"[0-9]+\Z")
_HOP: Final = 1
_SPECIAL: Final[dict[bytes, int]] = dict.fromkeys(_CONNECTION_SPECIFIC, _HOP) | {
    b"te": 2,
    b"content-length": 2,
    b"expect": 2,
    b"cookie": 2,
    b"host": 2,
}
_COMMON_METHODS: Final = frozenset(
    {b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"PATCH", b"OPTIONS", b"TRACE"}
)
_KNOWN_NAMES: Final[set[bytes]] = set()  # names already found valid (bounded)
_KNOWN_MAX: Final = 1024
# Values already found valid (bounded, short ones only): clients repeat theirs on every request,
# and HPACK hands back the same bytes objects (their hash cached), so this is a set lookup
# where the check is a regex search.
_KNOWN_VALUES: Final[set[bytes]] = set()
_KNOWN_VALUES_MAX: Final = 4096
_KNOWN_VALUE_SIZE: Final = 256


class Malformed(ValueError):
    """A malformed request (section 8.1.1): stream error PROTOCOL_ERROR."""


class TooLarge(ValueError):
    """More fields, or a larger field, than limit_request_fields / limit_request_field_size."""


class RequestHead:
    """What check_request found. (A plain class: compiled, it is built natively, where a
    dataclass costs ~3k instructions a request.)"""

    __slots__ = (
        "authority",
        "content_length",
        "expect_continue",
        "headers",
        "method",
        "path",
        "scheme",
        "te_trailers",
    )

    def __init__(
        self,
        method: bytes,
        path: bytes,
        authority: bytes | None,
        scheme: bytes,
        headers: list[tuple[bytes, bytes]],
        content_length: int,
        te_trailers: bool,
        expect_continue: bool = False,
    ) -> None:
        self.method = method
        self.path = path  # :path as sent (path and query)
        self.authority = authority
        self.scheme = scheme
        self.headers = headers
        self.content_length = content_length  # -1: none
        self.te_trailers = te_trailers  # te: trailers (the client accepts response trailers)
        self.expect_continue = expect_continue  # expect: 100-continue, answered on first read


def _check_name(name: bytes) -> None:
    if name in _KNOWN_NAMES:
        return
    if not _NAME.match(name):
        raise Malformed(f"invalid field name {name[:64]!r}")
    if len(_KNOWN_NAMES) < _KNOWN_MAX:
        _KNOWN_NAMES.add(name)


def _check_value(name: bytes, value: bytes) -> None:
    if value in _KNOWN_VALUES:
        return
    if _BAD_VALUE.search(value):
        raise Malformed(f"invalid value of {name[:64]!r}")
    if len(value) <= _KNOWN_VALUE_SIZE and len(_KNOWN_VALUES) < _KNOWN_VALUES_MAX:
        _KNOWN_VALUES.add(value)


def check_request(
    fields: list[tuple[bytes, bytes]], max_fields: int, max_field_size: int
) -> RequestHead:
    """A decoded request header list -> RequestHead; Malformed or TooLarge when refused."""
    method = scheme = path = authority = None
    headers: list[tuple[bytes, bytes]] = []
    cookies: list[bytes] = []
    host: bytes | None = None
    content_length = -1
    te_trailers = False
    expect = False
    regular = False
    for field in fields:
        name, value = field
        if not name:
            raise Malformed("empty field name")
        if name[0] == 58:  # ":"
            if regular:
                raise Malformed("pseudo-header after a regular field")
            if name not in _REQUEST_PSEUDO:
                raise Malformed(f"invalid pseudo-header {name[:32]!r}")
            _check_value(name, value)
            if name == b":method":
                if method is not None:
                    raise Malformed("duplicate :method")
                method = value
            elif name == b":path":
                if path is not None:
                    raise Malformed("duplicate :path")
                path = value
            elif name == b":scheme":
                if scheme is not None:
                    raise Malformed("duplicate :scheme")
                scheme = value
            else:
                if authority is not None:
                    raise Malformed("duplicate :authority")
                authority = value
            continue
        regular = True
        if name not in _KNOWN_NAMES:
            _check_name(name)
        if value and value not in _KNOWN_VALUES:
            _check_value(name, value)
        if len(name) + len(value) > max_field_size:
            raise TooLarge("header field too large")
        special = _SPECIAL.get(name, 0)  # one lookup for the common case: none of these
        if not special:
            headers.append(field)
            continue
        if special == _HOP:
            raise Malformed(f"connection-specific field {name!r}")
        if name == b"te":
            if value.lower() != b"trailers":
                raise Malformed("te other than trailers")
            te_trailers = True
        elif name == b"content-length":
            if not _DIGITS.match(value):
                raise Malformed("invalid content-length")
            length = int(value)
            if content_length >= 0 and length != content_length:
                raise Malformed("conflicting content-length")
            if content_length >= 0:
                continue  # the same value twice: keep one
            content_length = length
        elif name == b"expect":
            expect = value.lower() == b"100-continue"
        elif name == b"cookie":
            cookies.append(value)
            continue
        elif name == b"host":
            if host is not None:
                raise Malformed("duplicate host")
            host = value
            continue
        headers.append((name, value))
    if method is None:
        raise Malformed("missing :method")
    if method not in _COMMON_METHODS and not _METHOD.match(method):
        raise Malformed("invalid :method")
    if method == b"CONNECT":
        if scheme is not None or path is not None or not authority:
            raise Malformed("CONNECT needs :authority only")
    else:
        if scheme is None or path is None:
            raise Malformed("missing :scheme or :path")
        if not path:
            raise Malformed("empty :path")
        if path[0] != 47 and not (path == b"*" and method == b"OPTIONS"):  # 47: "/"
            raise Malformed("invalid :path")
        if path.find(b"#") >= 0:  # (bytes `in` bytes tries an int first: a TypeError each time)
            raise Malformed("fragment in :path")
    if authority is not None and host is not None and authority != host:
        # section 8.3.1: they must be the same when both are sent
        raise Malformed(":authority and host differ")
    if host is None:
        host = authority
    if cookies:
        headers.append((b"cookie", b"; ".join(cookies)))
    if host is not None:
        headers.insert(0, (b"host", host))
    if content_length >= 0:
        headers.append((b"content-length", b"%d" % content_length))
    if len(headers) > max_fields:
        raise TooLarge("too many header fields")
    return RequestHead(
        method,
        path or b"",
        authority,
        scheme or b"",
        headers,
        content_length,
        te_trailers,
        expect,
    )


def check_trailers(fields: list[tuple[bytes, bytes]]) -> None:
    """Trailer fields: no pseudo-header, the same name and value rules (dropped afterwards)."""
    for name, value in fields:
        if name[:1] == b":":
            raise Malformed("pseudo-header in trailers")
        _check_name(name)
        if value and _BAD_VALUE.search(value):
            raise Malformed(f"invalid value of {name[:64]!r}")
        if name in _CONNECTION_SPECIFIC:
            raise Malformed(f"connection-specific field {name!r}")
