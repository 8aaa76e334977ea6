"""The benchmark scenarios: one request shape each, against the bundled app examples/hello.py,
or against a framework app (examples/frameworks.py: FastAPI and Starlette, bench extra).

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
    app: str = "examples.hello:app"  # what every server serves for this scenario
    framework: bool = False  # a framework app: the raw ceiling has no answer for it


FRAMEWORK_JSON: Final = b'{"message":"Hello, world!"}'


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
    *(
        Scenario(
            name=f"{framework}-{kind}",
            path=path,
            description=f"{label}: GET {path}, {what}",
            expected_body=body,
            app=f"examples.frameworks:{framework}_app",
            framework=True,
        )
        for framework, label in (("fastapi", "FastAPI"), ("starlette", "Starlette"))
        for kind, path, what, body in (
            ("text", "/", "a plain-text route", b"Hello, world!"),
            ("json", "/json", "a JSON route", FRAMEWORK_JSON),
        )
    ),
)
BY_NAME: Final = {s.name: s for s in SCENARIOS}
# The default set: the server's own scenarios; the framework ones are asked for by name
# (--scenarios fastapi-json,...) or all at once with --scenarios frameworks.
DEFAULT: Final = tuple(s.name for s in SCENARIOS if not s.framework)
FRAMEWORKS: Final = tuple(s.name for s in SCENARIOS if s.framework)


def select(names: str) -> tuple[Scenario, ...]:
    """`"hello,json"` -> those scenarios in the given order; unknown names raise ValueError."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    chosen = [m for n in chosen for m in (FRAMEWORKS if n == "frameworks" else (n,))]
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        raise ValueError(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(BY_NAME)}")
    return tuple(BY_NAME[n] for n in chosen)
