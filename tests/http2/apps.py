"""ASGI apps the HTTP/2 tests serve, one per path."""

from __future__ import annotations

import asyncio
from typing import Any

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """/ hello; /echo the body; /wait 1 s then hello; /big 100 KiB; /trailers; /scope."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/wait":
        await asyncio.sleep(1.0)
    body = b""
    if path in ("/echo", "/count"):
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/count":
            body = b"%d" % len(body)
    elif path == "/big":
        body = b"x" * (100 * 1024)
    elif path == "/scope":
        body = repr(
            {k: v for k, v in scope.items() if k not in ("asgi", "state", "extensions")}
        ).encode()
    elif path == "/trailers":
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/plain")],
                "trailers": True,
            }
        )
        await send({"type": "http.response.body", "body": b"data", "more_body": False})
        await send(
            {
                "type": "http.response.trailers",
                "headers": [(b"grpc-status", b"0")],
                "more_trailers": False,
            }
        )
        return
    else:
        body = b"hello"
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain")],
        }
    )
    await send({"type": "http.response.body", "body": body})
