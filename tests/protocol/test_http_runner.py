"""The eager app runner (asgi/http.AppHost): task semantics apps rely on, without a task per request."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import anyio
import anyio.to_thread
from http_wire import Wire, simple, wait_for

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="unset")


def test_current_task_is_a_task_before_the_first_await(serve: Any) -> None:
    seen: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(asyncio.current_task())
        await simple()(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        for _ in range(2):
            wire.send(GET)
            assert wire.read_response().status == 200
    assert all(isinstance(task, asyncio.Task) for task in seen)


def test_anyio_thread_and_cancel_scopes_work(serve: Any) -> None:
    """What FastAPI does: sync endpoints in a thread, timeouts via cancel scopes."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        name = await anyio.to_thread.run_sync(lambda: threading.current_thread().name)
        with anyio.move_on_after(0.05) as moved:
            await anyio.sleep(5)
        async with asyncio.timeout(1):
            await asyncio.sleep(0)
        body = f"{name != threading.main_thread().name} {moved.cancelled_caught}".encode()
        await simple(body=body)(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        for _ in range(2):
            wire.send(GET)
            assert wire.read_response().body == b"True True"


def test_each_request_has_its_own_context(serve: Any) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        before = request_id.get()
        request_id.set(scope["path"])
        if scope["path"] == "/sleep":
            await asyncio.sleep(0.01)
        after = request_id.get()
        await simple(body=f"{before} {after}".encode())(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        for path in (b"/a", b"/sleep", b"/b"):
            wire.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
            assert wire.read_response().body == b"unset " + path


def test_app_keeps_running_after_its_response_while_the_next_request_is_served(serve: Any) -> None:
    done: list[str] = []
    release = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await simple(body=scope["path"].encode())(scope, receive, send)
        if scope["path"] == "/background":
            await release.wait()  # background work after the response (Starlette BackgroundTasks)
        done.append(scope["path"])

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(b"GET /background HTTP/1.1\r\nHost: t\r\n\r\n")
        assert wire.read_response().body == b"/background"
        wire.send(b"GET /next HTTP/1.1\r\nHost: t\r\n\r\n")
        assert wire.read_response().body == b"/next"
        assert done == ["/next"]
        server.call(release.set)
        wait_for(lambda: done == ["/next", "/background"])


def test_suspending_apps_share_one_host_task_per_connection(serve: Any) -> None:
    tasks: list[Any] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(0)
        tasks.append(asyncio.current_task())
        await simple()(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        for _ in range(5):
            wire.send(GET)
            assert wire.read_response().status == 200
    # (the first request may run on a task of its own: the host parks on the loop's next turn)
    assert len(set(map(id, tasks[1:]))) == 1


def test_app_cancelling_its_own_task_during_the_eager_step(serve: Any) -> None:
    outcome: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        task = asyncio.current_task()
        assert task is not None
        task.cancel()
        try:
            await asyncio.sleep(1)
        except asyncio.CancelledError:
            task.uncancel()
            outcome.append("cancelled")
        await simple()(scope, receive, send)

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(GET)
        assert wire.read_response().status == 200
        wire.send(GET)
        assert wire.read_response().status == 200
    assert outcome == ["cancelled", "cancelled"]
