"""An app that writes to stderr directly at import (as tracebacks and stack dumps do)."""

from __future__ import annotations

import os
import sys
from typing import Any

print(f"straight to stderr from pid {os.getpid()}", file=sys.stderr, flush=True)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})
