"""An app that uses prometheus_client the ordinary way, served by a real aioprefork in the tests."""

from __future__ import annotations

from typing import Any

from prometheus_client import Counter, Gauge

HITS = Counter("demo_hits", "Requests the demo app answered", ["path"])
ALIVE = Gauge("demo_workers_alive", "Workers that imported the app", multiprocess_mode="livesum")
ALIVE.set(1)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            kind = message["type"].rsplit(".", 1)[-1]
            await send({"type": f"lifespan.{kind}.complete"})
            if kind == "shutdown":
                return
    if scope["type"] != "http":
        return
    HITS.labels(scope["path"] if scope["path"] in ("/a", "/b") else "other").inc()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"ok"})
