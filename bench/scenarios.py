"""The benchmark scenarios: one request shape each, against the bundled app examples/hello.py.

Pure data. Each scenario names the path wrk loads, the wrk Lua script that shapes the request (if
any), and the exact body a correct server returns, which the harness checks once per run before
measuring: a fast wrong answer must not count.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Final

HERE: Final = Path(__file__).resolve().parent
ECHO_BODY: Final = b"x" * 1024  # must match bench/post_1k.lua


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    path: str
    description: str
    expected_body: bytes
    method: str = "GET"
    request_body: bytes = b""
    lua: Path | None = None  # wrk -s script
    headers: tuple[str, ...] = ()  # wrk -H, one each


SCENARIOS: Final[tuple[Scenario, ...]] = (
    Scenario(
        name="hello",
        path="/",
        description="GET /, 13-byte text",
        expected_body=b"Hello, world!",
    ),
    Scenario(
        name="json",
        path="/json",
        description="GET /json, small JSON",
        expected_body=json.dumps({"message": "Hello, world!", "server": "aioprefork"}).encode(),
    ),
    Scenario(
        name="echo",
        path="/echo",
        description="POST /echo, 1 KiB body echoed",
        expected_body=ECHO_BODY,
        method="POST",
        request_body=ECHO_BODY,
        lua=HERE / "post_1k.lua",
    ),
    Scenario(
        name="stream",
        path="/stream",
        description="GET /stream, 10-chunk streamed response",
        expected_body=b"".join(b"chunk %d\n" % i for i in range(10)),
    ),
    Scenario(
        name="big",
        path="/big",
        description="GET /big, 64 KiB response",
        expected_body=b"x" * 65536,
    ),
    Scenario(
        name="close",
        path="/",
        description="GET / with Connection: close, a new connection per request",
        expected_body=b"Hello, world!",
        headers=("Connection: close",),
    ),
)
BY_NAME: Final = {s.name: s for s in SCENARIOS}


def select(names: str) -> tuple[Scenario, ...]:
    """`"hello,json"` -> those scenarios in the given order; unknown names raise ValueError."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return tuple(BY_NAME[n] for n in chosen)
