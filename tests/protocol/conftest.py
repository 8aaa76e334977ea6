"""Fixtures for the HTTP protocol tests: a real WorkerServer on 127.0.0.1:0 in a background thread.

Each server runs its own uvloop loop in a daemon thread, on a socket this process bound and
listens on (as the master would), so tests talk to it over real loopback sockets with raw bytes,
httpx or anything else. Every server is stopped (aborted, loop closed) in teardown.
"""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import uvloop

from aioprefork.asgi.lifespan import Lifespan
from aioprefork.config.model import HttpLimits
from aioprefork.worker.server import WorkerServer
from aioprefork.worker.stats import WorkerStats

# The bundled examples (examples/hello.py, examples/starlette_app.py) import from the repo root.
ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:
    sys.path.append(ROOT)

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


@pytest.fixture
def serve() -> Iterator[Callable[..., ServerThread]]:
    """serve(app, **limits) -> a started ServerThread; `server_kwargs=` go to WorkerServer."""
    servers: list[ServerThread] = []

    def start(
        app: Any, *, server_kwargs: dict[str, Any] | None = None, **limits: Any
    ) -> ServerThread:
        lifespan = bool(limits.pop("lifespan", False))
        unix_path = limits.pop("unix_path", None)
        config = dataclasses.replace(TEST_LIMITS, **limits)
        server = ServerThread(
            app, config, lifespan=lifespan, unix_path=unix_path, **(server_kwargs or {})
        )
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()
