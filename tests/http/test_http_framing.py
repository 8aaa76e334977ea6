"""Pure tables for wire/framing.py and wire/writer.py: no sockets, no loop."""

from __future__ import annotations

from typing import Any

import pytest

from aioprefork.errors import BadHost, BodyTooLarge, RequestRejected, SmugglingAttempt
from aioprefork.wire.framing import (
    NO_BODY_CLOSE,
    NO_BODY_KEEP_ALIVE,
    BodyFraming,
    check_head,
)
from aioprefork.wire.writer import (
    STATUS_LINE,
    DefaultHeaders,
    ResponseError,
    chunk,
    encode_head,
    encode_trailers,
    error_response,
)

HOST = [(b"host", b"example.com")]


def test_the_last_head_is_reused_only_for_the_same_status_and_headers() -> None:
    """The one-entry memo in front of the head cache never hands out another response's head,
    and never skips the validation an unequal or unhashable header would get."""
    defaults = DefaultHeaders("srv", date_header=False)
    kind = (b"content-type", b"application/json")

    def head(status: int, *pairs: object) -> bytes:
        return encode_head(status, [kind, *pairs], defaults, True)[0]  # type: ignore[list-item]

    def expected(status: int, length: int, extra: bytes = b"") -> bytes:
        return (
            STATUS_LINE[status]
            + b"content-type: application/json\r\n"
            + extra
            + b"content-length: %d\r\n" % length
            + b"server: srv\r\n\r\n"
        )

    name = b"content-length"
    assert head(200, (name, b"52")) == expected(200, 52)
    assert head(200, (name, b"%d" % 52)) == expected(200, 52)  # a new, equal value
    assert head(200, (name, b"53")) == expected(200, 53)
    assert head(201, (name, b"53")) == expected(201, 53)
    assert head(201, (name, b"53"), (b"x-a", b"1")) == expected(201, 53, b"x-a: 1\r\n")
    assert head(201, (bytes(bytearray(name)), b"53")) == expected(201, 53)  # another name object
    assert head(201, [name, b"53"]) == expected(201, 53)  # a list pair: not cached, same bytes
    assert head(201, (name, b"53")) == expected(201, 53)
    with pytest.raises(ResponseError):
        head(201, (name, bytearray(b"53")))  # equal content, not bytes: refused as before
    assert head(201, (name, b"53")) == expected(201, 53)
    other = encode_head(201, [kind, (b"x-length", b"53")], defaults, True, body_length=53)
    assert other == (expected(201, 53, b"x-length: 53\r\n"), 53, False, True)
    with pytest.raises(ResponseError):
        head(201, (name, b"5\r\n3"))


@pytest.mark.parametrize(
    "version, headers, expected",
    [
        ("1.1", HOST, NO_BODY_KEEP_ALIVE),
        ("1.1", [*HOST, (b"connection", b"close")], NO_BODY_CLOSE),
        ("1.1", [*HOST, (b"connection", b"Keep-Alive, Close")], NO_BODY_CLOSE),
        ("1.0", [], NO_BODY_CLOSE),
        ("1.0", [(b"connection", b"keep-alive")], NO_BODY_KEEP_ALIVE),
        ("1.1", [*HOST, (b"content-length", b"5")], BodyFraming(5, True)),
        ("1.1", [*HOST, (b"content-length", b" 5 ")], BodyFraming(5, True)),
        ("1.1", [*HOST, (b"content-length", b"0")], NO_BODY_KEEP_ALIVE),
        ("1.1", [*HOST, (b"transfer-encoding", b"Chunked")], BodyFraming(-1, True)),
        (
            "1.1",
            [*HOST, (b"content-length", b"3"), (b"expect", b"100-Continue")],
            BodyFraming(3, True, True),
        ),
        ("1.1", [*HOST, (b"expect", b"100-continue")], NO_BODY_KEEP_ALIVE),
        ("1.1", [(b"host", b"[::1]:8080")], NO_BODY_KEEP_ALIVE),
        ("1.1", [(b"host", b"")], NO_BODY_KEEP_ALIVE),
    ],
)
def test_check_head_accepts(
    version: str, headers: list[tuple[bytes, bytes]], expected: BodyFraming
) -> None:
    assert check_head(version, b"GET", headers) == expected


