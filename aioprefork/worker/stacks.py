"""`ctl dump`: every thread's and every asyncio task's stack in a live worker, as text.

Runs on the worker's loop when the master relays a Dump, so it answers only while the loop
turns (a blocked loop is worker/stalls.py's subject, which logs the stack that holds it). Tasks
waiting at the same place are shown once with their count, so a worker holding 10,000
keep-alive connections answers in a few lines, not 10,000 stacks; the text is cut at `limit`.
"""

from __future__ import annotations

import asyncio
import collections
import sys
import threading
import traceback
from collections.abc import Iterable, Mapping

from aioprefork.http import runner
from aioprefork.http.runner import STACK_LIMIT


def _task_stack(task: asyncio.Task[object], runs: object) -> str:
    return runner.await_stack(task, runs) or "    (not started or finished)\n"


def hosted_by(connections: Iterable[object]) -> dict[asyncio.Task[object], object]:
    """What each connection's app tasks run (AppHost.hosted), asked only for a dump."""
    hosted: dict[asyncio.Task[object], object] = {}
    for conn in connections:
        tasks = getattr(conn, "hosted_tasks", None)
        if tasks is not None:
            hosted.update(tasks())
    return hosted


def live_stacks(limit: int, hosted: Mapping[asyncio.Task[object], object] | None = None) -> str:
    """Threads first (the loop's own thread among them), then tasks grouped by stack;
    `hosted`: what the connections' (compiled) tasks run, where their walks begin."""
    names = {t.ident: t.name for t in threading.enumerate()}
    loop_thread = threading.get_ident()
    parts: list[str] = []
    for ident, frame in sys._current_frames().items():
        role = " (event loop; this dump)" if ident == loop_thread else ""
        parts.append(f"Thread {names.get(ident, '?')} [{ident}]{role}:\n")
        parts.append("".join(traceback.format_stack(frame, limit=STACK_LIMIT)))
    groups: collections.Counter[str] = collections.Counter()
    example: dict[str, str] = {}
    tasks = asyncio.all_tasks()
    for task in tasks:
        stack = _task_stack(task, hosted.get(task) if hosted else None)
        groups[stack] += 1
        coro = task.get_coro()
        example.setdefault(stack, getattr(coro, "__qualname__", repr(coro)))
    parts.append(f"\n{len(tasks)} asyncio tasks, {len(groups)} distinct stacks:\n")
    for stack, count in groups.most_common():
        parts.append(f"{count} x task {example[stack]}:\n{stack}")
    text = "".join(parts)
    if len(text) > limit:
        text = text[:limit] + f"\n... cut at {limit} characters\n"
    return text
