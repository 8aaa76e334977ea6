"""The metrics listener against a real socket on 127.0.0.1:0, driven by httpx and raw sockets."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable

import httpx
import pytest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

from aioprefork.errors import BindError
from aioprefork.metrics.http import Limits, MetricsServer, open_metrics_server, parse_bind
from aioprefork.snapshot import READY, STOPPING, Snapshot

from .helpers import promtool, samples, slot, snapshot, value

pytestmark = pytest.mark.timeout(30)


class Board:
    """A fake scoreboard: the test swaps the snapshot the server renders."""

    def __init__(self) -> None:
        self.snap = snapshot()
        self.fail = False

    def __call__(self) -> Snapshot:
        if self.fail:
            raise RuntimeError("scoreboard broke")
        return self.snap


class Extra:
    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("shop_open_carts", "Open carts", value=7)


@pytest.fixture
def board() -> Board:
    return Board()


@pytest.fixture
async def server(board: Board) -> AsyncIterator[MetricsServer]:
    srv = await open_metrics_server(
        "127.0.0.1:0",
        board,
        registry_extra=Extra(),
        limits=Limits(head_timeout=0.5, max_connections=4),
    )
    yield srv
    await srv.close()


@pytest.fixture
async def client(server: MetricsServer) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{server.port}", timeout=5) as c:
        yield c


async def raw(port: int, data: bytes, *, host: str = "127.0.0.1") -> bytes:
    """Send bytes, read until the server closes."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), 5)
    finally:
        writer.close()


async def test_metrics_prometheus_text(client: httpx.AsyncClient) -> None:
    r = await client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert r.headers["cache-control"] == "no-store"
    t = samples(r.text)
    assert value(t, "aioprefork_requests_total", method="GET", status_class="2xx") == 900
    assert value(t, "shop_open_carts") == 7  # registry_extra lands in the same scrape
    assert ("process_resident_memory_bytes", frozenset()) in t  # the master's own process
    check = promtool("check", "metrics", stdin=r.text)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


async def test_metrics_openmetrics_when_asked(client: httpx.AsyncClient) -> None:
    r = await client.get(
        "/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert r.headers["content-type"].startswith("application/openmetrics-text; version=1.0.0")
    assert r.text.endswith("# EOF\n")


async def test_metrics_gzip_and_name_filter(server: MetricsServer) -> None:
    async with httpx.AsyncClient(timeout=5) as c:
        url = f"http://127.0.0.1:{server.port}/metrics"
        r = await c.get(url, headers={"Accept-Encoding": "gzip"})
        assert r.headers["content-encoding"] == "gzip"
        assert "aioprefork_generation 2.0" in r.text  # httpx decompressed it
        filtered = await c.get(
            url, params={"name[]": "aioprefork_generation"}, headers={"Accept-Encoding": "identity"}
        )
    assert [line for line in filtered.text.splitlines() if not line.startswith("#")] == [
        "aioprefork_generation 2.0"
    ]


async def test_healthz(client: httpx.AsyncClient, board: Board) -> None:
    assert (await client.get("/healthz")).status_code == 200
    # Only an old-generation worker is ready: the master still serves, so healthy.
    board.snap = snapshot(slots=(slot(state=READY, current=False),))
    assert (await client.get("/healthz")).status_code == 200
    board.snap = snapshot(slots=(slot(state=STOPPING),), master_state="stopping")
    r = await client.get("/healthz")
    assert r.status_code == 503 and "no worker ready" in r.text
    board.snap = snapshot(slots=(), master_state="starting")
    assert (await client.get("/healthz")).status_code == 503


@pytest.mark.parametrize(
    ("state", "current", "expected"),
    [
        ("running", True, 200),
        ("restarting", True, 200),
        ("starting", True, 503),
        ("booting", True, 503),
        ("stopping", True, 503),
        ("running", False, 503),  # only an old generation is ready
    ],
)
async def test_readyz(
    client: httpx.AsyncClient, board: Board, state: str, current: bool, expected: int
) -> None:
    board.snap = snapshot(master_state=state, slots=(slot(current=current),))
    r = await client.get("/readyz")
    assert r.status_code == expected, r.text


async def test_server_status_html_auto_and_refresh(client: httpx.AsyncClient) -> None:
    html = await client.get("/server-status")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert '<meta http-equiv="refresh" content="5">' in html.text
    auto = await client.get("/server-status?auto")
    assert auto.headers["content-type"].startswith("text/plain")
    assert auto.text.splitlines()[-1] == "Scoreboard: A_S.O."
    fast = await client.get("/server-status", params={"refresh": "2"})
    assert '<meta http-equiv="refresh" content="2">' in fast.text
    bad = await client.get("/server-status", params={"refresh": "soon"})
    assert '<meta http-equiv="refresh" content="5">' in bad.text


async def test_head_404_405_and_index(client: httpx.AsyncClient) -> None:
    identity = {"Accept-Encoding": "identity"}
    get = await client.get("/metrics", headers=identity)
    head = await client.head("/metrics", headers=identity)
    assert head.status_code == 200 and head.content == b""
    assert abs(int(head.headers["content-length"]) - len(get.content)) < 64  # same page, new pids
    assert (await client.get("/nope")).status_code == 404
    post = await client.post("/metrics", content=b"x")
    assert post.status_code == 405 and post.headers["allow"] == "GET, HEAD"
    assert "/server-status" in (await client.get("/")).text


async def test_keep_alive_serves_many_requests_on_one_connection(server: MetricsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    try:
        for _ in range(3):
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200 ")
            assert b"Connection: close" not in head
            await reader.readexactly(3)  # "ok\n"
        writer.write(b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n")
        rest = await asyncio.wait_for(reader.read(), 5)
        assert rest.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in rest
    finally:
        writer.close()


async def test_http10_closes_after_response(server: MetricsServer) -> None:
    out = await raw(server.port, b"GET /readyz HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ready\n")


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/2.0\r\n\r\n", b"505"),
        (b"GET /metrics SPDY\r\n\r\n", b"400"),
        (b"GET metrics HTTP/1.1\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\nno colon here\r\n\r\n", b"400"),
        (b"GET /metrics HTTP/1.1\r\n" + b"X-A: b\r\n" * 100 + b"\r\n", b"431"),
        (b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    ],
)
async def test_bad_requests_get_an_answer_and_a_close(
    server: MetricsServer, request_bytes: bytes, status: bytes
) -> None:
    out = await raw(server.port, request_bytes)
    assert out.startswith(b"HTTP/1.1 " + status + b" "), out[:80]
    assert b"Connection: close" in out


async def test_request_with_body_is_answered_then_closed(server: MetricsServer) -> None:
    out = await raw(server.port, b"GET /healthz HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello")
    assert out.startswith(b"HTTP/1.1 200 ") and b"Connection: close" in out


async def test_absolute_form_target(server: MetricsServer) -> None:
    out = await raw(server.port, b"GET http://example/readyz HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ")


async def test_slow_client_is_dropped_after_head_timeout(server: MetricsServer) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"GET /metrics HTTP/1.1\r\nHost: slow")  # never finishes the head
    loop = asyncio.get_running_loop()
    start = loop.time()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    assert loop.time() - start < 3
    writer.close()


async def test_connection_limit_answers_503(
    server: MetricsServer, client: httpx.AsyncClient
) -> None:
    held = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(4)]
    await asyncio.sleep(0.05)
    try:
        out = await raw(server.port, b"GET /healthz HTTP/1.1\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 503 ")
    finally:
        for _, w in held:
            w.close()
    await asyncio.sleep(0.1)
    assert (await client.get("/healthz")).status_code == 200  # capacity comes back


