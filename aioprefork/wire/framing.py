"""RFC 9112 checks httptools (llhttp) leaves to the server: message framing, Host, versions.

Internal and pure: never touches a socket. The protocol hands `check_head()` the parsed head and
gets a `BodyFraming` back, or an errors.RequestRejected subclass that already knows its status
and counter label. Anything ambiguous about where the body ends is refused (400 + close), never
guessed at, so no second, smuggled request can reach the app (RFC 9112 sections 6.1-6.3, 11.2):

* Content-Length must be one field of 1*DIGIT: no sign, no spaces, no list ("5, 5"), no overflow.
* Transfer-Encoding must be exactly `chunked` (one coding, one field) and only on HTTP/1.1;
  both Content-Length and Transfer-Encoding together are refused.
* HTTP/1.1 needs exactly one valid Host (section 3.2); an absolute-form target's authority wins.
* Only HTTP/1.0 and HTTP/1.1 are served (llhttp also accepts 0.9 and 2.0 request lines).

Bare CR / bare LF are refused by llhttp itself in strict mode (http/protocol.py `_strict`).
"""

from __future__ import annotations

import re
from typing import Final

from aioprefork.errors import BadHost, BodyTooLarge, RequestRejected, SmugglingAttempt
from aioprefork.wire.memo import remember

__all__ = ["FRAMING_NAMES", "BodyFraming", "check_head", "parse_content_length"]


class BodyFraming:
    """How the request body is delimited, and what the head asks of the connection. Read-only.

    A plain class, not a NamedTuple or a frozen dataclass: one is made per request with a body,
    and the compiled build makes a native object where a NamedTuple costs a Python-level
    __new__ (the cost: bench/README.md, "Where the instructions go").
    """

    __slots__ = ("expect_continue", "keep_alive", "length")

    def __init__(self, length: int, keep_alive: bool, expect_continue: bool = False) -> None:
        self.length = length  # body bytes announced by Content-Length; 0 = none; -1 = chunked
        self.keep_alive = keep_alive  # the client allows another request on this connection
        self.expect_continue = expect_continue  # `Expect: 100-continue` on HTTP/1.1

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BodyFraming) and (
            self.length,
            self.keep_alive,
            self.expect_continue,
        ) == (other.length, other.keep_alive, other.expect_continue)

    def __hash__(self) -> int:
        return hash((self.length, self.keep_alive, self.expect_continue))

    def __repr__(self) -> str:
        return f"BodyFraming({self.length}, {self.keep_alive}, {self.expect_continue})"


# The common answers, shared so the hot path allocates nothing for them.
NO_BODY_KEEP_ALIVE: Final = BodyFraming(0, True)
NO_BODY_CLOSE: Final = BodyFraming(0, False)

_CL_DIGITS_MAX: Final = 18  # 10**18 bytes: beyond any limit, and well inside an int64
_FRAMING: Final = frozenset(
    {b"content-length", b"transfer-encoding", b"host", b"connection", b"expect"}
)
# The lower-cased names check_head looks for, mapped to the very objects in _FRAMING: a name the
# protocol lowers through it is found by identity (its hash cached), not by comparing bytes.
FRAMING_NAMES: Final[dict[bytes, bytes]] = {name: name for name in _FRAMING}
# RFC 3986 authority: IP-literal (IPv6, optional zone) or reg-name/IPv4, then an optional port.
_HOST_RE: Final = re.compile(
    rb"(?:\[[0-9A-Fa-f:.]+(?:%25[A-Za-z0-9._~\-]+)?\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)"
    rb"(?::[0-9]{0,5})?\Z"
)
_GOOD_HOSTS: Final[dict[bytes, None]] = {}  # bounded cache: a worker sees few distinct hosts
_GOOD_HOSTS_MAX: Final = 256


# The last Host found valid: most requests repeat it, and comparing bytes costs less than hashing
# a fresh value for the _GOOD_HOSTS lookup (bench/README.md, "Where the instructions go").
_LAST_HOST: Final[list[bytes]] = [b""]


def _valid_host(host: bytes) -> bool:
    """Host as received (optional whitespace around it allowed): a cache hit skips the strip."""
    if host == _LAST_HOST[0]:
        return True
    if host not in _GOOD_HOSTS:
        if _HOST_RE.match(host.strip(b" \t")) is None:
            return False
        remember(_GOOD_HOSTS, host, None, _GOOD_HOSTS_MAX)
    _LAST_HOST[0] = host
    return True


