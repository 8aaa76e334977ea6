"""Runs a connection's ASGI apps cheaply: eagerly inside data_received, on a task only once they wait.

Internal. `AppHost` runs each request's app coroutine eagerly, inside data_received, and only hands
it to a task when it actually suspends: a hello-world request costs no task and no loop
iteration. That task is one long-lived task per connection, so asyncio.current_task() is a real
Task during the eager step too (anyio cancel scopes, asyncio.timeout, FastAPI's threadpool), and
each request runs in its own copy of the contextvars context, as a task of its own would. A
request that arrives while the host is busy (an app still running after its response, or the
host not parked yet on a brand-new connection) gets an ordinary task instead.

Each synchronous step of an app runs with its cycle's output corked (asgi/cycle.AppCycle).
The apps themselves are stepped by asgi/runner's generators, which stay interpreted; this module
is compiled with mypyc (setup.py HOT_PATH), so the per-request bookkeeping around them is native.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import types
from asyncio import tasks as _tasks
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aioprefork.asgi.cycle import AppCycle
from aioprefork.asgi.types import ASGIApp
from aioprefork.http import runner

__all__ = ["AppHost"]

# Bound once: each is a C static in the compiled build, not a lookup per request.
_enter_task: Final = _tasks._enter_task
_leave_task: Final = _tasks._leave_task
_copy_context: Final = contextvars.copy_context
_run_in: Final = contextvars.Context.run  # (ctx.run(...) would look the method up each time)
_DONE: Final = runner.DONE
app_log: Final = logging.getLogger("aioprefork.app")  # request_timeout: the app's doing
SWALLOW_GRACE: Final = 1.0  # seconds a cancelled app has to end before it is reported
_Coroutine: Final = types.CoroutineType
_Failure: Final = runner.Failure


class AppHost:
    """Runs one connection's apps: eagerly first, then on one long-lived task when they wait.

    Requests on a connection run one after another, so one task can host them all. When a new
    request arrives while the host still runs an earlier app (background work after its
    response), the new one gets an ordinary task of its own.

    Each app runs inside one long-lived generator per connection (asgi/runner.run_apps): an
    app's end reaches us as a yielded value, not as a StopIteration per request.
    """

    __slots__ = (
        "_app",
        "_closed",
        "_first",
        "_loop",
        "_pending",
        "_runner",
        "_spare",
        "_started",
        "_step",
        "_task",
        "_wake",
    )

    def __init__(self, app: ASGIApp, loop: asyncio.AbstractEventLoop) -> None:
        self._app = app
        self._loop = loop
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Future[None] | None = None
        # (context, what the app yielded, cycle) of the app suspended in the runner
        self._pending: tuple[contextvars.Context, Any, AppCycle] | None = None
        self._runner: Any = runner.run_apps(app)
        self._runner.send(None)  # parked at its first yield, waiting for a cycle
        self._step: Callable[[Any], Any] = self._runner.send  # bound once
        # the apps run by tasks of their own: (cycle, the app's awaitable)
        self._spare: dict[asyncio.Task[None], tuple[AppCycle, Any]] = {}
        self._closed = False
        self._started = False  # the host task has taken its first step
        self._first: AppCycle | None = None  # for the host task to start at that first step

    def _outcome(self, cycle: AppCycle, yielded: Any) -> bool:
        """Report a finished app to its cycle; False while it is still running."""
        if yielded is _DONE:
            cycle.app_done(None)
            return True
        if type(yielded) is _Failure:
            exc: BaseException = yielded.exc
            cycle.app_done(exc)
            if not isinstance(exc, Exception):
                raise exc  # a cancellation, KeyboardInterrupt or SystemExit goes on up
            return True
        return False

    def start(self) -> None:
        """Create the host task (at connection_made): it must be parked before it can host."""
        if self._task is None:
            self._task = self._loop.create_task(self._serve())

    def run(self, cycle: AppCycle) -> None:
        """Start the app for `cycle`; returns when it finished or first suspended.

        Call it from a loop callback (data_received, call_soon), never from inside a task.
        """
        task = self._task
        if task is None or self._wake is None or self._pending is not None:
            if task is not None and not self._started and self._first is None:
                # The host task has not taken its first step (usually a connection's first
                # request, read in the loop iteration that accepted it): that step starts the
                # app, inside the task. Not eagerly here: a task cancelled before its first
                # step could not hand the cancellation to an app waiting in it. (A second
                # request before that step, HTTP/2 streams read together, gets its own task.)
                self._first = cycle
                return
            self._spawn(cycle)  # the host still runs an earlier app
            return
        ctx = _copy_context()
        _enter_task(self._loop, task)
        cycle.corked = True
        try:
            yielded = _run_in(ctx, self._step, cycle)
        finally:
            cycle.uncork()
            _leave_task(self._loop, task)
        if self._outcome(cycle, yielded):
            return
        self._pending = (ctx, yielded, cycle)
        wake = self._wake
        if wake is not None and not wake.done():
            wake.set_result(None)

    async def _serve(self) -> None:
        self._started = True
        try:
            first = self._first
            if first is not None:
                self._first = None
                ctx = _copy_context()
                first.corked = True
                try:
                    yielded = _run_in(ctx, self._step, first)  # as run() does, minus entering
                finally:
                    first.uncork()
                try:
                    if not self._outcome(first, yielded):
                        self._pending = (ctx, yielded, first)
                except BaseException:
                    return  # the app ended on a cancellation or exit, reported: stop hosting
            # (an app still running is driven to its end even when the connection has closed)
            while self._pending is not None or not self._closed:
                pending = self._pending
                exc: BaseException | None = None
                if pending is None:
                    wake = self._wake = self._loop.create_future()
                    try:
                        await wake
                    except asyncio.CancelledError as cancelled:
                        if self._pending is None:
                            return
                        exc = cancelled  # the app cancelled its own (host) task: deliver it
                    finally:
                        self._wake = None
                    pending = self._pending
                    if pending is None:
                        continue
                ctx, yielded, cycle = pending
                try:
                    outcome = await runner.drive(self._runner, ctx, yielded, exc, cycle)
                    self._pending = None
                    self._outcome(cycle, outcome)
                except BaseException:
                    self._pending = None
                    return  # the app ended on a cancellation or exit, reported: stop hosting
        finally:
            # The task's coroutine holds this host and the host holds the task: drop our side so
            # that a closed connection is freed by refcounting, not by the cyclic GC.
            self._task = None

    def _spawn(self, cycle: AppCycle) -> None:
        ctx = _copy_context()
        try:
            app = _run_in(ctx, self._app, cycle.scope, cycle.receive, cycle.send)
        except BaseException as exc:  # the app's call itself failed: nothing to await
            cycle.app_done(exc)
            if not isinstance(exc, Exception):
                raise
            return
        task = self._loop.create_task(self._run_task(cycle, app), context=ctx)
        self._spare[task] = (cycle, app)
        task.add_done_callback(self._forget_spare)

    def _forget_spare(self, task: asyncio.Task[None]) -> None:
        entry = self._spare.pop(task, None)
        if entry is not None and type(entry[1]) is _Coroutine:
            entry[1].close()  # cancelled before its first step: never awaited, and no warning

    async def _run_task(self, cycle: AppCycle, app: Awaitable[None]) -> None:
        try:
            await app
        except BaseException as exc:
            cycle.app_done(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            cycle.app_done(None)

    def close(self) -> None:
        """No request will follow (the connection is closing or gone): let running apps
        finish, then let the host task end."""
        self._closed = True
        wake = self._wake
        if wake is not None and not wake.done() and self._pending is None:
            # woken, the parked host sees _closed and returns: no CancelledError and traceback
            # to make and unwind on every connection's close
            wake.set_result(None)

    def stacks(self) -> str:
        """Where this connection's apps wait now (request_timeout's report), one per task."""
        stacks = [runner.await_stack(task, runs) for task, runs in self.hosted()]
        return "".join(stacks) or "  (no app task is waiting)\n"

    def report_timeout(self, cycle: AppCycle, timeout: float, client: str, over: str) -> None:
        """request_timeout passed for `cycle`: log its request and where its app waits, once;
        then (watch_cancelled) whether the cancelled app really ends."""
        app_log.error(
            "request_timeout (%gs): %s %s from %s%s; its app was cancelled, waiting at:\n%s",
            timeout, cycle.method, cycle.target.decode("latin-1"), client, over,
            self.stacks().rstrip(),
        )  # fmt: skip

    def watch_cancelled(self, cycle: AppCycle) -> None:
        """Report an app still running SWALLOW_GRACE after its cancellation (it swallowed it)."""
        self._loop.call_later(SWALLOW_GRACE, _report_swallowed, cycle)

    def hosted(self) -> list[tuple[asyncio.Task[None], object]]:
        """Each live task of this connection with what it runs, for stack reports (`ctl dump`,
        request_timeout): their coroutines are compiled in the default build, unwalkable."""
        pairs: list[tuple[asyncio.Task[None], object]] = []
        if self._task is not None and not self._task.done():
            pairs.append((self._task, self._runner))
        pairs.extend((task, app) for task, (_, app) in self._spare.items() if not task.done())
        return pairs

    def cancel_one(self, cycle: AppCycle) -> bool:
        """Cancel `cycle`'s app alone (an HTTP/2 stream's request_timeout): the others of the
        connection go on. False when it is not running here (finished, or not started)."""
        if self._first is cycle:
            self._first = None  # never started: nothing to cancel
            return False
        pending = self._pending
        if pending is not None and pending[2] is cycle and self._task is not None:
            self._task.cancel()  # the host task drives this app alone
            return True
        for task, (spare, _) in self._spare.items():
            if spare is cycle:
                task.cancel()
                return True
        return False

    def cancel(self) -> None:
        """Immediate stop: cancel every app still running for this connection."""
        self._closed = True
        self._first = None  # never started: nothing to cancel
        if self._task is not None:
            self._task.cancel()
        for task in list(self._spare):
            task.cancel()


def _report_swallowed(cycle: AppCycle) -> None:
    if not cycle.finished:
        app_log.error(
            "request_timeout: the app of %s %s swallowed its cancellation and still runs "
            "(let asyncio.CancelledError propagate); the worker goes on serving",
            cycle.method, cycle.target.decode("latin-1"),
        )  # fmt: skip
