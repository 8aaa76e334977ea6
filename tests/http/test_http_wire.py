"""Byte-level behaviour of HttpProtocol over real loopback sockets (RFC 9110/9112, ASGI 3)."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from support.http_wire import (
    Wire,
    echo,
    exchange,
    scope_recorder,
    simple,
    status_of,
    strip_date,
    wait_for,
)

from examples.hello import app as hello

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def test_hello_byte_exact(serve: Any) -> None:
    server = serve(hello)
    raw = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert strip_date(raw) == (
        b"HTTP/1.1 200 OK\r\n"
        b"content-type: text/plain; charset=utf-8\r\n"
        b"content-length: 13\r\n"
        b"connection: close\r\n"
        b"server: aioprefork\r\n"
        b"date: X\r\n"
        b"\r\n"
        b"Hello, world!"
    )


def test_no_server_header_when_empty_and_no_date(serve: Any) -> None:
    server = serve(hello, server_header="", date_header=False)
    raw = exchange(server.port, b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert b"server:" not in raw and b"date:" not in raw


def test_app_server_and_date_headers_win(serve: Any) -> None:
    server = serve(simple(headers=[(b"Server", b"mine"), (b"Date", b"then")]))
    with Wire(server.port) as wire:
        wire.send(GET)
        resp = wire.read_response()
    assert resp.header(b"server") == b"mine" and resp.header(b"date") == b"then"
    assert resp.raw.lower().count(b"server:") == 1 and resp.raw.lower().count(b"date:") == 1


def test_keep_alive_and_computed_content_length(serve: Any) -> None:
    server = serve(simple(body=b"abc"))
    with Wire(server.port) as wire:
        for _ in range(3):
            wire.send(GET)
            resp = wire.read_response()
            assert resp.status == 200 and resp.body == b"abc"
            assert resp.header(b"content-length") == b"3"
            assert not resp.has(b"connection")
    assert server.stats.requests_total == 3
    assert server.stats.accepted_total == 1


def test_pipelining_in_order_with_slow_first(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)
        body = scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(
            b"GET /slow HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
            b"POST /c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nxyz"
            b"GET /d HTTP/1.1\r\nHost: t\r\n\r\n"
        )
        bodies = [wire.read_response().body for _ in range(4)]
    assert bodies == [b"/slow", b"/b", b"/c", b"/d"]


def test_chunked_request_with_extensions_and_trailers(serve: Any) -> None:
    server = serve(echo)
    with Wire(server.port) as wire:
        wire.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n"
        )
        resp = wire.read_response()
    assert resp.body == b"hello world"


def test_request_trailers_never_join_the_headers_the_app_holds(serve: Any) -> None:
    # RFC 9110 section 6.5.1: a trailer field is not merged into the header section. llhttp
    # reports trailers through on_header, like the head's fields.
    seen: list[list[tuple[bytes, bytes]]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        body = b""
        more = True
        while more:
            event = await receive()
            body += event["body"]
            more = event["more_body"]
        seen.append(list(scope["headers"]))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})

    server = serve(app)
    with Wire(server.port) as wire:
        for _ in range(2):
            wire.send(
                b"POST / HTTP/1.1\r\nHost: x\r\nX-User: alice\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
                b"X-User: admin\r\nAuthorization: Bearer forged\r\nHost: evil.example\r\n"
                b"X-Forwarded-For: 6.6.6.6\r\n\r\n"
            )
            assert wire.read_response().body == b"hello"
    head = [(b"host", b"x"), (b"x-user", b"alice"), (b"transfer-encoding", b"chunked")]
    assert seen == [head, head]


def test_request_trailers_are_held_to_the_head_limits(serve: Any) -> None:
    server = serve(echo, limit_request_fields=3, limit_request_field_size=64)
    body = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\n0\r\n"
    with Wire(server.port) as wire:  # three trailer fields: within the limit
        wire.send(body + b"A: 1\r\nB: 2\r\nC: 3\r\n\r\n")
        assert wire.read_response().body == b"a"
    with Wire(server.port) as wire:
        wire.send(body + b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n")
        resp = wire.read_response()
        assert resp.status == 431 and resp.header(b"connection") == b"close"
        assert wire.closed()
    with Wire(server.port) as wire:
        wire.send(body + b"A: " + b"x" * 100 + b"\r\n\r\n")
        assert wire.read_response().status == 431


def test_chunked_response_http11_and_close_delimited_http10(serve: Any) -> None:
    server = serve(hello)
    with Wire(server.port) as wire:
        wire.send(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = wire.read_response()
        assert resp.header(b"transfer-encoding") == b"chunked"
        assert resp.body == b"".join(b"chunk %d\n" % i for i in range(10))
    raw = exchange(server.port, b"GET /stream HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert raw.endswith(b"\r\n\r\n8\r\nchunk 0\n\r\n" + raw[-39:]) or raw.endswith(
        b"chunk 9\n\r\n0\r\n\r\n"
    )
    raw = exchange(server.port, b"GET /stream HTTP/1.0\r\n\r\n")
    head, body = raw.split(b"\r\n\r\n", 1)
    assert b"transfer-encoding" not in head and b"content-length" not in head
    assert b"connection: close" in head
    assert body == b"".join(b"chunk %d\n" % i for i in range(10))


def test_http10_keep_alive(serve: Any) -> None:
    server = serve(hello)
    with Wire(server.port) as wire:
        for _ in range(2):
            wire.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            resp = wire.read_response()
            assert resp.header(b"connection") == b"keep-alive"
            assert resp.body == b"Hello, world!"
        wire.send(b"GET / HTTP/1.0\r\n\r\n")
        resp = wire.read_response()
        assert resp.header(b"connection") == b"close"
        assert wire.closed()


def test_connection_close_from_client_and_from_app(serve: Any) -> None:
    server = serve(simple(headers=[(b"connection", b"close")]))
    with Wire(server.port) as wire:
        wire.send(GET)
        resp = wire.read_response()
        assert resp.header(b"connection") == b"close"
        assert wire.closed()
    server2 = serve(hello)
    with Wire(server2.port) as wire:
        wire.send(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert wire.read_response().header(b"connection") == b"close"
        assert wire.closed()


def test_head_keeps_content_length_without_body(serve: Any) -> None:
    server = serve(hello)
    with Wire(server.port) as wire:
        wire.send(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n")
        resp = wire.read_response(head_request=True)
        assert resp.header(b"content-length") == b"13"
        wire.send(GET)  # the next response must start right after the head: no stray body
        assert wire.read_response().body == b"Hello, world!"


@pytest.mark.parametrize("status", [204, 304])
def test_no_body_statuses(serve: Any, status: int) -> None:
    server = serve(simple(status=status, body=b""))
    with Wire(server.port) as wire:
        wire.send(GET + GET)
        first = wire.read_response()
        assert first.status == status
        assert not first.has(b"transfer-encoding")
        if status == 204:
            assert not first.has(b"content-length")
        assert wire.read_response().status == status


def test_expect_continue_only_when_body_is_read(serve: Any) -> None:
    server = serve(echo)
    with Wire(server.port) as wire:
        wire.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        assert wire.read_response().status == 100
        wire.send(b"data")
        assert wire.read_response().body == b"data"
    server2 = serve(simple(status=401, body=b"no"))
    with Wire(server2.port) as wire:
        wire.send(
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n"
        )
        resp = wire.read_response()
        assert resp.status == 401 and resp.header(b"connection") == b"close"


def test_absolute_form_target_authority_wins(serve: Any) -> None:
    app, seen = scope_recorder()
    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(b"GET http://example.com:8080/a%20b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n")
        assert wire.read_response().status == 200
    scope = seen[0]
    assert scope["path"] == "/a b" and scope["raw_path"] == b"/a%20b"
    assert scope["query_string"] == b"x=1"
    assert dict(scope["headers"])[b"host"] == b"example.com:8080"


@pytest.mark.parametrize(
    ("target", "host"),
    [
        (b"http://[::1]:8080/a", b"[::1]:8080"),
        (b"http://[::1]/a", b"[::1]"),
        (b"http://[2001:db8::7]/a?q=@", b"[2001:db8::7]"),  # an @ in the query is no userinfo
    ],
)
def test_absolute_form_with_an_ipv6_literal(serve: Any, target: bytes, host: bytes) -> None:
    app, seen = scope_recorder()
    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(b"GET %s HTTP/1.1\r\nHost: [::1]\r\n\r\n" % target)
        assert wire.read_response().status == 200
    assert seen[0]["path"] == "/a" and dict(seen[0]["headers"])[b"host"] == host


def test_header_values_reach_the_app_without_surrounding_whitespace(serve: Any) -> None:
    # RFC 9110 section 5.5: OWS around a field value is not part of it (llhttp strips only the
    # leading part). Inner whitespace stays.
    app, scopes = scope_recorder()
    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(
            b"GET / HTTP/1.1\r\nHost: h \t\r\nUser-Agent: \tf\t\r\nX-A:  a b  \r\n"
            b"X-Empty: \t \r\nX-Plain: p\r\n\r\n"
        )
        assert wire.read_response().status == 200
    assert [scope["headers"] for scope in scopes] == [
        [
            (b"host", b"h"),
            (b"user-agent", b"f"),
            (b"x-a", b"a b"),
            (b"x-empty", b""),
            (b"x-plain", b"p"),
        ]
    ]


def test_scope_shape(serve: Any) -> None:
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        scope["state"]["touched"] = True
        await simple()(scope, receive, send)

    state = {"k": "v"}
    server = serve(app, root_path="/api", server_kwargs={"state": state})
    with Wire(server.port) as wire:
        wire.send(b"GET /p%C3%A9/x?q=%20 HTTP/1.1\r\nHost: h\r\nX-One: 1\r\nx-TWO: 2\r\n\r\n")
        wire.read_response()
        client_port = wire.sock.getsockname()[1]
    scope = seen[0]
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/api/pé/x"
    assert scope["raw_path"] == b"/api/p%C3%A9/x"
    assert scope["query_string"] == b"q=%20"
    assert scope["root_path"] == "/api"
    assert scope["headers"] == [(b"host", b"h"), (b"x-one", b"1"), (b"x-two", b"2")]
    assert scope["client"] == ("127.0.0.1", client_port)
    assert scope["server"] == ("127.0.0.1", server.port)
    assert scope["state"] == {"k": "v", "touched": True} and state == {"k": "v"}
    assert "http.response.trailers" in scope["extensions"]


def _trailers_app(errors: list[BaseException], status: int = 200) -> Any:
    """Promises trailers, sends them in two messages, and records what send() raised."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            await send(
                {"type": "http.response.start", "status": status, "headers": [], "trailers": True}
            )
            await send({"type": "http.response.body", "body": b"ab", "more_body": True})
            await send({"type": "http.response.body", "body": b"c", "more_body": False})
            await send(
                {
                    "type": "http.response.trailers",
                    "headers": [(b"x-sum", b"42")],
                    "more_trailers": True,
                }
            )
            await send({"type": "http.response.trailers", "headers": [(b"x-count", b"3")]})
        except BaseException as exc:
            errors.append(exc)
            raise

    return app


