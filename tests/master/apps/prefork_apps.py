"""ASGI apps the master's process tests serve (imported by workers with --app-dir tests/master/apps).

/            "ok <pid>"
/sleep?s=X   answers after an asyncio sleep of X seconds (in-flight work for drains and load steps)
/block?s=X   blocks the worker's event loop with time.sleep (a hung worker)
/crash?how=segv|exit   kills its own worker (a segfaulting C extension, os._exit in a library)
/leak?mib=N  keeps N MiB more for ever (a leaking endpoint)
`failing_lifespan` fails its lifespan startup; `hanging_lifespan` never finishes it.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from typing import Any
from urllib.parse import parse_qs

_LEAKED: list[bytearray] = []


async def _reply(send: Any, body: bytes, status: int = 200) -> None:
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


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
    seconds = float(query.get("s", ["0"])[0])
    if scope["path"] == "/sleep":
        await asyncio.sleep(seconds)
    elif scope["path"] == "/block":
        time.sleep(seconds)
    elif scope["path"] == "/crash":
        if query.get("how", ["segv"])[0] == "exit":
            os._exit(1)
        os.kill(os.getpid(), signal.SIGSEGV)
    elif scope["path"] == "/leak":
        _LEAKED.append(bytearray(os.urandom(1)) * (int(query.get("mib", ["1"])[0]) << 20))
    await _reply(send, b"ok %d" % os.getpid())


async def failing_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
        return
    await _reply(send, b"never")


async def flaky_boot(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Boots while the file named by $FLAKY_BOOT_MARKER is absent (a dependency that goes away)."""
    if scope["type"] == "lifespan" and os.path.exists(os.environ["FLAKY_BOOT_MARKER"]):
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "dependency down"})
        return
    await app(scope, receive, send)


async def hanging_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await asyncio.sleep(3600)
    await _reply(send, b"never")


async def raising_lifespan(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Its lifespan startup raises (a database that is down): a traceback, in every worker."""
    if scope["type"] == "lifespan":
        await receive()
        raise ConnectionRefusedError("db:5432 refused the connection")
    await _reply(send, b"never")
