"""The deployment tests' ASGI app: who the server says the client is, and slow responses.

/client        JSON {"client": host, "server": [host, port], "scheme": ..., "host": Host} from the scope
/slow?ms=N     answers after N milliseconds (an in-flight request to drain on stop)
/pid           the worker's pid (which generation answered)
anything else  "ok"
"""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any
from urllib.parse import parse_qs


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
    path = scope["path"]
    if path == "/client":
        client = scope.get("client")
        body = json.dumps(
            {
                "client": client[0] if client else None,
                "server": list(scope["server"]) if scope.get("server") else None,
                "scheme": scope["scheme"],
                "host": dict(scope["headers"]).get(b"host", b"").decode("latin-1"),
            }
        ).encode()
    elif path == "/slow":
        query = parse_qs(scope.get("query_string", b"").decode())
        await asyncio.sleep(int(query.get("ms", ["1000"])[0]) / 1000)
        body = b"slow done"
    elif path == "/pid":
        body = str(os.getpid()).encode()
    else:
        body = b"ok"
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
