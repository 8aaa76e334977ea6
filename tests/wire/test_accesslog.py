"""wire/accesslog.py: exact Apache lines, escaping, injection attempts, format compilation."""

from __future__ import annotations

import calendar
import json
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aioprefork.wire.accesslog import AccessLogger, check_format, escape

NOW = calendar.timegm((2000, 10, 10, 13, 55, 36)) + 0.25  # Apache's documentation example


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture
def lines() -> Iterator[list[str]]:
    logger = logging.getLogger("aioprefork.access")
    handler = _Lines()
    saved = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler.lines
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


@pytest.fixture
def tz(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def request(**overrides: Any) -> dict[str, Any]:
    """log()'s arguments for Apache's documentation example; `referer` and `user_agent` become
    request header fields (absent when empty)."""
    referer = overrides.pop("referer", b"http://www.example.com/start.html")
    user_agent = overrides.pop("user_agent", b"Mozilla/4.08 [en] (Win98; I ;Nav)")
    headers = [(b"host", b"example.com")]
    headers += [(b"referer", referer)] if referer else []
    headers += [(b"user-agent", user_agent)] if user_agent else []
    fields: dict[str, Any] = {
        "client": "127.0.0.1",
        "peer": "127.0.0.1",
        "method": "GET",
        "target": b"/apache_pb.gif",
        "http_version": "1.0",
        "status": 200,
        "size": 2326,
        "request_headers": headers,
        "response_headers": [(b"Content-Type", b"image/gif")],
        "duration": 0.0123456,
        "now": NOW,
    }
    fields.update(overrides)
    return fields


def test_combined_exact(lines: list[str], tz: None) -> None:
    AccessLogger("combined").log(**request())
    assert lines == [
        '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"'
    ]


def test_common_exact(lines: list[str], tz: None) -> None:
    AccessLogger("common").log(**request(http_version="1.1", size=0))
    assert lines == [
        '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /apache_pb.gif HTTP/1.1" 200 -'
    ]


def test_default_is_combined(lines: list[str], tz: None) -> None:
    AccessLogger().log(**request(referer=b"", user_agent=b""))
    assert lines[0].endswith('200 2326 "-" "-"')


def test_every_directive(lines: list[str], tz: None) -> None:
    fmt = "%h|%a|%l|%u|%t|%r|%>s|%<s|%s|%b|%B|%D|%T|%{Referer}i|%{user-agent}i|%m|%U|%q|%H|%P|%%"
    AccessLogger(fmt).log(**request(target=b"/a/b?x=1&y=2", status=404, size=0, duration=2.5))
    assert lines == [
        "127.0.0.1|127.0.0.1|-|-|[10/Oct/2000:13:55:36 +0000]|GET /a/b?x=1&y=2 HTTP/1.0|"
        "404|404|404|-|0|2500000|2|http://www.example.com/start.html|"
        f"Mozilla/4.08 [en] (Win98; I ;Nav)|GET|/a/b|?x=1&y=2|HTTP/1.0|{os.getpid()}|%"
    ]


def test_literal_text_and_braces(lines: list[str], tz: None) -> None:
    AccessLogger("{x} %m {0} %s%% done").log(**request())
    assert lines == ["{x} GET {0} 200% done"]


def test_query_absent(lines: list[str]) -> None:
    AccessLogger("[%U][%q]").log(**request(target=b"/p"))
    AccessLogger("[%U][%q]").log(**request(target=b"/p?"))
    assert lines == ["[/p][]", "[/p][]"]


def test_http_version_spelled_out(lines: list[str]) -> None:
    AccessLogger("%H").log(**request(http_version="HTTP/1.1"))
    assert lines == ["HTTP/1.1"]


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        (b"plain", "plain"),
        (b"", "-"),
        (b'say "hi"', 'say \\"hi\\"'),
        (b"back\\slash", "back\\\\slash"),
        (b"\b\t\n\v\r", "\\b\\t\\n\\v\\r"),
        (b"\x00\x1b[31m\x7f", "\\x00\\x1b[31m\\x7f"),
        ("é".encode(), "\\xc3\\xa9"),
        (b"\xff", "\\xff"),
    ],
)
def test_escape_like_apache(raw: bytes, escaped: str) -> None:
    assert escape(raw) == escaped


