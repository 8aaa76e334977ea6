"""The in-process server fixture: a real WorkerServer on 127.0.0.1:0 in a background thread.

Each server runs its own uvloop loop in a daemon thread, on a socket this process bound and
listens on (as the master would), so tests talk to it over real loopback sockets with raw bytes,
httpx or anything else. Every server is stopped (aborted, loop closed) in teardown. A conftest
makes `serve` available to its folder with `from support.serving import serve`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from support.http_wire import TEST_LIMITS, ServerThread

__all__ = ["TEST_LIMITS", "ServerThread", "serve"]


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