# Content-Length value as received -> its length: clients repeat a few sizes (a bounded cache,
# as _GOOD_HOSTS), and a miss costs three method calls and an int() in the compiled build.
_LENGTHS: Final[dict[bytes, int]] = {}
_LENGTHS_MAX: Final = 1024


def parse_content_length(digits: bytes) -> int:
    """Content-Length = 1*DIGIT (RFC 9110 section 8.6): ASCII digits only, no sign, no list, at
    most 18 of them (no overflow) -> its value; -1 for anything else."""
    if not digits.isdigit() or not digits.isascii() or len(digits) > _CL_DIGITS_MAX:
        return -1
    return int(digits)


def _content_length(value: bytes) -> int:
    length = parse_content_length(value.strip(b" \t"))
    if length < 0:
        raise SmugglingAttempt("malformed Content-Length")
    return remember(_LENGTHS, value, length, _LENGTHS_MAX)


def _tokens(value: bytes) -> list[bytes]:
    return [t.strip(b" \t") for t in value.lower().split(b",")]


def check_head(
    version: str,
    method: bytes,
    headers: list[tuple[bytes, bytes]],
    authority: bytes | None = None,
    limit_body: int = 0,
) -> BodyFraming:
    """Validate a parsed request head; return its framing or raise RequestRejected.

    `headers` have lower-cased names, in order. `authority` is the host[:port] of an
    absolute-form target, which overrides Host (RFC 9112 section 3.2.2). `limit_body` > 0
    refuses a Content-Length above it with 413 (chunked bodies are counted as they stream).
    """
    if version == "1.1":
        http11 = True
    elif version == "1.0":
        http11 = False
    else:
        raise RequestRejected(f"unsupported HTTP version {version}", reason="version")
    if method == b"CONNECT":
        raise RequestRejected("CONNECT is not supported", status=501, reason="method")

    content_length: bytes | None = None
    transfer_encoding: bytes | None = None
    host: bytes | None = None
    hosts = 0
    connection: list[bytes] | None = None  # Connection tokens (most requests send none)
    expect: bytes | None = None
    for name, value in headers:
        if name not in _FRAMING:
            continue
        if name == b"host":
            hosts += 1
            host = value
        elif name == b"content-length":
            if content_length is not None:
                raise SmugglingAttempt("more than one Content-Length")
            content_length = value
        elif name == b"transfer-encoding":
            if transfer_encoding is not None:
                raise SmugglingAttempt("more than one Transfer-Encoding")
            transfer_encoding = value
        elif name == b"connection":
            if connection is None:
                connection = _tokens(value)
            else:
                connection += _tokens(value)
        else:
            expect = value

    if http11:
        if hosts != 1:
            raise BadHost("HTTP/1.1 needs exactly one Host" if hosts else "missing Host")
        if authority is not None:
            host = authority
        if host and not _valid_host(host):
            raise BadHost("invalid Host")
        keep_alive = connection is None or b"close" not in connection
    else:
        if hosts > 1:
            raise BadHost("more than one Host")
        if hosts and host and not _valid_host(host):
            raise BadHost("invalid Host")
        keep_alive = (
            connection is not None and b"keep-alive" in connection and b"close" not in connection
        )

    expect_continue = False
    if expect is not None:
        if expect.strip(b" \t").lower() != b"100-continue":
            raise RequestRejected("unsupported expectation", status=417, reason="expect")
        expect_continue = http11

    if transfer_encoding is not None:
        if content_length is not None:
            raise SmugglingAttempt("both Content-Length and Transfer-Encoding")
        if not http11:
            raise SmugglingAttempt("Transfer-Encoding on HTTP/1.0")
        codings = _tokens(transfer_encoding)
        if codings[-1] != b"chunked" or b"chunked" in codings[:-1]:
            raise SmugglingAttempt("Transfer-Encoding is not a single final chunked")
        if len(codings) > 1:
            # A valid framing, but a coding we would have to undo (RFC 9112 section 6.1).
            raise RequestRejected("unsupported transfer coding", status=501, reason="framing")
        return BodyFraming(-1, keep_alive, expect_continue)

    if content_length is not None:
        length = _LENGTHS.get(content_length, -1)
        if length < 0:
            length = _content_length(content_length)
        if 0 < limit_body < length:
            raise BodyTooLarge(f"Content-Length {length} above {limit_body}")
        if length:
            return BodyFraming(length, keep_alive, expect_continue)

    if expect_continue:
        return BodyFraming(0, keep_alive, False)  # nothing to continue to
    return NO_BODY_KEEP_ALIVE if keep_alive else NO_BODY_CLOSE