def test_response_trailers_of_every_message_follow_the_last_chunk(serve: Any) -> None:
    errors: list[BaseException] = []
    server = serve(_trailers_app(errors))
    with Wire(server.port) as wire:
        for _ in range(2):  # the connection stays usable
            wire.send(b"GET / HTTP/1.1\r\nHost: t\r\nTE: gzip, Trailers\r\n\r\n")
            resp = wire.read_response()
            assert resp.header(b"transfer-encoding") == b"chunked"
            assert resp.body == b"abc"
            assert resp.trailers == [(b"x-sum", b"42"), (b"x-count", b"3")]
    assert errors == []


def test_trailers_go_only_to_a_client_that_sent_te_trailers(serve: Any) -> None:
    # ASGI's HTTP Trailers extension: "The ASGI server will only send the trailing headers in
    # case the client has sent the TE: trailers header". The app's messages are still accepted.
    errors: list[BaseException] = []
    server = serve(_trailers_app(errors))
    with Wire(server.port) as wire:
        for _ in range(2):
            wire.send(GET)
            resp = wire.read_response()
            assert resp.status == 200 and resp.body == b"abc" and resp.trailers == []
    wait_for(lambda: server.stats.requests_total == 2)
    assert errors == []


@pytest.mark.parametrize(
    ("request_bytes", "status", "body"),
    [
        (b"GET / HTTP/1.0\r\nTE: trailers\r\n\r\n", 200, b"abc"),  # no chunked in 1.0
        (b"HEAD / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n", 200, b""),
        (b"GET / HTTP/1.1\r\nHost: t\r\nTE: trailers\r\n\r\n", 204, b""),
    ],
)
def test_promised_trailers_a_response_cannot_carry_are_dropped_not_an_app_error(
    serve: Any, request_bytes: bytes, status: int, body: bytes
) -> None:
    errors: list[BaseException] = []
    server = serve(_trailers_app(errors, status))
    with Wire(server.port) as wire:
        wire.send(request_bytes)
        resp = wire.read_response(head_request=request_bytes.startswith(b"HEAD"))
        assert resp.status == status and resp.body == body and resp.trailers == []
        assert not resp.has(b"transfer-encoding") or request_bytes.startswith(b"HEAD")
    wait_for(lambda: server.stats.requests_total == 1)
    time.sleep(0.1)  # the app's last send() comes after the response is out
    assert errors == []


