"""The master's metrics listener: /metrics, /healthz, /readyz and /server-status over HTTP/1.1.

Runs on the MASTER's event loop (no thread: the master forks, and forking a threaded process
deadlocks children) and never runs application code. Each scrape takes one Snapshot through the
function it was given and renders it; nothing here keeps state between requests.

Robust against bad clients, because the master must outlive them: the request head is bounded in
size (431) and time (HEAD_TIMEOUT), idle keep-alive connections are closed after IDLE_TIMEOUT,
at most MAX_CONNECTIONS are served at once (more get a 503), only GET and HEAD are allowed (405),
request bodies are refused (the connection is closed), and a failing snapshot answers 500 rather
than raising into the master's loop. `parse_head()` and `respond()` are pure; only `_serve()`
touches a socket.

prometheus_client (with the http.server, wsgiref and urllib.request it imports) is imported at the
first /metrics scrape, not at start: the master forks every worker, and whatever it imported is in
each worker's memory (~3 MiB here). Workers forked before the first scrape never carry it.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import TYPE_CHECKING, Final, cast
from urllib.parse import parse_qs, urlsplit

from aioprefork.errors import BindError
from aioprefork.metrics.status_page import (
    DEFAULT_REFRESH,
    render_auto,
    render_html,
    render_requests_auto,
)
from aioprefork.snapshot import READY, InFlight, Snapshot

if TYPE_CHECKING:  # imported where used: see the module docstring
    from prometheus_client import CollectorRegistry
    from prometheus_client.metrics_core import Metric
    from prometheus_client.registry import Collector

log = logging.getLogger("aioprefork.metrics")

MAX_HEAD: Final = 16 * 1024  # request line + headers; a scraper sends a few hundred bytes
MAX_HEADERS: Final = 64
HEAD_TIMEOUT: Final = 10.0  # the whole head of a new connection must arrive within this
IDLE_TIMEOUT: Final = 75.0  # keep-alive between scrapes; above Prometheus's default 60 s interval
WRITE_TIMEOUT: Final = 10.0  # a client that does not read its answer is dropped
MAX_CONNECTIONS: Final = 64  # the master's loop is not a web server: above this, 503 and close
LINGER_TIMEOUT: Final = 2.0  # after our last answer, wait this long for the client's EOF
LINGER_BYTES: Final = 256 * 1024  # ... discarding at most this much of what it still sends
READY_STATES: Final = frozenset({"running", "restarting"})  # /readyz is 200 only in these
DEAD_STATES: Final = frozenset({"exited", "halted"})

REASONS: Final = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
    505: "HTTP Version Not Supported",
}
TEXT: Final = "text/plain; charset=utf-8"
HTML: Final = "text/html; charset=utf-8"
INDEX: Final = (
    b"aioprefork master\n\n"
    b"/metrics              Prometheus metrics (OpenMetrics via Accept)\n"
    b"/healthz              200 when the master is alive and a worker is ready\n"
    b"/readyz               200 when running and a current-generation worker is ready\n"
    b"/server-status        live status page (?auto: machine-readable, ?refresh=N)\n"
)

SnapshotFn = Callable[[], Snapshot]
InFlightFn = Callable[[], Awaitable[InFlight]]
RegistryFn = Callable[[], "CollectorRegistry"]


@dataclass(frozen=True, slots=True)
class Limits:
    """How much a client may take from the master's loop (the module constants by default)."""

    head_timeout: float = HEAD_TIMEOUT
    idle_timeout: float = IDLE_TIMEOUT
    write_timeout: float = WRITE_TIMEOUT
    max_connections: int = MAX_CONNECTIONS


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    path: str
    query: str
    keep_alive: bool
    has_body: bool
    headers: dict[str, str] = field(default_factory=dict)  # lower-cased names


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes = b""
    content_type: str = TEXT
    headers: tuple[tuple[str, str], ...] = ()
    close: bool = False  # close the connection after this response


