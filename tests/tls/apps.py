"""The app the TLS process tests serve: the scope as JSON, a WebSocket echo, a file by pathsend."""

from __future__ import annotations

import json
import os
from typing import Any


def _report(scope: dict[str, Any]) -> bytes:
    extensions = scope.get("extensions") or {}
    return json.dumps(
        {
            "type": scope["type"],
            "scheme": scope["scheme"],
            "extensions": sorted(extensions),
            "tls": extensions.get("tls"),
        }
    ).encode()


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.send", "bytes": _report(scope)})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})
        return
    if scope["path"] == "/file":
        path = os.environ["AIOPREFORK_TEST_FILE"]
        size = os.stat(path).st_size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-length", b"%d" % size)],
            }
        )
        await send({"type": "http.response.pathsend", "path": path})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": _report(scope)})