def test_unpromised_trailers_are_an_app_error(serve: Any) -> None:
    errors: list[BaseException] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        try:
            await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"42")]})
        except RuntimeError as exc:
            errors.append(exc)
        await send({"type": "http.response.body", "body": b""})

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(GET)
        assert wire.read_response().body == b"abc"
    assert [str(e) for e in errors] == ["unexpected http.response.trailers"]


def test_client_disconnect_gives_http_disconnect_and_send_raises(serve: Any) -> None:
    events: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        events.append(await receive())  # the (empty) body
        events.append(await receive())  # blocks until the client goes away
        await asyncio.sleep(0.05)
        try:
            await send({"type": "http.response.start", "status": 200, "headers": []})
        except OSError as exc:
            events.append(type(exc).__name__)
        events.append("finished")  # the task was not cancelled

    server = serve(app)
    wire = Wire(server.port)
    wire.send(GET)
    time.sleep(0.1)
    wire.close()
    wait_for(lambda: "finished" in events)
    assert events[1] == {"type": "http.disconnect"}
    assert events[2] == "ClientDisconnected"


def test_app_exception_before_start_is_500_and_logged(
    serve: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise ValueError("boom")

    server = serve(app)
    with caplog.at_level(logging.ERROR, logger="aioprefork.app"):
        raw = exchange(server.port, GET)
    assert status_of(raw) == 500 and b"connection: close" in raw
    assert any(r.exc_info and "boom" in str(r.exc_info[1]) for r in caplog.records)


def test_app_exception_after_start_closes(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"part", "more_body": True})
        raise ValueError("late")

    server = serve(app)
    raw = exchange(server.port, GET)
    assert status_of(raw) == 200 and raw.endswith(b"4\r\npart\r\n")  # truncated: no last chunk