class BadRequest(Exception):
    """The head cannot be served: answer `status` and close."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status


# --- pure: parse, route, encode -------------------------------------------------------------


def parse_head(raw: bytes) -> Request:
    """One request head (without the final blank line) -> Request, or BadRequest."""
    try:
        text = raw.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "undecodable head") from exc
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(400, "malformed request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505 if version.startswith("HTTP/") else 400, "unsupported version")
    if len(lines) - 1 > MAX_HEADERS:
        raise BadRequest(431, "too many header fields")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in line for c in "\0\r\n"):
            raise BadRequest(400, "malformed header field")
        headers[name.lower()] = value.strip()
    if target.startswith(("http://", "https://")):  # absolute-form (RFC 9112 section 3.2.2)
        split = urlsplit(target)
        path, query = split.path or "/", split.query
    elif target.startswith("/"):
        path, _, query = target.partition("?")
    else:
        raise BadRequest(400, "bad request target")
    connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
    keep_alive = "close" not in connection if version == "HTTP/1.1" else "keep-alive" in connection
    has_body = "transfer-encoding" in headers or headers.get("content-length", "0") != "0"
    return Request(method.upper(), path, query, keep_alive, has_body, headers)


def _probe(ok: bool, good: str, bad: str) -> Response:
    return Response(200, good.encode() + b"\n") if ok else Response(503, bad.encode() + b"\n")


class _Only:
    """`?name[]=` filtering: keep only the named series (registry.restricted_registry() relies on
    describe(), which our collectors leave empty so that registering never takes a snapshot)."""

    def __init__(self, source: Collector, names: frozenset[str]) -> None:
        self._source, self._names = source, names

    def collect(self) -> Iterable[Metric]:
        from prometheus_client.metrics_core import Metric

        for family in self._source.collect():
            kept = [s for s in family.samples if s.name in self._names]
            if kept:
                copy = Metric(family.name, family.documentation, family.type, family.unit)
                copy.samples = kept
                yield copy


def _metrics(req: Request, registry: CollectorRegistry) -> Response:
    import gzip

    from prometheus_client.exposition import choose_encoder, gzip_accepted

    encoder, content_type = choose_encoder(req.headers.get("accept", ""))
    names = parse_qs(req.query).get("name[]")
    body = encoder(_Only(registry, frozenset(names)) if names else registry)
    extra: tuple[tuple[str, str], ...] = ()
    if gzip_accepted(req.headers.get("accept-encoding", "")):
        body = gzip.compress(body, compresslevel=1)  # fast: the master's loop pays for it
        extra = (("Content-Encoding", "gzip"),)
    return Response(200, body, content_type, (*extra, ("Vary", "Accept, Accept-Encoding")))


def wants_requests(req: Request) -> bool:
    """/server-status?requests: the answer needs the workers' requests in flight first."""
    return req.path == "/server-status" and "requests" in parse_qs(
        req.query, keep_blank_values=True
    )


def _server_status(req: Request, snapshot: SnapshotFn, requests: InFlight | None) -> Response:
    params = parse_qs(req.query, keep_blank_values=True)
    if "json" in params:
        data = snapshot().to_json()
        if requests is not None:
            data["requests"] = requests.to_json()
        return Response(200, json.dumps(data).encode(), "application/json")
    if "auto" in params:
        text = render_auto(snapshot())
        if requests is not None:
            text += render_requests_auto(requests)
        return Response(200, text.encode(), TEXT)
    try:
        refresh = min(3600, max(1, int(params.get("refresh", [DEFAULT_REFRESH])[0])))
    except ValueError:
        refresh = DEFAULT_REFRESH
    page = render_html(snapshot(), refresh=refresh, requests=requests)
    return Response(200, page.encode(), HTML)


def respond(
    req: Request, snapshot: SnapshotFn, registry: RegistryFn, requests: InFlight | None = None
) -> Response:
    """Route one request. May raise whatever `snapshot()` raises; the caller turns it into 500.

    `registry()` is called only for /metrics (building it imports prometheus_client).
    """
    if req.method not in ("GET", "HEAD"):
        return Response(405, b"method not allowed\n", headers=(("Allow", "GET, HEAD"),))
    if req.path == "/metrics":
        return _metrics(req, registry())
    if req.path == "/healthz":
        snap = snapshot()
        alive = snap.master_state not in DEAD_STATES
        return _probe(alive and any(s.state == READY for s in snap.slots), "ok", "no worker ready")
    if req.path == "/readyz":
        snap = snapshot()
        if snap.master_state not in READY_STATES:
            return Response(503, f"not ready: master {snap.master_state}\n".encode())
        return _probe(snap.ready, "ready", "not ready: no current worker ready")
    if req.path == "/server-status":
        return _server_status(req, snapshot, requests)
    if req.path == "/":
        return Response(200, INDEX)
    return Response(404, b"not found\n")


def encode(resp: Response, *, head_only: bool, close: bool) -> bytes:
    """Status line, headers and (unless HEAD) body."""
    lines = [
        f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}",
        "Server: aioprefork",
        f"Date: {formatdate(usegmt=True)}",
        f"Content-Type: {resp.content_type}",
        f"Content-Length: {len(resp.body)}",
        "Cache-Control: no-store",
        *(f"{name}: {value}" for name, value in resp.headers),
    ]
    if close:
        lines.append("Connection: close")
    head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    return head if head_only else head + resp.body


def parse_bind(bind: str) -> tuple[str | None, int]:
    """'host:port', '[v6]:port' or ':port' (all interfaces) -> (host, port); BindError if not."""
    host, sep, port_text = bind.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        sep = ""  # a bare IPv6 address: the port is ambiguous
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise BindError(f"metrics listener {bind!r}: expected HOST:PORT or [IPV6]:PORT")
    return host or None, int(port_text)


# --- I/O ------------------------------------------------------------------------------------