def test_injection_attempts_stay_on_one_line(lines: list[str], tz: None) -> None:
    fake = b'" 200 1 "-" "-"\n10.0.0.1 - - [01/Jan/2000:00:00:00 +0000] "GET /admin HTTP/1.1'
    logger = AccessLogger("combined")
    logger.log(
        **request(
            client='1.2.3.4" "x\n',
            method="GE\rT",
            target=b"/\r\n" + fake,
            http_version="1.1\n",
            referer=fake,
            user_agent=b"\x1b]0;pwned\x07" + fake,
        )
    )
    (line,) = lines
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and "\x07" not in line
    # Exactly the 6 quotes the format writes are unescaped: fields cannot be split or forged.
    unescaped = line.replace('\\"', "").replace("\\\\", "")
    assert unescaped.count('"') == 6
    assert line.startswith('1.2.3.4\\" \\"x\\n - - [10/Oct/2000:13:55:36 +0000] "GE\\rT /\\r\\n\\"')


def test_time_cached_per_second(lines: list[str], tz: None) -> None:
    logger = AccessLogger("%t")
    for offset in (0.0, 0.5, 0.74, 1.0, 61.0):
        logger.log(**request(now=NOW + offset))
    assert lines == [
        "[10/Oct/2000:13:55:36 +0000]",
        "[10/Oct/2000:13:55:36 +0000]",
        "[10/Oct/2000:13:55:36 +0000]",
        "[10/Oct/2000:13:55:37 +0000]",
        "[10/Oct/2000:13:56:37 +0000]",
    ]


def test_time_local_zone_and_english_month(
    lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TZ", "XYZ-5:30")  # POSIX: 5h30 east of UTC
    time.tzset()
    try:
        AccessLogger("%t").log(**request(now=calendar.timegm((2024, 1, 31, 20, 0, 5))))
        AccessLogger("%t").log(**request(now=calendar.timegm((2024, 5, 1, 0, 0, 0))))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert lines == ["[01/Feb/2024:01:30:05 +0530]", "[01/May/2024:05:30:00 +0530]"]


def test_enabled_follows_logger_level(lines: list[str]) -> None:
    access = AccessLogger()
    logger = logging.getLogger("aioprefork.access")
    assert access.enabled
    logger.setLevel(logging.WARNING)
    assert not access.enabled
    access.log(**request())  # dropped, and cheap
    assert lines == []
    logger.setLevel(logging.INFO)
    logger.disabled = True
    try:
        assert not access.enabled
    finally:
        logger.disabled = False
    assert access.enabled


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("%h %Z", "unknown directive %Z"),
        ("%{X Forwarded}i", "unsupported directive %{X Forwarded}i"),
        ("%{c}h", "unsupported directive %{c}h"),
        ("%{}o", "unsupported directive %{}o"),
        ("%{%Y}t", "unsupported directive %{%Y}t"),
        ("%h %", "incomplete directive"),
        ("%{Referer}", "incomplete directive"),
        ("%>", "incomplete directive"),
    ],
)
def test_bad_format_raises_clear_error(fmt: str, message: str) -> None:
    with pytest.raises(ValueError, match="access log format") as info:
        AccessLogger(fmt)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


class _Untouchable:
    """Response headers that fail the test if a format reads them."""

    def __iter__(self) -> Iterator[tuple[bytes, bytes]]:
        raise AssertionError("the response headers were read")