def test_app_returns_without_response_is_500(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        return None

    server = serve(app)
    assert status_of(exchange(server.port, GET)) == 500


@pytest.mark.parametrize(
    "headers, status",
    [
        ([(b"x-bad", b"a\r\nInjected: 1")], 200),
        ([(b"x-bad", b"a\nb")], 200),
        ([(b"x-bad", b"a\rb")], 200),
        ([(b"x-bad", b"a\x00b")], 200),
        ([(b"bad name", b"v")], 200),
        ([(b"x-bad\r\n", b"v")], 200),
        ([], 1000),
        ([], 99),
        ([], 100),  # an interim status cannot end a response (RFC 9110 section 15.2)
        ([], 101),
        ([], 103),
    ],
)
def test_invalid_response_is_500_and_never_written(
    serve: Any, headers: list[Any], status: int
) -> None:
    server = serve(simple(status=status, headers=headers, body=b"body"))
    raw = exchange(server.port, GET)
    assert status_of(raw) == 500
    assert b"Injected" not in raw and b"x-bad" not in raw and b"body" not in raw


def test_error_answers_to_head_have_no_content(serve: Any) -> None:
    """RFC 9110 section 9.3.2: the same head as for GET, no content (else a client reading the
    next response on that connection would take the body for it)."""

    async def boom(scope: dict[str, Any], receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    server = serve(boom)
    refused = exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert status_of(refused) == 400 and b"content-length: 12\r\n" in refused
    assert refused.endswith(b"\r\n\r\n")
    failed = exchange(server.port, b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert status_of(failed) == 500 and failed.endswith(b"\r\n\r\n")
    got = exchange(server.port, b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
    assert got.endswith(b"\r\n\r\nBad Request\n")  # GET keeps its text
    served = serve(simple(body=b"abc"))
    with Wire(served.port) as wire:  # refused behind a pipelined request: answered in turn
        wire.send(
            b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n"
            b"HEAD / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        )
        assert wire.read_response(head_request=True).status == 200
        raw = wire.read_all()
    assert status_of(raw) == 400 and raw.endswith(b"\r\n\r\n")


def test_body_longer_than_content_length(serve: Any) -> None:
    server = serve(simple(headers=[(b"content-length", b"2")], body=b"toolong"))
    raw = exchange(server.port, GET)
    assert status_of(raw) == 500 and b"toolong" not in raw


def test_body_shorter_than_content_length_closes(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]}
        )
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    server = serve(app)
    raw = exchange(server.port, GET)
    assert status_of(raw) == 200 and raw.endswith(b"\r\n\r\nabc")


def test_streaming_body_too_long_closes(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"4")]}
        )
        await send({"type": "http.response.body", "body": b"abc", "more_body": True})
        await send({"type": "http.response.body", "body": b"def"})

    server = serve(app)
    raw = exchange(server.port, GET)
    assert raw.endswith(b"\r\n\r\nabc")


