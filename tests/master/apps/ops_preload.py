"""An app whose import is slow and leaves a mark: tests/master/test_preload.py tells from the
mark which process imported it (the master with preload, each worker without)."""

from __future__ import annotations

import os
import time
from typing import Any

IMPORTED_BY = os.getpid()
time.sleep(float(os.environ.get("IMPORT_SECONDS", "0")))
BALLAST = [bytes([i % 256]) * 1024 for i in range(8 * 1024)]  # 8 MiB, shared when preloaded
if os.environ.get("BREAK_IMPORT"):
    raise KeyError("DATABASE_URL")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    body = f"imported by {IMPORTED_BY}, serving in {os.getpid()}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
