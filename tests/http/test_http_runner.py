"""The eager app runner (asgi/host.AppHost): task semantics apps rely on, without a task per request."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from typing import Any

import anyio
import anyio.to_thread
from support.http_wire import Wire, simple, wait_for

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
    assert len(set(map(id, tasks))) == 1  # the first request too (see the next test)


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


def test_held_output_goes_out_as_soon_as_the_app_waits(serve: Any) -> None:
    """Writes of one step are held (corked), never past the step: a stream is not delayed."""
    gates = [asyncio.Event(), asyncio.Event()]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["path"] == "/warm":
            await simple()(scope, receive, send)
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await gates[0].wait()  # the eager step ends here
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await gates[1].wait()  # a step on the host task ends here
        await send({"type": "http.response.body", "body": b"last"})

    server = serve(app)
    with Wire(server.port, timeout=3) as wire:
        # (a connection's first request may run on a task of its own: warm the host up)
        wire.send(b"GET /warm HTTP/1.1\r\nHost: t\r\n\r\n")
        assert wire.read_response().status == 200
        wire.send(GET)
        wire._line()
        while b"first\r\n" not in wire.buf:
            assert wire._fill()
        server.call(gates[0].set)
        while b"second\r\n" not in wire.buf:
            assert wire._fill()
        server.call(gates[1].set)
        while b"last\r\n0\r\n\r\n" not in wire.buf:
            assert wire._fill()


def test_a_big_stream_in_one_step_is_flushed_in_bounded_pieces(serve: Any) -> None:
    """4 MiB sent in one step without a real wait: held bytes go out every 64 KiB and the
    transport's back-pressure still applies, so the client reads it all, in order."""
    piece = bytes(range(256)) * 256  # 64 KiB
    pieces = 64

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(pieces):
            await send(
                {"type": "http.response.body", "body": piece[i:] + piece[:i], "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    server = serve(app)
    with Wire(server.port) as wire:
        wire.send(GET)
        body = wire.read_response().body
    assert body == b"".join(piece[i:] + piece[:i] for i in range(pieces))


def test_the_connection_serves_on_after_apps_that_raise_after_their_response(
    serve: Any, caplog: Any
) -> None:
    """The runner that hosts a connection's apps outlives an app's exception (eager or after a
    wait), and runs an app that returns a plain awaitable instead of a coroutine."""

    class Awaitable:
        def __init__(self, coro: Any) -> None:
            self.coro = coro

        def __await__(self) -> Any:
            return self.coro.__await__()

    async def coroutine_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await simple(body=scope["path"].encode())(scope, receive, send)
        if scope["path"] == "/wait-raise":
            await asyncio.sleep(0)
        if scope["path"] != "/fine":
            raise RuntimeError(f"after {scope['path']}")

    def app(scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["path"] == "/awaitable":
            return Awaitable(coroutine_app(scope, receive, send))
        return coroutine_app(scope, receive, send)

    server = serve(app)
    paths = [b"/raise", b"/fine", b"/wait-raise", b"/awaitable", b"/raise", b"/fine"]
    with Wire(server.port) as wire:
        for path in paths:
            wire.send(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path)
            assert wire.read_response().body == path
    wait_for(lambda: len([r for r in caplog.records if "after /" in str(r.exc_info)]) == 4)


class _Transport(asyncio.Transport):
    """Just what HttpProtocol asks of a transport, recording what it writes."""

    def __init__(self) -> None:
        super().__init__()
        self.out: list[bytes] = []
        self.asked: list[str] = []  # get_extra_info names
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        self.asked.append(name)
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(name)

    def write(self, data: Any) -> None:
        self.out.append(bytes(data))

    def writelines(self, data: Any) -> None:
        self.out.extend(bytes(piece) for piece in data)

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0


def _protocol(app: Any, loop: asyncio.AbstractEventLoop, *, tls: bool = True) -> Any:
    from aioprefork.config.model import Config, HttpLimits
    from aioprefork.http.protocol import HttpProtocol, Shared
    from aioprefork.http.stats import WorkerStats

    limits = HttpLimits.from_config(Config())
    shared = Shared(
        app,
        limits,
        WorkerStats(),
        loop,
        state=None,
        opened=lambda p: None,
        closed=lambda p: None,
        tls=tls,
    )
    return HttpProtocol(shared)


def test_a_first_request_read_before_the_host_task_starts_runs_in_that_task() -> None:
    """uvloop often reads a new connection's first request in the loop turn that accepted it,
    before the host task's first step: that step then starts the app, inside the host task (no
    task of its own), and drives it to its end even when the client is gone by then."""
    seen: list[tuple[Any, int]] = []
    finished: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append((asyncio.current_task(), len(asyncio.all_tasks())))
        try:
            await asyncio.sleep(0)
            await simple()(scope, receive, send)  # raises ClientDisconnected once it is gone
        finally:
            finished.append(scope["path"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        protocol, transport = _protocol(app, loop), _Transport()

        def made_and_read(data: bytes) -> None:  # one loop callback, as uvloop may do
            protocol.connection_made(transport)
            protocol.data_received(data)

        loop.call_soon(made_and_read, b"GET /first HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        loop.call_soon(protocol.data_received, b"GET /second HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        assert finished == ["/first", "/second"]
        assert b"".join(transport.out).count(b"HTTP/1.1 200 OK") == 2
        host_task = seen[0][0]
        assert seen == [(host_task, 2), (host_task, 2)]  # this test's task and the host's

        before = len(asyncio.all_tasks())  # this test's task and the first connection's host
        gone, gone_transport = _protocol(app, loop), _Transport()

        def made_read_and_lost(data: bytes) -> None:
            gone.connection_made(gone_transport)
            gone.data_received(data)
            gone.connection_lost(None)

        loop.call_soon(made_read_and_lost, b"GET /gone HTTP/1.1\r\nHost: t\r\n\r\n")
        for _ in range(5):
            await asyncio.sleep(0)
        assert finished[-1] == "/gone"  # started, and driven to its end, after the client left
        assert seen[-1][0] is not host_task and seen[-1][1] == before + 1  # in its own host
        assert len(asyncio.all_tasks()) == before  # which is over now

    asyncio.run(main())


def _made_and_read(protocol: Any, transport: _Transport, data: bytes) -> None:
    """connection_made and data_received in one loop callback, as uvloop may do."""
    protocol.connection_made(transport)
    protocol.data_received(data)


def test_a_closing_connection_ends_its_host_task_with_its_last_app() -> None:
    """After a Connection: close response no request can follow, so the host task ends as
    soon as the app does, without parking for connection_lost to wake it; an app still running
    after its response is driven to its end first."""
    finished: list[str] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await simple()(scope, receive, send)
        if scope["path"] == "/after":
            await asyncio.sleep(0)  # background work after the response
        finished.append(scope["path"])

    async def main() -> None:
        loop = asyncio.get_running_loop()
        alone = len(asyncio.all_tasks())  # this test's task
        for path in ("/at-once", "/after"):
            protocol, transport = _protocol(app, loop), _Transport()

            request = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode()
            loop.call_soon(_made_and_read, protocol, transport, request)
            for _ in range(5):
                await asyncio.sleep(0)
            assert transport.closing and b"connection: close" in b"".join(transport.out)
            assert finished[-1] == path
            # connection_lost has not come yet, and no host task is left waiting for it
            assert len(asyncio.all_tasks()) == alone
            protocol.connection_lost(None)

    asyncio.run(main())


def test_only_a_tls_worker_asks_its_connections_for_an_ssl_object() -> None:
    """A worker with no TLS listener skips the lookup; one with TLS (the default) asks."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for tls in (False, True):
            protocol, transport = _protocol(simple(), loop, tls=tls), _Transport()
            protocol.connection_made(transport)
            assert ("ssl_object" in transport.asked) is tls
            assert sorted(set(transport.asked) - {"ssl_object"}) == ["peername", "sockname"]
            protocol.connection_lost(None)
            await asyncio.sleep(0)

    asyncio.run(main())
