"""Apps for the operator-feature tests (tests/master/test_sdnotify.py and friends).

/env?k=NAME   the worker's value of environment variable NAME ("-" when unset)
/block?s=X    blocks the event loop in time.sleep (inside `hold_the_loop`, for stall reports)
/wait?s=X     awaits asyncio.sleep inside `awaiting_the_database` (a task for ctl dump to show)
/master       the pid of the worker's parent (which master forked it)
/swallow?s=X  sleeps X seconds and swallows a cancellation meanwhile (a misbehaving app)
/stream?s=X   streams 5 chunks over X seconds (a response already under way)

Importing it fails while the file named by $OPS_BREAK_FLAG exists (an upgrade that cannot boot).
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any
from urllib.parse import parse_qs

if os.path.exists(os.environ.get("OPS_BREAK_FLAG", "/nonexistent/flag")):
    raise RuntimeError("the new code is broken")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    body = b"ok"
    if scope["path"] == "/env":
        body = os.environ.get(query["k"][0], "-").encode()
    elif scope["path"] == "/block":
        hold_the_loop(float(query["s"][0]))
    elif scope["path"] == "/master":
        body = str(os.getppid()).encode()
    elif scope["path"] == "/swallow":
        await swallow_cancellation(float(query["s"][0]))
    elif scope["path"] == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(5):
            await send({"type": "http.response.body", "body": b"%d" % i, "more_body": True})
            await asyncio.sleep(float(query["s"][0]) / 5)
        await send({"type": "http.response.body", "body": b""})
        return
    elif scope["path"] == "/wait":
        await awaiting_the_database(float(query["s"][0]))
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def hold_the_loop(seconds: float) -> None:
    time.sleep(seconds)


async def awaiting_the_database(seconds: float) -> None:
    await asyncio.sleep(seconds)


async def swallow_cancellation(seconds: float) -> None:
    end = asyncio.get_running_loop().time() + seconds
    while (left := end - asyncio.get_running_loop().time()) > 0:
        try:
            await asyncio.sleep(left)
        except asyncio.CancelledError:
            continue  # the wrong thing to do
