"""ASGI apps the WebSocket tests serve, one behaviour per path (also loaded by `aioprefork serve`)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

Receive = Any
Send = Any

# What the apps saw, for assertions from the test thread (in-process servers only).
SEEN: list[dict[str, Any]] = []


def _jsonable(scope: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in scope.items() if k not in ("headers", "state", "raw_path")}
    out["headers"] = [[k.decode(), v.decode()] for k, v in scope["headers"]]
    out["raw_path"] = scope["raw_path"].decode()
    out["query_string"] = scope["query_string"].decode()
    out["extensions"] = sorted(scope.get("extensions", {}))
    out["tls"] = scope.get("extensions", {}).get("tls")
    return out


async def echo(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            SEEN.append(message)
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


async def scope_app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": scope["subprotocols"][-1] if scope["subprotocols"] else None,
            "headers": [(b"x-app", b"yes")],
        }
    )
    await send({"type": "websocket.send", "text": json.dumps(_jsonable(scope))})
    await receive()


async def deny(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send(
        {
            "type": "websocket.http.response.start",
            "status": 401,
            "headers": [(b"content-type", b"text/plain"), (b"www-authenticate", b"Basic")],
        }
    )
    await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
    await send({"type": "websocket.http.response.body", "body": b"entry"})


async def close_early(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.close"})


async def raise_early(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    raise RuntimeError("boom before accept (expected by the test)")


async def raise_late(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await receive()
    raise RuntimeError("boom after accept (expected by the test)")


async def return_late(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "bye"})


async def server_close(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.close", "code": 4001, "reason": "done here"})
    SEEN.append(await receive())  # the disconnect once the client answered
    try:
        await send({"type": "websocket.send", "text": "too late"})
    except OSError as exc:
        SEEN.append({"raised": type(exc).__name__})


async def lazy(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Accepts, then does not read until told to: the queue limit must pause reading."""
    await receive()
    await send({"type": "websocket.accept"})
    await asyncio.sleep(0.5)
    count = 0
    while (await receive())["type"] == "websocket.receive":
        count += 1
        if count == 200:
            await send({"type": "websocket.send", "text": str(count)})


async def talk_then_wait(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    """Sends one message, then waits: a graceful stop must deliver it before the 1001 close."""
    await receive()
    await send({"type": "websocket.accept"})
    await send({"type": "websocket.send", "text": "in flight"})
    SEEN.append(await receive())


ROUTES = {
    "/echo": echo,
    "/scope": scope_app,
    "/deny": deny,
    "/close-early": close_early,
    "/raise-early": raise_early,
    "/raise-late": raise_late,
    "/return-late": return_late,
    "/server-close": server_close,
    "/lazy": lazy,
    "/talk": talk_then_wait,
}


async def app(scope: dict[str, Any], receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "http":
        body = json.dumps(_jsonable(scope)).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    await ROUTES[scope["path"]](scope, receive, send)