@pytest.mark.parametrize(
    "version, headers, error, status",
    [
        ("2.0", HOST, RequestRejected, 400),
        ("0.9", HOST, RequestRejected, 400),
        ("1.1", [], BadHost, 400),
        ("1.1", [*HOST, *HOST], BadHost, 400),
        ("1.1", [(b"host", b"a b")], BadHost, 400),
        ("1.1", [(b"host", b"a@b")], BadHost, 400),
        ("1.0", [*HOST, *HOST], BadHost, 400),
        (
            "1.1",
            [*HOST, (b"content-length", b"1"), (b"transfer-encoding", b"chunked")],
            SmugglingAttempt,
            400,
        ),
        (
            "1.1",
            [*HOST, (b"content-length", b"1"), (b"content-length", b"1")],
            SmugglingAttempt,
            400,
        ),
        ("1.1", [*HOST, (b"content-length", b"1, 1")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"content-length", b"-1")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"content-length", b"1_0")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"content-length", "\uff11".encode())], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"content-length", b"9" * 19)], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"transfer-encoding", b"gzip")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"transfer-encoding", b"chunked, gzip")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"transfer-encoding", b"chunked, chunked")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"transfer-encoding", b"gzip, chunked")], RequestRejected, 501),
        ("1.1", [*HOST, (b"transfer-encoding", b"")], SmugglingAttempt, 400),
        ("1.0", [(b"transfer-encoding", b"chunked")], SmugglingAttempt, 400),
        ("1.1", [*HOST, (b"expect", b"200-ok")], RequestRejected, 417),
    ],
)
def test_check_head_refuses(
    version: str, headers: list[tuple[bytes, bytes]], error: type[Exception], status: int
) -> None:
    with pytest.raises(error) as info:
        check_head(version, b"POST", headers)
    assert isinstance(info.value, RequestRejected) and info.value.status == status


def test_the_last_valid_host_vouches_for_itself_only() -> None:
    """Host values found valid are remembered (the last one is compared before any lookup): a
    bad value after a good one, or after a bad one, is refused each time."""
    for host in (b"good.example", b"bad host", b"good.example", b"bad host", b"x\x01"):
        if b" " in host or b"\x01" in host:
            with pytest.raises(BadHost):
                check_head("1.1", b"GET", [(b"host", host)])
        else:
            assert check_head("1.1", b"GET", [(b"host", host)]) == NO_BODY_KEEP_ALIVE


def test_check_head_body_limit_and_authority() -> None:
    with pytest.raises(BodyTooLarge):
        check_head("1.1", b"POST", [*HOST, (b"content-length", b"11")], None, 10)
    assert check_head("1.1", b"POST", [*HOST, (b"content-length", b"10")], None, 10).length == 10
    assert (
        check_head("1.1", b"GET", [(b"host", b"not valid")], b"example.com") == NO_BODY_KEEP_ALIVE
    )
    with pytest.raises(BadHost):
        check_head("1.1", b"GET", [(b"host", b"ok")], b"bad host")
    with pytest.raises(RequestRejected) as info:
        check_head("1.1", b"CONNECT", HOST)
    assert info.value.status == 501


DEFAULTS = DefaultHeaders("srv", date_header=False)


