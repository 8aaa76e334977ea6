"""Every state a connection passes through is in http/connstate.py's LEGAL table.

Real HttpProtocol objects on a real event loop, fed bytes from loop callbacks (as uvloop calls
them), answering through a small ASGI app into a transport that keeps what is written. After
every callback and loop iteration the (parser state, phase, deadline) triple is sampled.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Any

import pytest

from aioprefork.asgi.types import Receive, Scope, Send
from aioprefork.config.model import Config, HttpLimits
from aioprefork.http import connstate
from aioprefork.http.connstate import LEGAL, describe
from aioprefork.http.protocol import HttpProtocol, Shared
from aioprefork.http.stats import WorkerStats

H = b"Host: x\r\n"
WS = (
    b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


class Transport:
    """The transport side of one connection: keeps writes, closes when told."""

    def __init__(self, unsent: int = 0) -> None:
        self.closing = False
        self.written: list[bytes] = []
        self.unsent = unsent  # what get_write_buffer_size reports

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))

    def writelines(self, pieces: Any) -> None:
        self.written.extend(bytes(piece) for piece in pieces)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        extra = {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}
        return extra.get(name, default)

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...

    def set_protocol(self, protocol: Any) -> None: ...

    def is_reading(self) -> bool:
        return True

    def get_protocol(self) -> Any:
        return None


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(0.05)
    if scope["path"] == "/read":
        while (await receive()).get("more_body"):
            pass
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


Step = bytes | float | str  # bytes to feed; seconds to wait; "shutdown" or "lost"


async def lifecycle(steps: list[Step], unsent: int = 0, **limits: Any) -> set[tuple[int, str, int]]:
    loop = asyncio.get_running_loop()
    base = HttpLimits.from_config(Config())
    shared = Shared(
        app,
        dataclasses.replace(base, access_log=False, **limits),
        WorkerStats(),
        loop,
        state={},
        opened=lambda p: None,
        closed=lambda p: None,
        tls=False,
    )
    protocol, transport = HttpProtocol(shared), Transport(unsent)
    seen: set[tuple[int, str, int]] = set()

    def sample() -> None:
        deadline = protocol._deadline_kind if protocol._deadline else connstate.NONE
        seen.add((protocol._state, protocol.phase, deadline))

    async def in_callback(action: Callable[[], object]) -> None:
        done = loop.create_future()

        def run() -> None:
            action()
            sample()
            done.set_result(None)

        loop.call_soon(run)
        await done

    await in_callback(lambda: protocol.connection_made(transport))  # type: ignore[arg-type]
    for step in [*steps, 0.05]:
        if isinstance(step, float):
            for _ in range(int(step * 100)):
                await asyncio.sleep(0.01)
                sample()
            continue
        if step == "shutdown":
            await in_callback(protocol.shutdown)
        elif step == "lost":
            await in_callback(lambda: protocol.connection_lost(None))
        else:
            assert isinstance(step, bytes)
            await in_callback(lambda data=step: protocol.data_received(data))  # type: ignore[misc]
        for _ in range(5):
            await asyncio.sleep(0)
            sample()
    return seen


LIFECYCLES: dict[str, tuple[list[Step], dict[str, Any]]] = {
    "one request": ([b"GET / HTTP/1.1\r\n" + H + b"\r\n"], {}),
    "head in two reads": ([b"GET / HTTP/1.1\r\n", H + b"\r\n"], {}),
    "body in two reads": (
        [b"POST /read HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nab", b"cd"],
        {},
    ),
    "body never read": ([b"POST /slow HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nab", 0.1], {}),
    "pipelined": (
        [
            b"GET /slow HTTP/1.1\r\n"
            + H
            + b"\r\nPOST /read HTTP/1.1\r\n"
            + H
            + b"Content-Length: 2\r\n\r\nab"
            + b"GET /",
            0.1,
            b" HTTP/1.1\r\n" + H + b"\r\n",
            0.1,
        ],
        {},
    ),
    "smuggling refused": (
        [b"GET / HTTP/1.1\r\n" + H + b"Content-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"],
        {},
    ),
    "refused behind a running request": (
        [b"GET /slow HTTP/1.1\r\n" + H + b"\r\nGET /#x HTTP/1.1\r\n" + H + b"\r\n", 0.1],
        {},
    ),
    "connection: close": ([b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"], {}),
    "close with unsent bytes": (
        [b"GET / HTTP/1.1\r\n" + H + b"Connection: close\r\n\r\n"],
        {"unsent": 1},
    ),
    "graceful stop while the app runs": (
        [b"GET /slow HTTP/1.1\r\n" + H + b"\r\n", "shutdown", 0.1],
        {},
    ),
    "graceful stop while reading a body": (
        [b"POST /slow HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nab", "shutdown", 0.1],
        {},
    ),
    "graceful stop while idle": (["shutdown", 0.05], {}),
    "header timeout": ([b"GET /", 0.3], {"header_timeout": 0.1}),
    "body timeout": (
        [b"POST /slow HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nab", 0.3],
        {"body_timeout": 0.1},
    ),
    "keep-alive timeout": ([b"GET / HTTP/1.1\r\n" + H + b"\r\n", 0.3], {"keepalive_timeout": 0.1}),
    "upgrade": ([b"GET / HTTP/1.1\r\n" + H + WS], {}),
    "lost while idle": ([b"GET / HTTP/1.1\r\n" + H + b"\r\n", "lost"], {}),
    "lost mid-body": (
        [b"POST /slow HTTP/1.1\r\n" + H + b"Content-Length: 4\r\n\r\nab", "lost"],
        {},
    ),
}


@pytest.mark.parametrize("name", sorted(LIFECYCLES))
async def test_every_observed_state_is_legal(name: str) -> None:
    steps, options = LIFECYCLES[name]
    unsent = int(options.get("unsent", 0))
    limits = {k: v for k, v in options.items() if k != "unsent"}
    seen = await lifecycle(steps, unsent, **limits)
    illegal = sorted(describe(*key) for key in seen - LEGAL.keys())
    assert not illegal, f"{name}: states missing from http/connstate.py LEGAL: {illegal}"


async def test_the_table_has_no_row_that_no_lifecycle_reaches() -> None:
    seen: set[tuple[int, str, int]] = set()
    for steps, options in LIFECYCLES.values():
        unsent = int(options.get("unsent", 0))
        limits = {k: v for k, v in options.items() if k != "unsent"}
        seen |= await lifecycle(steps, unsent, **limits)
    unreached = sorted(describe(*key) for key in LEGAL.keys() - seen)
    assert not unreached, (
        f"rows of LEGAL no lifecycle reaches (add one, or drop the row): {unreached}"
    )
