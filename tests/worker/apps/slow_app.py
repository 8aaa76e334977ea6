"""The slow-client tests' app: a quick answer, an upload reader, a big response made per request.

/upload   reads the whole body, answers its size
/big?mb=N answers N MiB (default 2), a fresh buffer per request (as a rendered page or a file
          read into memory is): what a client that stops reading makes the worker hold
anything else  "ok"
"""

from __future__ import annotations

from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/upload":
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = str(size).encode()
    elif scope["path"] == "/big":
        query = scope["query_string"].decode()
        mb = int(query[3:]) if query.startswith("mb=") else 2
        body = bytes(mb * 1024 * 1024)
    else:
        body = b"ok"
    headers = [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