@pytest.mark.parametrize(
    "status, headers, kwargs, head, length, chunked, keep_alive",
    [
        (200, [(b"content-length", b"2")], {}, b"content-length: 2\r\n", 2, False, True),
        (200, [], {"body_length": 5}, b"content-length: 5\r\n", 5, False, True),
        (200, [], {}, b"transfer-encoding: chunked\r\n", -1, True, True),
        (
            200,
            [(b"transfer-encoding", b"chunked")],
            {},
            b"transfer-encoding: chunked\r\n",
            -1,
            True,
            True,
        ),
        (200, [], {"http11": False}, b"connection: close\r\n", -1, False, False),
        (
            200,
            [(b"content-length", b"1")],
            {"http11": False},
            b"content-length: 1\r\nconnection: keep-alive\r\n",
            1,
            False,
            True,
        ),
        (
            200,
            [(b"Connection", b"close"), (b"content-length", b"1")],
            {},
            b"content-length: 1\r\nconnection: close\r\n",
            1,
            False,
            False,
        ),
        (204, [(b"content-length", b"9")], {}, b"", 0, False, True),
        (304, [(b"content-length", b"9")], {}, b"content-length: 9\r\n", 9, False, True),
        (304, [], {"body_length": 0}, b"", -1, False, True),
        (200, [], {"head_request": True, "body_length": 0}, b"", -1, False, True),
        (103, [(b"link", b"</a>")], {}, b"link: </a>\r\nconnection: close\r\n", -1, False, False),
    ],
)
def test_encode_head(
    status: int,
    headers: list[tuple[bytes, bytes]],
    kwargs: dict[str, object],
    head: bytes,
    length: int,
    chunked: bool,
    keep_alive: bool,
) -> None:
    kwargs = {"keep_alive": True, **kwargs}
    expected = (STATUS_LINE[status] + head + b"server: srv\r\n\r\n", length, chunked, keep_alive)
    for _ in range(2):  # the second time from the head cache
        assert encode_head(status, headers, DEFAULTS, **kwargs) == expected  # type: ignore[arg-type]


def test_encode_head_cache_keeps_per_response_parts() -> None:
    """A cached app head still gets this response's Date, framing and connection lines."""
    defaults = DefaultHeaders("", date_header=True)
    defaults.refresh(0)
    headers = [(b"content-type", b"text/plain")]
    first, *_ = encode_head(200, headers, defaults, True, body_length=3)
    defaults.refresh(86400)
    again = encode_head(200, list(headers), defaults, False, http11=True, body_length=7)
    assert first.endswith(b"content-length: 3\r\ndate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n")
    assert again[0] == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 7\r\n"
        b"connection: close\r\ndate: Fri, 02 Jan 1970 00:00:00 GMT\r\n\r\n"
    )
    # Unhashable pairs and values are encoded the same, just not cached.
    pairs: Any = [[b"content-type", bytearray(b"text/plain")]]
    unhashable = encode_head(200, pairs, defaults, False, body_length=7)
    assert unhashable == again
    # A refused head is never cached, and an equal-hashing non-int status is still refused.
    for _ in range(2):
        with pytest.raises(ResponseError):
            encode_head(200, [(b"x", b"a\r\nb")], defaults, True)
    with pytest.raises(ResponseError):
        encode_head(200.0, headers, defaults, True)
    with pytest.raises(ResponseError):
        encode_head(200, 5, defaults, True)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "status, headers",
    [
        (99, []),
        (1000, []),
        ("200", []),
        (200, [(b"x", b"a\r\nb: c")]),
        (200, [(b"x", b"a\nb")]),
        (200, [(b"x", b"a\rb")]),
        (200, [(b"x", b"a\x00b")]),
        (200, [(b"x y", b"v")]),
        (200, [(b"x:", b"v")]),
        (200, [(b"", b"v")]),
        (200, [("x", b"v")]),
        (200, [(b"x", "v")]),
        (200, [(b"content-length", b"abc")]),
        (200, [(b"content-length", b"1"), (b"content-length", b"1")]),
    ],
)
def test_encode_head_refuses(status: object, headers: list[tuple[object, object]]) -> None:
    with pytest.raises(ResponseError):
        encode_head(status, headers, DEFAULTS, True)  # type: ignore[arg-type]


def test_app_server_and_date_override_defaults() -> None:
    defaults = DefaultHeaders("srv", date_header=True)
    head, *_ = encode_head(200, [(b"Server", b"mine"), (b"content-length", b"0")], defaults, True)
    assert head.count(b"erver: ") == 1 and b"date: " in head


