"""The bundled example: a plain ASGI 3 app with no framework (`make run` serves it).

/            13-byte text ("Hello, world!")
/json        a small JSON document
/echo        echoes the request body (POST)
/stream      a 10-chunk streamed response
/big         a 64 KiB response
"""

from __future__ import annotations

import json
from typing import Any

HELLO = b"Hello, world!"
JSON_BODY = json.dumps({"message": "Hello, world!", "server": "aioprefork"}).encode()
BIG = b"x" * 65536
TEXT = [(b"content-type", b"text/plain; charset=utf-8")]


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
    if path == "/json":
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(JSON_BODY)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": JSON_BODY})
    elif path == "/echo":
        body = bytearray()
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % len(body)),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": bytes(body)})
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": TEXT})
        for i in range(10):
            await send({"type": "http.response.body", "body": b"chunk %d\n" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/big":
        headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"65536")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": BIG})
    else:
        headers = [*TEXT, (b"content-length", b"13")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": HELLO})