class MetricsServer:
    """A running metrics listener. `close()` stops listening and drops open connections."""

    def __init__(
        self,
        snapshot: SnapshotFn,
        extra: Iterable[Collector],
        limits: Limits,
        in_flight: InFlightFn | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._in_flight = in_flight
        self._extra = tuple(extra)
        self._registry: CollectorRegistry | None = None  # built at the first /metrics
        self._limits = limits
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0  # the bound port, known once listening (useful with port 0)

    async def _start(self, host: str | None, port: int) -> None:
        self._server = await asyncio.start_server(
            self._serve, host, port, limit=MAX_HEAD, reuse_address=True
        )
        self.port = int(self._server.sockets[0].getsockname()[1])

    def registry(self) -> CollectorRegistry:
        """The scrape's registry: the scoreboard, the master's process_* and the extra collectors."""
        if self._registry is None:
            from prometheus_client import CollectorRegistry, ProcessCollector

            from aioprefork.metrics.collector import SnapshotCollector

            registry = CollectorRegistry(auto_describe=False)
            registry.register(SnapshotCollector(self._snapshot))
            ProcessCollector(registry=registry)  # the master's own process_* (CPU, RSS, fds)
            for collector in self._extra:
                registry.register(collector)
            self._registry = registry
        return self._registry

    def fds(self) -> tuple[int, ...]:
        """The listening sockets' fds: a forked worker closes them."""
        return tuple(s.fileno() for s in self._server.sockets) if self._server else ()

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._server.wait_closed(), self._limits.write_timeout)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        busy = len(self._writers) >= self._limits.max_connections
        self._writers.add(writer)
        try:
            if busy:
                await self._answer(writer, Response(503, b"busy\n"), False, True)
            else:
                await self._session(reader, writer)
            await self._linger(reader, writer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass  # the client went away or stalled: nothing to answer
        finally:
            self._writers.discard(writer)
            writer.transport.abort()  # no-op when the client already closed

    async def _linger(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Half-close, then drain what the client still sends (Apache's lingering close).

        Closing with unread input makes the kernel send RST, which can destroy the answer we just
        wrote (a 431, a 503) before the client reads it.
        """
        if writer.can_write_eof():
            writer.write_eof()
        left = LINGER_BYTES
        async with asyncio.timeout(LINGER_TIMEOUT):
            while left > 0 and (chunk := await reader.read(min(left, 65536))):
                left -= len(chunk)

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        timeout = self._limits.head_timeout
        while True:
            try:
                async with asyncio.timeout(timeout):
                    raw = await reader.readuntil(b"\r\n\r\n")
            except asyncio.LimitOverrunError:
                return await self._answer(writer, Response(431, b"head too large\n"), False, True)
            except asyncio.IncompleteReadError:
                return  # EOF between requests: a normal keep-alive close
            try:
                req = parse_head(raw[:-4])
            except BadRequest as exc:
                body = f"{exc}\n".encode()
                return await self._answer(writer, Response(exc.status, body), False, True)
            requests = None
            if self._in_flight is not None and wants_requests(req):
                requests = await self._in_flight()
            resp = self._respond(req, requests)
            close = resp.close or not req.keep_alive or req.has_body
            await self._answer(writer, resp, req.method == "HEAD", close)
            if close:
                return
            timeout = self._limits.idle_timeout

    def _respond(self, req: Request, requests: InFlight | None = None) -> Response:
        try:
            return respond(req, self._snapshot, self.registry, requests)
        except Exception:
            log.exception("metrics: %s %s failed", req.method, req.path)
            return Response(500, b"internal error\n", close=True)

    async def _answer(
        self, writer: asyncio.StreamWriter, resp: Response, head_only: bool, close: bool
    ) -> None:
        writer.write(encode(resp, head_only=head_only, close=close))
        async with asyncio.timeout(self._limits.write_timeout):
            await writer.drain()


def _collectors(extra: Collector | Iterable[Collector] | None) -> list[Collector]:
    if extra is None:
        return []
    if hasattr(extra, "collect"):
        return [cast("Collector", extra)]
    return list(extra)


async def open_metrics_server(
    bind: str,
    snapshot: SnapshotFn,
    *,
    registry_extra: Collector | Iterable[Collector] | None = None,
    limits: Limits = Limits(),  # frozen: sharing the default is safe
    in_flight: InFlightFn | None = None,
) -> MetricsServer:
    """Listen on `bind` ("host:port", "[::1]:port") in the running loop and serve the master's views.

    `snapshot` is called once per request that needs it; `registry_extra` adds collectors to the
    same scrape (appmetrics.collector() for the application's multiprocess metrics). Raises
    BindError when the address is malformed or cannot be bound.
    """
    host, port = parse_bind(bind)
    server = MetricsServer(snapshot, _collectors(registry_extra), limits, in_flight)
    try:
        await server._start(host, port)
    except OSError as exc:
        problem = exc.strerror or str(exc)
        if exc.errno == errno.EADDRINUSE:
            problem = "address already in use (choose another --metrics-bind, or --no-metrics)"
        raise BindError(f"metrics listener {bind}: {problem}") from exc
    return server