def test_default_headers_date_refresh_once_a_second() -> None:
    defaults = DefaultHeaders("", date_header=True)
    defaults.refresh(0)
    assert defaults.block == b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n"
    first = defaults.block
    defaults.refresh(0.9)
    assert defaults.block is first
    defaults.refresh(86400)
    assert defaults.block == b"date: Fri, 02 Jan 1970 00:00:00 GMT\r\n"
    assert DefaultHeaders("", date_header=False).block == b""
    with pytest.raises(ValueError):
        DefaultHeaders("a\r\nb")


def test_chunks_trailers_and_error_responses() -> None:
    assert chunk(b"hello") == b"5\r\nhello\r\n"
    assert chunk(b"x" * 255) == b"ff\r\n" + b"x" * 255 + b"\r\n"
    assert encode_trailers([(b"x-sum", b"1")]) == b"0\r\nx-sum: 1\r\n\r\n"
    with pytest.raises(ResponseError):
        encode_trailers([(b"x-sum", b"1\r\nx: 2")])
    raw = error_response(431, DEFAULTS)
    assert raw == (
        b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        b"content-type: text/plain; charset=utf-8\r\ncontent-length: 32\r\n"
        b"connection: close\r\nserver: srv\r\n\r\nRequest Header Fields Too Large\n"
    )
    assert STATUS_LINE[599] == b"HTTP/1.1 599 \r\n"


def test_encode_head_whole_head_cache_follows_the_date_and_the_connection() -> None:
    """The common head (app Content-Length, keep-alive, HTTP/1.1) is cached whole; a new Date
    block, a closing or HTTP/1.0 connection, or the app's own Date still change it."""
    defaults = DefaultHeaders("srv", date_header=True)
    defaults.refresh(0)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"3")]
    plain = b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\nserver: srv\r\n"
    day0, day1 = (
        b"date: Thu, 01 Jan 1970 00:00:00 GMT\r\n",
        b"date: Fri, 02 Jan 1970 00:00:00 GMT\r\n",
    )
    for _ in range(2):
        assert encode_head(200, headers, defaults, True) == (plain + day0 + b"\r\n", 3, False, True)
    defaults.refresh(86400)
    assert encode_head(200, headers, defaults, True)[0] == plain + day1 + b"\r\n"
    closing = encode_head(200, headers, defaults, False)
    assert closing == (
        plain.replace(b"server", b"connection: close\r\nserver") + day1 + b"\r\n",
        3,
        False,
        False,
    )
    old = encode_head(200, headers, defaults, True, http11=False)
    assert old[0] == plain.replace(b"server", b"connection: keep-alive\r\nserver") + day1 + b"\r\n"
    own = encode_head(200, [*headers, (b"date", b"x")], defaults, True)[0]
    assert own.endswith(b"date: x\r\ncontent-length: 3\r\nserver: srv\r\n\r\n")


def test_content_length_values_are_cached_bounded() -> None:
    from aioprefork.wire import framing

    for n in range(3000):
        headers = [*HOST, (b"content-length", b"%d" % (n + 1))]
        assert check_head("1.1", b"POST", headers).length == n + 1
        assert len(framing._LENGTHS) <= 1024
    for bad in (b"+5", b"5 5", b"0x5", b"\xd9\xa5"):  # the last: an Arabic-Indic digit
        with pytest.raises(SmugglingAttempt):
            check_head("1.1", b"POST", [*HOST, (b"content-length", bad)])
        assert bad not in framing._LENGTHS


def test_framing_names_are_lowered_to_the_objects_check_head_looks_for() -> None:
    """The protocol lowers Host, Content-Length & co. to FRAMING_NAMES' own objects, so that
    check_head's set lookup matches them by identity; any other name is just lower-cased."""
    from aioprefork.http import protocol as http
    from aioprefork.wire import framing

    for raw in (b"Host", b"CONTENT-LENGTH", b"Transfer-Encoding", b"connection", b"Expect"):
        lowered = http._lowered(raw)
        assert lowered == raw.lower() and lowered is framing.FRAMING_NAMES[raw.lower()]
    assert http._lowered(b"X-Other") == b"x-other"
