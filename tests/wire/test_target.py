"""split_target (wire/target.py): request target -> path, raw_path, query_string, authority."""

from __future__ import annotations

import pytest

from aioprefork.errors import RequestRejected
from aioprefork.wire.target import split_target

pytestmark = pytest.mark.pure


@pytest.mark.parametrize(
    ("url", "method", "root_path", "expected"),
    [
        (b"/", b"GET", "", ("/", b"/", b"", None)),
        (b"/a/b", b"GET", "", ("/a/b", b"/a/b", b"", None)),
        (b"/a?x=1&y", b"GET", "", ("/a", b"/a", b"x=1&y", None)),
        (b"/a?", b"GET", "", ("/a", b"/a", b"", None)),
        (b"/a?b?c", b"GET", "", ("/a", b"/a", b"b?c", None)),
        (b"/a%20b?q=%20", b"GET", "", ("/a b", b"/a%20b", b"q=%20", None)),
        (b"/%2F", b"GET", "", ("//", b"/%2F", b"", None)),
        (b"/caf%C3%A9", b"GET", "", ("/caf\u00e9", b"/caf%C3%A9", b"", None)),
        (b"/bad%FF", b"GET", "", ("/bad\ufffd", b"/bad%FF", b"", None)),
        (b"/caf\xc3\xa9?x", b"GET", "", ("/caf\u00e9", b"/caf\xc3\xa9", b"x", None)),
        (b"/a", b"GET", "/mount", ("/mount/a", b"/mount/a", b"", None)),
        (b"/a%20?q", b"GET", "/m", ("/m/a ", b"/m/a%20", b"q", None)),
        (b"*", b"OPTIONS", "", ("*", b"*", b"", None)),
        (b"http://example.com/p?q=1", b"GET", "", ("/p", b"/p", b"q=1", b"example.com")),
        (b"http://example.com", b"GET", "", ("/", b"/", b"", b"example.com")),
        (b"http://example.com:8080/", b"POST", "", ("/", b"/", b"", b"example.com:8080")),
        (b"http://[::1]:81/x", b"GET", "", ("/x", b"/x", b"", b"[::1]:81")),
        (b"https://h/%41", b"GET", "/r", ("/r/A", b"/r/%41", b"", b"h")),
    ],
)
def test_split_target_accepts(
    url: bytes,
    method: bytes,
    root_path: str,
    expected: tuple[str, bytes, bytes, bytes | None],
) -> None:
    assert split_target(url, method, root_path) == expected


@pytest.mark.parametrize(
    ("url", "method", "status", "reason"),
    [
        (b"/a#frag", b"GET", 400, "target"),
        (b"/caf\xc3\xa9#f", b"GET", 400, "target"),
        (b"*", b"GET", 400, "target"),
        (b"example.com:443", b"CONNECT", 501, "method"),
        (b"http://user@example.com/", b"GET", 400, "target"),
        (b"http://example.com/#x", b"GET", 400, "target"),
        (b"http:///nohost", b"GET", 400, "target"),
        (b"nonsense", b"GET", 400, "target"),
    ],
)
def test_split_target_refuses(url: bytes, method: bytes, status: int, reason: str) -> None:
    with pytest.raises(RequestRejected) as caught:
        split_target(url, method, "")
    assert (caught.value.status, caught.value.reason) == (status, reason)


def test_an_at_sign_after_the_authority_is_part_of_the_path() -> None:
    assert split_target(b"http://h/a@b", b"GET", "") == ("/a@b", b"/a@b", b"", b"h")