def test_stats_observed_per_response(serve: Any) -> None:
    server = serve(hello)
    with Wire(server.port) as wire:
        wire.send(GET)
        wire.read_response()
        wire.send(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi")
        wire.read_response()
    wait_for(lambda: server.stats.requests_total == 2)
    assert server.stats.requests == {("GET", 2): 1, ("POST", 2): 1}
    assert server.stats.response_bytes_total == 15


def test_each_pipelined_request_gets_its_own_http_version(serve: Any) -> None:
    """The version is read off the request line when a read starts with it, else asked of llhttp:
    mixed versions pipelined in one read, and a head split across reads, each get their own."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await simple(body=scope["http_version"].encode())(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(
            b"GET /a HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"
            b"GET /b HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /c HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"
        )
        assert [wire.read_response().body for _ in range(3)] == [b"1.0", b"1.1", b"1.0"]
        wire.send(b"GET /d HTTP/1.")
        time.sleep(0.05)
        wire.send(b"0\r\nHost: t\r\n\r\n")
        response = wire.read_response()
        assert response.body == b"1.0" and wire.closed()


def test_each_request_gets_the_method_of_its_own_request_line(serve: Any) -> None:
    """GET and POST are read off the request line when a read starts with it; other methods, and
    heads split inside the method, the target or the version, are asked of llhttp."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive())["more_body"]:
            pass
        body = f"{scope['method']} {scope['path']} {scope['http_version']}".encode()
        await simple(body=body)(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(
            b"POST /p?q=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
            b"DELETE /d HTTP/1.1\r\nHost: t\r\n\r\n"
            b"GET /g HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n"
            b"PUT /u HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"
        )
        bodies = [wire.read_response().body for _ in range(4)]
        assert bodies == [b"POST /p 1.1", b"DELETE /d 1.1", b"GET /g 1.0", b"PUT /u 1.1"]
        for first, rest, expected in (
            (b"PO", b"ST /a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n", b"POST /a 1.1"),
            (
                b"GET /sp",
                b"lit HTTP/1.0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n",
                b"GET /split 1.0",
            ),
            (b"POST /v HTTP/1", b".0\r\nHost: t\r\nConnection: keep-alive\r\n\r\n", b"POST /v 1.0"),
            (b"GET /w HTTP/1.0", b"\r\nHost: t\r\nConnection: keep-alive\r\n\r\n", b"GET /w 1.0"),
            (b"GET /x HTTP/1.0\r", b"\nHost: t\r\nConnection: keep-alive\r\n\r\n", b"GET /x 1.0"),
        ):
            wire.send(first)
            time.sleep(0.05)
            wire.send(rest)
            assert wire.read_response().body == expected


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query_string"),
    [
        (b"/plain", "/plain", b"/plain", b""),
        (b"/a/b?c=d&e", "/a/b", b"/a/b", b"c=d&e"),
        (b"/empty?", "/empty", b"/empty", b""),
        (b"/q?x=%41?y", "/q", b"/q", b"x=%41?y"),
        (b"/p%2Fq%20r?s", "/p/q r", b"/p%2Fq%20r", b"s"),
    ],
)
def test_target_split_into_path_raw_path_and_query(
    serve: Any, target: bytes, path: str, raw_path: bytes, query_string: bytes
) -> None:
    seen: list[tuple[str, bytes, bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope["path"], scope["raw_path"], scope["query_string"]))
        await simple()(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(b"GET %s HTTP/1.1\r\nHost: h\r\n\r\n" % target)
        assert wire.read_response().status == 200
    assert seen == [(path, raw_path, query_string)]


def test_raw_non_ascii_target_is_refused(serve: Any) -> None:
    """A request-target is ASCII (RFC 3986 section 2); raw UTF-8 must be percent-encoded."""
    server = serve(simple())
    with Wire(server.port) as wire:
        wire.send(b"GET /caf\xc3\xa9 HTTP/1.1\r\nHost: h\r\n\r\n")
        assert wire.read_response().status == 400 and wire.closed()


def test_header_names_are_lowered_through_a_bounded_cache(serve: Any) -> None:
    from aioprefork.http import protocol as http

    app, scopes = scope_recorder()
    server = serve(app)
    with Wire(server.port) as wire:
        for batch in range(15):
            fields = b"".join(b"X-Name-%d-%d: v\r\n" % (batch, i) for i in range(80))
            wire.send(b"GET / HTTP/1.1\r\nHost: h\r\n" + fields + b"\r\n")
            assert wire.read_response().status == 200
            assert len(http._LOWERED) <= 1024
    assert scopes[-1]["headers"][-1] == (b"x-name-14-79", b"v")


def test_method_and_query_string_are_each_requests_own_on_one_connection(serve: Any) -> None:
    """GET and an empty query string come from the connection's scope template, anything else is
    stored per request: neither may carry over from the request before."""
    seen: list[tuple[str, bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((scope["method"], scope["query_string"]))
        await simple()(scope, receive, send)

    requests = [
        ("GET", b"/a?x=1"),
        ("GET", b"/b"),
        ("POST", b"/c?y"),
        ("GET", b"/d"),
        ("HEAD", b"/e"),
    ]
    server = serve(app)
    with Wire(server.port) as wire:
        for method, target in requests:
            body = b"Content-Length: 0\r\n" if method == "POST" else b""
            wire.send(b"%s %s HTTP/1.1\r\nHost: h\r\n%s\r\n" % (method.encode(), target, body))
            assert wire.read_response(head_request=method == "HEAD").status == 200
    assert seen == [("GET", b"x=1"), ("GET", b""), ("POST", b"y"), ("GET", b""), ("HEAD", b"")]


def test_header_names_are_lowered_afresh_wherever_they_differ_from_the_last_request(
    serve: Any,
) -> None:
    """The compiled build first compares each field name with the previous request's name at the
    same position: another case, another name, more fields, fewer, and names too long to keep
    must each come out lower-cased, in order, on one connection."""
    long_a, long_b = b"X-" + b"A" * 100, b"X-" + b"B" * 100
    requests = [
        [b"Host", b"X-One", b"X-Two"],
        [b"Host", b"X-One", b"X-Two"],
        [b"Host", b"X-ONE", b"X-Three", b"X-Four"],
        [b"HOST"],
        [b"Host", long_a, b"X-Two"],
        [b"Host", long_b, b"X-Two"],
        [b"Host", long_b, b"x-two", b"X-Five"],
    ]
    seen: list[list[bytes]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append([name for name, _ in scope["headers"]])
        await simple()(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        for names in requests:
            fields = b"".join(b"%s: v\r\n" % name for name in names)
            wire.send(b"GET / HTTP/1.1\r\n" + fields + b"\r\n")
            assert wire.read_response().status == 200
    assert seen == [[name.lower() for name in names] for names in requests]


@pytest.mark.parametrize(
    "message",
    [
        {"type": "http.response.bogus"},
        {"type": 5},
        {"status": 200},
        {"type": "http.response.body", "body": b"x"},  # body before start
    ],
)
def test_invalid_asgi_messages_are_500(serve: Any, message: dict[str, Any]) -> None:
    """A message the spec does not allow (unknown, mistyped, missing type, out of order) is the
    app's error: 500 and close, whichever build runs."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send(message)

    server = serve(app)
    raw = exchange(server.port, GET)
    assert status_of(raw) == 500 and b"connection: close" in raw


def test_each_scope_has_its_own_mutable_parts(serve: Any) -> None:
    """An app that writes into scope["asgi"] or scope["extensions"] leaks nothing into the next
    request's scope (both start from per-connection templates)."""
    seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((dict(scope["asgi"]), dict(scope["extensions"])))
        scope["asgi"]["leak"] = True
        scope["extensions"]["leak"] = {}
        await simple()(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        for _ in range(2):
            wire.send(GET)
            assert wire.read_response().status == 200
    assert seen[0] == seen[1] and "leak" not in seen[1][0] and "leak" not in seen[1][1]
