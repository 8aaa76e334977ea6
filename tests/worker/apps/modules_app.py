"""An ASGI app that answers GET / with its worker's pid and the names in its sys.modules (JSON).

A forked worker's sys.modules is what the master had imported when it forked, plus what the
worker imported since: tests/worker/test_memory.py reads it to see what every worker carries.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return  # lifespan: returning says "unsupported", which --lifespan auto accepts
    body = json.dumps({"pid": os.getpid(), "modules": sorted(sys.modules)}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
