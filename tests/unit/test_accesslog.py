"""protocol/accesslog.py: exact Apache lines, escaping, injection attempts, format compilation."""

from __future__ import annotations

import calendar
import logging
import os
import time
from collections.abc import Iterator
from typing import Any

import pytest

from aioprefork.protocol.accesslog import AccessLogger, escape

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
    fields: dict[str, Any] = {
        "client": "127.0.0.1",
        "method": "GET",
        "target": b"/apache_pb.gif",
        "http_version": "1.0",
        "status": 200,
        "size": 2326,
        "referer": b"http://www.example.com/start.html",
        "user_agent": b"Mozilla/4.08 [en] (Win98; I ;Nav)",
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
        ("%{X-Forwarded-For}i", "unsupported directive %{X-Forwarded-For}i"),
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
