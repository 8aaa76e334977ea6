"""Hostile-input corpus: every class is answered with its status, `Connection: close`, a close,
a stats.reject() count, and never a second (smuggled) request passed to the app."""

from __future__ import annotations

from typing import Any

import pytest
from support.http_wire import TEST_LIMITS, ServerThread, Wire, exchange, status_of, wait_for

SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: t\r\n\r\n"
H = b"Host: t\r\n"

# (id, raw request (a smuggled request is appended), expected status, stats reason or None)
CORPUS: list[tuple[str, bytes, int, str | None]] = [
    # Content-Length / Transfer-Encoding ambiguity (RFC 9112 section 6.3)
    (
        "cl-and-te",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        None,
    ),
    (
        "te-and-cl",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n0\r\n\r\n",
        400,
        None,
    ),
    (
        "cl-duplicate-equal",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        400,
        None,
    ),
    (
        "cl-conflict",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3\r\nContent-Length: 5\r\n\r\nabc",
        400,
        None,
    ),
    ("cl-list", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 3, 3\r\n\r\nabc", 400, None),
    ("cl-plus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +3\r\n\r\nabc", 400, None),
    ("cl-minus", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -3\r\n\r\nabc", 400, None),
    ("cl-inner-space", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 1 2\r\n\r\nabc", 400, None),
    ("cl-hex", b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x3\r\n\r\nabc", 400, None),
    (
        "cl-overflow",
        b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nabc",
        400,
        None,
    ),
    ("te-gzip", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\nabc", 400, None),
    (
        "te-chunked-gzip",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
        None,
    ),
    ("te-identity", b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity\r\n\r\n", 400, None),
    (
        "te-xchunked",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
        None,
    ),
    (
        "te-chunked-twice",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
        None,
    ),
    (
        "te-http10",
        b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        400,
        "framing",
    ),
    # chunk framing
    (
        "chunk-size-junk",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3x\r\nabc\r\n0\r\n\r\n",
        400,
        "framing",
    ),
    (
        "chunk-size-negative",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-3\r\nabc\r\n0\r\n\r\n",
        400,
        "framing",
    ),
    (
        "chunk-size-0x",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0x3\r\nabc\r\n0\r\n\r\n",
        400,
        "framing",
    ),
    (
        "chunk-size-space",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n",
        400,
        "framing",
    ),
    (
        "chunk-size-overflow",
        b"POST / HTTP/1.1\r\n"
        + H
        + b"Transfer-Encoding: chunked\r\n\r\nffffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        400,
        "framing",
    ),
    (
        "chunk-data-no-crlf",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\r\nabcX0\r\n\r\n",
        400,
        None,
    ),
    (
        "chunk-bare-lf",
        b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n3\nabc\n0\n\n",
        400,
        "line_ending",
    ),
    # header syntax
    ("obs-fold-sp", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n b\r\n\r\n", 400, None),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\n" + H + b"X: a\r\n\tb\r\n\r\n", 400, None),
    ("space-before-colon", b"GET / HTTP/1.1\r\n" + H + b"X : a\r\n\r\n", 400, None),
    ("nul-in-value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x00b\r\n\r\n", 400, None),
    ("del-in-value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x7fb\r\n\r\n", 400, None),
    ("ctl-in-value", b"GET / HTTP/1.1\r\n" + H + b"X: a\x01b\r\n\r\n", 400, None),
    ("nul-in-name", b"GET / HTTP/1.1\r\n" + H + b"X\x00Y: a\r\n\r\n", 400, None),
    ("empty-name", b"GET / HTTP/1.1\r\n" + H + b": a\r\n\r\n", 400, None),
    ("bare-lf-everywhere", b"GET / HTTP/1.1\n" + b"Host: t\n\n", 400, "line_ending"),
    ("bare-lf-in-headers", b"GET / HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400, "line_ending"),
    ("bare-cr-in-headers", b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400, "line_ending"),
    ("bare-cr-request-line", b"GET / HTTP/1.1\rHost: t\r\n\r\n", 400, "line_ending"),
    # request line
    ("bad-method-token", b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400, "method"),
    ("version-2.0", b"GET / HTTP/2.0\r\n" + H + b"\r\n", 400, "version"),
    ("version-1.2", b"GET / HTTP/1.2\r\n" + H + b"\r\n", 400, "version"),
    ("version-garbage", b"GET / HTTX/1.1\r\n" + H + b"\r\n", 400, None),
    ("version-0.9", b"GET /\r\n\r\n", 400, "version"),
    ("ctl-in-target", b"GET /a\x01b HTTP/1.1\r\n" + H + b"\r\n", 400, "target"),
    ("space-in-target", b"GET /a b HTTP/1.1\r\n" + H + b"\r\n", 400, None),
    ("connect", b"CONNECT t:443 HTTP/1.1\r\n" + H + b"\r\n", 501, "method"),
    # Host (RFC 9112 section 3.2)
    ("missing-host", b"GET / HTTP/1.1\r\n\r\n", 400, "host"),
    ("duplicate-host", b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host"),
    ("invalid-host", b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "host"),
    ("invalid-host-slash", b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "host"),
    ("invalid-host-port", b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400, "host"),
    ("absolute-form-missing-host", b"GET http://a/ HTTP/1.1\r\n\r\n", 400, "host"),
    # request target forms (RFC 9112 section 3.2): no fragment, no userinfo
    ("fragment-origin-form", b"GET /a#frag HTTP/1.1\r\n" + H + b"\r\n", 400, "target"),
    ("fragment-in-query", b"GET /a?b#c HTTP/1.1\r\n" + H + b"\r\n", 400, "target"),
    ("fragment-absolute-form", b"GET http://t/a# HTTP/1.1\r\n" + H + b"\r\n", 400, "target"),
    ("userinfo", b"GET http://u:p@t/a HTTP/1.1\r\n" + H + b"\r\n", 400, "target"),
    ("userinfo-empty", b"GET http://@t/a HTTP/1.1\r\n" + H + b"\r\n", 400, "target"),
    ("expect-unknown", b"GET / HTTP/1.1\r\n" + H + b"Expect: something\r\n\r\n", 417, "expect"),
]


async def recorder_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    recorder_app.paths.append(scope["path"])  # type: ignore[attr-defined]
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def corpus_server() -> Any:
    recorder_app.paths = []  # type: ignore[attr-defined]
    server = ServerThread(recorder_app, TEST_LIMITS).start()
    yield server
    server.stop()


@pytest.mark.parametrize("raw, status, reason", [c[1:] for c in CORPUS], ids=[c[0] for c in CORPUS])
def test_hostile_request_refused(
    corpus_server: Any, raw: bytes, status: int, reason: str | None
) -> None:
    paths: list[str] = recorder_app.paths  # type: ignore[attr-defined]
    before = dict(corpus_server.stats.rejected)
    count = len(paths)
    response = exchange(corpus_server.port, raw + SMUGGLED)
    assert status_of(response) == status, response
    head, _, body = response.partition(b"\r\n\r\n")
    assert b"connection: close" in head
    assert body and len(body) < 64  # a small body
    assert response.count(b"HTTP/1.1 ") == 1  # one answer, then the close
    assert "/smuggled" not in paths[count:]
    assert paths[count:] == []  # the refused request never reached the app either
    wait_for(lambda: sum(corpus_server.stats.rejected.values()) == sum(before.values()) + 1)
    if reason is not None:
        assert corpus_server.stats.rejected.get(reason, 0) == before.get(reason, 0) + 1


def test_valid_requests_after_a_refused_pipelined_one_are_not_run(corpus_server: Any) -> None:
    paths: list[str] = recorder_app.paths  # type: ignore[attr-defined]
    count = len(paths)
    with Wire(corpus_server.port) as wire:
        wire.send(
            b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"0\r\n\r\n" + SMUGGLED
        )
        first = wire.read_response()
        second = wire.read_response()
        assert wire.closed()
    assert first.status == 200 and second.status == 400
    assert second.header(b"connection") == b"close"
    assert paths[count:] == ["/first"]


def test_obs_text_and_tab_in_values_are_allowed(corpus_server: Any) -> None:
    raw = exchange(
        corpus_server.port,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\tb\xff\r\nConnection: close\r\n\r\n",
    )
    assert status_of(raw) == 200


def test_leading_empty_line_is_ignored(corpus_server: Any) -> None:
    raw = exchange(
        corpus_server.port, b"\r\nGET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    assert status_of(raw) == 200


def test_head_split_byte_by_byte_with_crlf_boundaries(corpus_server: Any) -> None:
    """A CRLF split across reads is not a bare CR or LF."""
    request = b"GET /split HTTP/1.1\r\nHost: t\r\nX-A: 1\r\nConnection: close\r\n\r\n"
    with Wire(corpus_server.port) as wire:
        for i in range(len(request)):
            wire.send(request[i : i + 1])
        assert wire.read_response().status == 200
