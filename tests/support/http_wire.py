"""Helpers for the protocol tests: a raw HTTP/1.1 client for byte-exact checks, small ASGI apps,
and ServerThread, a real WorkerServer on 127.0.0.1:0 running its own uvloop loop in a thread."""

from __future__ import annotations

import asyncio
import re
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvloop

DATE_RE = re.compile(rb"date: [A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT\r\n")


@dataclass
class Response:
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    raw: bytes
    trailers: list[tuple[bytes, bytes]] = field(default_factory=list)

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def has(self, name: bytes) -> bool:
        return self.header(name) is not None


class Wire:
    """One client connection with a read buffer."""

    def __init__(self, port: int, timeout: float = 5.0, unix: str | None = None) -> None:
        if unix is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(timeout)
            self.sock.connect(unix)
        else:
            self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _take(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError(f"closed before {n} bytes")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError("closed mid-line")
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def read_response(self, head_request: bool = False) -> Response:
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before a response head: {self.buf!r}")
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split(b" ")[1])
        headers = [(k.lower(), v.strip()) for k, v in (line.split(b":", 1) for line in lines[1:])]
        resp = Response(status, headers, b"", head + b"\r\n\r\n")
        if head_request or status < 200 or status in (204, 304):
            return resp
        length = resp.header(b"content-length")
        if length is not None:
            resp.body = self._take(int(length))
        elif resp.header(b"transfer-encoding") == b"chunked":
            body = b""
            while True:
                size = int(self._line().split(b";")[0], 16)
                if size == 0:
                    while (line := self._line()) != b"":
                        k, v = line.split(b":", 1)
                        resp.trailers.append((k.lower(), v.strip()))
                    break
                body += self._take(size)
                assert self._take(2) == b"\r\n"
            resp.body = body
        else:
            resp.body = self.read_all()
        resp.raw += resp.body
        return resp

    def read_all(self) -> bytes:
        """Everything until the server closes (raises on timeout)."""
        while self._fill():
            pass
        out, self.buf = self.buf, b""
        return out

    def closed(self, timeout: float = 3.0) -> bool:
        """True when the server closed the connection (EOF or reset) within `timeout`."""
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
                self.buf += data
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False


def exchange(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send raw bytes and return everything the server sends until it closes."""
    with Wire(port, timeout) as wire:
        wire.send(data)
        return wire.read_all()


def status_of(raw: bytes) -> int:
    return int(raw.split(b" ", 2)[1])


def strip_date(raw: bytes) -> bytes:
    return DATE_RE.sub(b"date: X\r\n", raw)


def wait_for(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Echo the body (collected with receive()) with a Content-Length."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})


def simple(status: int = 200, body: bytes = b"ok", headers: list[Any] | None = None) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": status, "headers": headers or []})
        await send({"type": "http.response.body", "body": body})

    return app


# The bundled examples (examples/hello.py, examples/starlette_app.py) import from the repo root.
ROOT = str(Path(__file__).resolve().parents[2])  # (tests/support -> the repository)
if ROOT not in sys.path:
    sys.path.append(ROOT)

from aioprefork.asgi.lifespan import Lifespan  # noqa: E402
from aioprefork.config.model import HttpLimits  # noqa: E402
from aioprefork.http.stats import WorkerStats  # noqa: E402
from aioprefork.worker.server import WorkerServer  # noqa: E402

# Tests default to no access log (quiet), fast timeouts where a test does not set its own.
TEST_LIMITS = HttpLimits(access_log=False)


class ServerThread:
    """A WorkerServer serving `app` on its own loop in a thread; `port`, `stats`, `call()`."""

    def __init__(
        self,
        app: Any,
        limits: HttpLimits,
        *,
        lifespan: bool = False,
        unix_path: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.app = app
        self.limits = limits
        self.kwargs = kwargs
        self.lifespan = lifespan
        if unix_path is not None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.bind(unix_path)
            self.port = 0
        else:
            self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.sock.bind(("127.0.0.1", 0))
            self.port = self.sock.getsockname()[1]
        self.sock.listen(128)
        self.stats = WorkerStats()
        self.accepting_changes: list[bool] = []
        self.loop: asyncio.AbstractEventLoop | None = None
        self.server: WorkerServer | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> ServerThread:
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("server thread did not start")
        if self._error is not None:
            raise self._error
        return self

    def _run(self) -> None:
        loop = self.loop = uvloop.new_event_loop()
        asyncio.set_event_loop(loop)
        lifespan: Lifespan | None = None
        try:
            state = self.kwargs.pop("state", None)
            if self.lifespan:
                lifespan = Lifespan(self.app, "on")
                loop.run_until_complete(lifespan.startup())
                state = lifespan.state
            self.server = WorkerServer(
                self.app,
                self.limits,
                sockets=[self.sock],
                stats=self.stats,
                state=state,
                on_accepting_change=self.accepting_changes.append,
                **self.kwargs,
            )
            loop.run_until_complete(self.server.start())
        except BaseException as exc:
            self._error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self.server.abort()
            loop.run_until_complete(asyncio.sleep(0.01))
            if lifespan is not None:
                loop.run_until_complete(lifespan.shutdown())
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def call(self, fn: Callable[[], Any], timeout: float = 5.0) -> Any:
        """Run `fn` on the server's loop (a coroutine function is awaited) and return its result."""
        assert self.loop is not None

        async def runner() -> Any:
            result = fn()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self.loop).result(timeout)

    def stop(self) -> None:
        if self.loop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(10)
        self.sock.close()


def scope_recorder() -> tuple[Any, list[dict[str, Any]]]:
    """(app, scopes): an app that keeps every scope it is given and answers 200 (simple())."""
    seen: list[dict[str, Any]] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(scope)
        await simple()(scope, receive, send)

    return app, seen