async def test_failing_snapshot_is_a_500_not_a_crash(
    client: httpx.AsyncClient, board: Board, caplog: pytest.LogCaptureFixture
) -> None:
    board.fail = True
    assert (await client.get("/readyz")).status_code == 500
    assert (await client.get("/metrics")).status_code == 500
    assert "scoreboard broke" in caplog.text
    board.fail = False
    assert (await client.get("/readyz")).status_code == 200


async def test_close_drops_idle_keepalive_connections(board: Board) -> None:
    srv = await open_metrics_server("127.0.0.1:0", board)
    reader, writer = await asyncio.open_connection("127.0.0.1", srv.port)
    writer.write(b"GET /healthz HTTP/1.1\r\n\r\n")
    await asyncio.wait_for(reader.readuntil(b"ok\n"), 5)
    await asyncio.wait_for(srv.close(), 5)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", srv.port)


async def test_ipv6_loopback(board: Board) -> None:
    srv = await open_metrics_server("[::1]:0", board)
    try:
        out = await raw(srv.port, b"GET /healthz HTTP/1.0\r\n\r\n", host="::1")
        assert out.startswith(b"HTTP/1.1 200 ")
        assert srv.fds() and all(isinstance(fd, int) for fd in srv.fds())
    finally:
        await srv.close()


async def test_bind_errors_are_one_line_user_errors(board: Board) -> None:
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        with pytest.raises(BindError, match=r"metrics listener 127\.0\.0\.1:") as info:
            await open_metrics_server(f"127.0.0.1:{taken.getsockname()[1]}", board)
        assert "choose another --metrics-bind" in str(info.value)
    finally:
        taken.close()
    for bad in ("nope", "127.0.0.1", "::1:9464", "host:99999", "host:port"):
        with pytest.raises(BindError):
            parse_bind(bad)
    assert parse_bind("[::1]:9464") == ("::1", 9464)
    assert parse_bind(":9464") == (None, 9464)
    assert parse_bind("localhost:0") == ("localhost", 0)