@pytest.mark.parametrize(
    ("fmt", "overrides", "expected"),
    [
        # any request header, by name in any case; the first of repeated fields; "-" if absent
        (
            "%{X-Request-ID}i %{traceparent}i %{x-missing}i",
            {
                "request_headers": [
                    (b"x-request-id", b"r-1"),
                    (b"traceparent", b"00-4bf9-00f0-01"),
                    (b"x-request-id", b"r-2"),
                ]
            },
            "r-1 00-4bf9-00f0-01 -",
        ),
        # response headers as the app sent them (any case), escaped like request fields
        (
            "%{content-type}o|%{X-Request-Id}o|%{Location}o",
            {"response_headers": [(b"Content-Type", b"text/html"), (b"x-request-id", b'a"b')]},
            'text/html|a\\"b|-',
        ),
        # %a is the client (after X-Forwarded-For), %{c}a the TCP peer (the proxy)
        (
            "%a %h %{c}a",
            {"client": "203.0.113.7", "peer": "10.0.0.2"},
            "203.0.113.7 203.0.113.7 10.0.0.2",
        ),
        # a format without %{Name}o never reads the response headers
        ("combined-check", {"response_headers": _Untouchable()}, None),
    ],
)
def test_header_directives(
    lines: list[str], tz: None, fmt: str, overrides: dict[str, Any], expected: str | None
) -> None:
    AccessLogger("combined" if fmt == "combined-check" else fmt).log(**request(**overrides))
    if expected is not None:
        assert lines == [expected]
    else:
        assert lines[0].endswith('"Mozilla/4.08 [en] (Win98; I ;Nav)"')


def test_json_lines_exact(lines: list[str]) -> None:
    AccessLogger("json").log(
        **request(
            client="203.0.113.7",
            peer="10.0.0.2",
            target=b"/a/b?x=1&y=2",
            http_version="1.1",
            request_headers=[(b"user-agent", b"curl/8.5"), (b"x-request-id", b"r-42")],
        )
    )
    (line,) = lines
    assert json.loads(line) == {
        "time": "2000-10-10T13:55:36.250Z",
        "event": "http",
        "client": "203.0.113.7",
        "peer": "10.0.0.2",
        "method": "GET",
        "path": "/a/b",
        "query": "x=1&y=2",
        "protocol": "HTTP/1.1",
        "status": 200,
        "bytes": 2326,
        "duration_us": 12345,
        "request_id": "r-42",
        "user_agent": "curl/8.5",
        "referer": None,
    }


def test_json_request_id_from_the_response_when_the_client_sent_none(lines: list[str]) -> None:
    AccessLogger("json").log(
        **request(
            target=b"/",
            request_headers=[],
            response_headers=[(b"X-Request-ID", b"made-by-the-app")],
        )
    )
    record = json.loads(lines[0])
    assert (record["request_id"], record["query"], record["user_agent"]) == (
        "made-by-the-app",
        None,
        None,
    )


def test_json_injection_stays_one_ascii_line(lines: list[str]) -> None:
    fake = b'","status":200}\n{"client":"10.0.0.1'
    AccessLogger("json").log(
        **request(
            target=b"/x?" + fake,
            request_headers=[(b"user-agent", b"\x1b]0;pwned\x07\xff" + fake)],
        )
    )
    (line,) = lines
    assert line.isascii() and line.isprintable()
    record = json.loads(line)
    assert record["user_agent"] == "\x1b]0;pwned\x07\xff" + fake.decode()
    assert record["status"] == 200


def test_websocket_lines(lines: list[str], tz: None) -> None:
    common: dict[str, Any] = {
        "client": "127.0.0.1",
        "peer": "127.0.0.1",
        "target": b"/ws",
        "http_version": "1.1",
        "request_headers": [],
        "response_headers": [],
        "now": NOW,
    }
    text, js = AccessLogger("common"), AccessLogger("json")
    for logger in (text, js):
        logger.log(
            method="GET",
            status=101,
            size=129,
            duration=0.001,
            event="websocket.handshake",
            **common,
        )
        logger.log_websocket_close(size=4096, duration=12.3456, close_code=1000, **common)
    assert lines[:2] == [
        '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /ws HTTP/1.1" 101 129',
        '127.0.0.1 - - [10/Oct/2000:13:55:36 +0000] "GET /ws HTTP/1.1" 101 4096 '
        "ws_close=1000 ws_duration=12.346s",
    ]
    opened, closed = (json.loads(line) for line in lines[2:])
    assert (opened["event"], opened["status"], "close_code" in opened) == (
        "websocket.handshake",
        101,
        False,
    )
    assert (closed["event"], closed["close_code"], closed["duration_us"], closed["bytes"]) == (
        "websocket.close",
        1000,
        12345600,
        4096,
    )


def test_json_is_a_format_name() -> None:
    check_format("json")
    assert AccessLogger("json").format == "json"
