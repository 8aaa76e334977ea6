"""What stalls a worker's loop: examples/hello.py wrapped with a loop-lag probe and a GC log.

    AIOPREFORK_TAIL_PROBE=/tmp/probe.json aioprefork serve bench.tail_probe:app --workers 1 ...

Between lifespan start-up and shutdown it records every loop stall over 2 ms (a 1 ms sleep that
overslept), every cyclic-GC collection (generation, objects, duration), and the time of every new
connection's first request (a client port not seen before): enough to tell whether a latency
spike under wrk comes with a burst of reconnects, a full collection, or neither (the machine).
The record is written as JSON at shutdown.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from typing import Any

from examples.hello import app as hello

_clock = time.perf_counter
_log: dict[str, list[Any]] = {"stalls": [], "gc": [], "new_connections": []}
_seen: set[int] = set()
_gc_started = [0.0]


def _on_gc(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_started[0] = _clock()
    else:
        took = _clock() - _gc_started[0]
        _log["gc"].append((_gc_started[0], info["generation"], info["collected"], took))


async def _monitor() -> None:
    while True:
        began = _clock()
        await asyncio.sleep(0.001)
        late = _clock() - began - 0.001
        if late > 0.002:
            _log["stalls"].append((began, late))


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "http":
        port = scope["client"][1] if scope.get("client") else 0
        if port not in _seen:
            _seen.add(port)
            _log["new_connections"].append(_clock())
        await hello(scope, receive, send)
        return
    if scope["type"] == "lifespan":
        task = None
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                gc.callbacks.append(_on_gc)
                task = asyncio.ensure_future(_monitor())
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if task is not None:
                    task.cancel()
                path = os.environ.get("AIOPREFORK_TAIL_PROBE")
                if path:
                    with open(f"{path}.{os.getpid()}", "w") as f:
                        json.dump(_log, f)
                await send({"type": "lifespan.shutdown.complete"})
                return
