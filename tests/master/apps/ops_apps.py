"""Apps for the operator-feature tests (tests/master/test_sdnotify.py and friends).

/env?k=NAME   the worker's value of environment variable NAME ("-" when unset)
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import parse_qs


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    query = parse_qs(scope.get("query_string", b"").decode())
    body = b"ok"
    if scope["path"] == "/env":
        body = os.environ.get(query["k"][0], "-").encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})
