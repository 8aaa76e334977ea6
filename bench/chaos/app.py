"""The app the chaos suite serves (bench/chaos/run.py, `--app-dir bench/chaos`).

/            "ok <pid>"
/crash       kills its own worker: SIGSEGV (a segfaulting C extension), or os._exit with ?how=exit
/leak?mib=N  keeps N MiB more for ever (an endpoint that leaks)
/sleep?s=X   answers after an asyncio sleep of X seconds (in-flight work for drains)
/echo        reads the whole request body first (what a slow body attack holds up)
/big?kib=N   answers N KiB (what a slow reader leaves buffered)
"""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any
from urllib.parse import parse_qs

_LEAKED: list[bytearray] = []


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    path = scope["path"]
    if path == "/crash":
        if query.get("how", ["segv"])[0] == "exit":
            os._exit(1)
        os.kill(os.getpid(), signal.SIGSEGV)
    elif path == "/leak":
        _LEAKED.append(bytearray(os.urandom(1)) * (int(query.get("mib", ["1"])[0]) << 20))
    elif path == "/sleep":
        await asyncio.sleep(float(query.get("s", ["0"])[0]))
    body = b"ok %d" % os.getpid()
    if path == "/echo":
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False) and message["type"] == "http.request"
    elif path == "/big":
        body = b"x" * (int(query.get("kib", ["64"])[0]) << 10)
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
