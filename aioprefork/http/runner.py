"""The interpreted half of asgi/host: the generators that step a connection's app coroutines.

Internal. `run_apps` is one long-lived generator per connection: each cycle sent into it runs its
app to the end with `yield from`, so the app's end comes back as a yielded `DONE` (or a
`Failure`), never as the StopIteration that stepping a coroutine directly raises (an exception
object and a traceback per request). Whatever the app yields (a future, or None for sleep(0))
passes through to whoever steps the runner, and what is thrown in (a cancellation) reaches the
app. `drive` continues a suspended runner inside the connection's host task.

Not compiled with mypyc (setup.py HOT_PATH): these are types.coroutine generators delegating to
arbitrary coroutines, which mypyc cannot build; http/host.py, which calls them, is compiled.
"""

from __future__ import annotations

import asyncio
import contextvars
import traceback
import types
from collections.abc import Awaitable, Callable, Generator, Iterator
from types import FrameType
from typing import Any, Final

__all__ = ["DONE", "Failure", "await_stack", "drive", "run_apps", "stepped_by"]

DONE: Final = object()  # yielded by the runner: the app returned


class Failure:
    """Yielded by the runner: the app raised `exc` (an app cannot yield one of these)."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


async def _await(awaitable: Awaitable[None]) -> None:
    await awaitable


@types.coroutine
def run_apps(app: Callable[..., Any]) -> Generator[Any, Any, None]:
    """Run the app of each cycle sent in; yield DONE or a Failure when it ends."""
    cycle: Any = yield None  # a RequestCycle; None while parked between requests
    while True:
        try:
            coro: Any = app(cycle.scope, cycle.receive, cycle.send)
            if type(coro) is types.CoroutineType:
                yield from coro  # type: ignore[misc]  # allowed: this is a types.coroutine
            else:
                yield from _await(coro)
        except GeneratorExit:
            raise
        except BaseException as exc:
            coro = cycle = None  # hold nothing of a finished request while parked
            cycle = yield Failure(exc)
        else:
            coro = cycle = None
            cycle = yield DONE


@types.coroutine
def drive(
    runner: Generator[Any, Any, None],
    ctx: contextvars.Context,
    yielded: Any,
    exc: BaseException | None,
    cycle: Any,
) -> Generator[Any, None, Any]:
    """Step `runner`, suspended outside any task, from inside the host task until its app ends.

    Each step runs under the request's context with `cycle`'s output corked; what the app yields
    is yielded to the task, what is thrown into the task goes to the app. Returns DONE or the
    Failure the runner yielded.
    """
    while True:
        if exc is None:
            try:
                yield yielded
            except BaseException as error:
                exc = error
        cycle.corked = True
        try:
            if exc is None:
                yielded = ctx.run(runner.send, None)
            else:
                pending, exc = exc, None
                yielded = ctx.run(runner.throw, pending)
        finally:
            cycle.uncork()
        if yielded is DONE or type(yielded) is Failure:
            return yielded


def stepped_by(awaited: object) -> object | None:
    """The runner a suspended `drive` steps, for stack dumps (worker/stacks.py): the app it
    runs is reached through the runner's `yield from`, not through the task's await chain."""
    if getattr(awaited, "gi_code", None) is not drive.__code__:
        return None
    frame = getattr(awaited, "gi_frame", None)
    return None if frame is None else frame.f_locals.get("runner")


STACK_LIMIT: Final = 30  # frames per stack in dumps and timeout reports


def _await_chain(awaitable: object) -> Iterator[FrameType]:
    """The frames a suspended coroutine waits in, outermost first (Task.get_stack gives only
    the first: an app's await chain, down to the sleep or the read, is what an operator needs)."""
    depth = 0
    while awaitable is not None and depth < STACK_LIMIT:
        frame = getattr(awaitable, "cr_frame", None) or getattr(awaitable, "gi_frame", None)
        if frame is None:
            return
        yield frame
        depth += 1
        inner = getattr(awaitable, "cr_await", None) or getattr(awaitable, "gi_yieldfrom", None)
        awaitable = inner if inner is not None else stepped_by(awaitable)


def await_stack(task: asyncio.Task[Any], runs: object = None) -> str:
    """Where `task` waits, as traceback lines, down into the app its connection host drives.

    `runs`: what the task runs (a connection's runner generator, or one app's awaitable), where
    the walk begins when the task's own coroutine is compiled: a mypyc coroutine has no frame or
    cr_await to follow (AppHost.hosted gives it)."""
    lines: list[str] = []
    start: object = task.get_coro()
    walkable = getattr(start, "cr_frame", None) or getattr(start, "gi_frame", None)
    if runs is not None and walkable is None:
        start = runs
    for frame in _await_chain(start):
        summary = traceback.StackSummary.extract([(frame, frame.f_lineno)], lookup_lines=True)
        lines.extend(summary.format())
    return "".join(lines)
