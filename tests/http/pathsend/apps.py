"""Apps the pathsend tests serve: pathsend, zerocopysend (chunked, ranged) and Starlette's FileResponse."""

from __future__ import annotations

import os
from typing import Any

from starlette.responses import FileResponse


def _file() -> str:
    return os.environ["AIOPREFORK_TEST_FILE"]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/starlette":
        await FileResponse(_file())(scope, receive, send)
        return
    if path == "/extensions":
        body = ",".join(sorted(scope.get("extensions", {}))).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if path == "/pathsend":
        size = os.stat(_file()).st_size
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"application/octet-stream")]
                + ([(b"content-length", b"%d" % size)] if scope["query_string"] else []),
            }
        )
        await send({"type": "http.response.pathsend", "path": _file()})
        return
    if path == "/zerocopy":  # two ranges of the file, then a trailer of plain bytes: chunked
        await send({"type": "http.response.start", "status": 200, "headers": []})
        with open(_file(), "rb") as file:
            await send(
                {
                    "type": "http.response.zerocopysend",
                    "file": file,
                    "offset": 10,
                    "count": 100,
                    "more_body": True,
                }
            )
            file.seek(1000)
            await send(
                {"type": "http.response.zerocopysend", "file": file, "count": 50, "more_body": True}
            )
        await send({"type": "http.response.body", "body": b"END"})
        return
    if path == "/missing":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.pathsend", "path": "/nonexistent/file"})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})
