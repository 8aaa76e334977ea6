"""Per-request cost of the HTTP + ASGI path alone, in process: no sockets, no kernel, no wrk.

A real protocol object (aioprefork's HttpProtocol, or uvicorn's HttpToolsProtocol for comparison)
is fed the same request bytes N times from loop callbacks, answering through examples/hello.py into
a transport that only counts writes. What it measures is the Python (or mypyc-compiled) work per
request, which bench/run.py cannot separate from the kernel's. Two ways:

    .venv/bin/python bench/micro.py hello                 # microseconds per request (noisy)
    .venv/bin/python bench/micro.py hello --callgrind     # instructions per request (exact)
    .venv/bin/python bench/micro.py hello --access-log --callgrind  # with the access log on

`--callgrind` runs this script twice under valgrind (N and N + 10,000 requests) and divides the
difference: the count is the same on a loaded machine, so it compares two builds or two commits
reliably. `--server uvicorn` measures uvicorn's protocol the same way. PYTHONPATH=build/compiled
measures the mypyc build (make compiled). The `close` scenario measures whole connections instead
(made, one Connection: close request, lost; N and N + 2,000 of them under --callgrind).

`--app examples.frameworks:fastapi_app` (or any module:attribute) serves another app, e.g. a
framework's (hello = GET /, json = GET /json). `--server floor` calls the app directly, no HTTP
at all: one coroutine awaiting app(scope, receive, send) per request with a prebuilt scope, the
framework's own in-process floor, which bounds what any server can reach with it.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import importlib
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import uvloop

ROOT: Final = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

from examples.hello import app as hello_app  # noqa: E402

app: Any = hello_app  # --app replaces it


def load_app(spec: str) -> Any:
    module, _, attribute = spec.partition(":")
    return getattr(importlib.import_module(module), attribute or "app")


HOST: Final = b"Host: 127.0.0.1:8000\r\n"
REQUESTS: Final = {
    "hello": b"GET / HTTP/1.1\r\n" + HOST + b"\r\n",
    "json": b"GET /json HTTP/1.1\r\n" + HOST + b"\r\n",
    "echo": b"POST /echo HTTP/1.1\r\n" + HOST + b"Content-Length: 1024\r\n\r\n" + b"a" * 1024,
    "stream": b"GET /stream HTTP/1.1\r\n" + HOST + b"\r\n",
    "close": b"GET / HTTP/1.1\r\n" + HOST + b"Connection: close\r\n\r\n",  # a connection each
    "browser": (
        b"GET /json HTTP/1.1\r\nHost: example.com\r\n"
        b"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:120.0) Gecko/20100101 Firefox/120.0\r\n"
        b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
        b"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n"
        b"Connection: keep-alive\r\nCookie: session=abcdef0123456789\r\n\r\n"
    ),
}
WARMUP: Final = 2000


class CountingTransport:
    """Just enough of an asyncio transport: counts writes, never blocks, never closes."""

    def __init__(self) -> None:
        self.writes = 0
        self.closing = False

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...
    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def get_write_buffer_size(self) -> int:
        return 0

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None: ...


def protocol_factory(
    server: str, loop: asyncio.AbstractEventLoop, access_log: bool = False
) -> Callable[[], Any]:
    """A new connection's protocol for `server`, per call; what they share is built once.

    `access_log`: aioprefork writes its access line per request (combined format) through a
    real logging handler into /dev/null, so the cost of formatting and emitting it is counted.
    """
    if server == "raw":
        from bench.raw_server import Canned, RawProtocol

        canned = Canned()
        return lambda: RawProtocol(canned)
    if server == "aioprefork":
        from aioprefork.config.model import Config, HttpLimits
        from aioprefork.http.protocol import HttpProtocol, Shared
        from aioprefork.http.stats import WorkerStats

        limits = dataclasses.replace(
            HttpLimits.from_config(Config()), access_log=access_log, max_keepalive_requests=0
        )
        if access_log:
            _access_to_devnull()
        shared = Shared(
            app,
            limits,
            WorkerStats(),
            loop,
            state={},
            opened=lambda p: None,
            closed=lambda p: None,
            tls=False,  # a plain-HTTP worker, as WorkerServer builds it without TLS
        )
        return lambda: HttpProtocol(shared)
    from uvicorn.config import Config as UvicornConfig
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    from uvicorn.server import ServerState

    config = UvicornConfig(app, access_log=False, lifespan="off")
    config.load()
    state = ServerState()
    return lambda: HttpToolsProtocol(config=config, server_state=state, app_state={}, _loop=loop)


def _access_to_devnull() -> None:
    access = logging.getLogger("aioprefork.access")
    access.handlers.clear()
    handler = logging.StreamHandler(open(os.devnull, "w"))  # noqa: SIM115 (the process's life)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access.addHandler(handler)
    access.setLevel(logging.INFO)
    access.propagate = False


async def drive(server: str, data: bytes, n: int, access_log: bool = False) -> tuple[float, int]:
    """Feed `data` n times (after a warm-up), one request per loop callback; (seconds, writes)."""
    loop = asyncio.get_running_loop()
    protocol = protocol_factory(server, loop, access_log)()
    transport = CountingTransport()
    protocol.connection_made(transport)
    await asyncio.sleep(0)
    for _ in range(WARMUP):
        loop.call_soon(protocol.data_received, data)
        await asyncio.sleep(0)
    done = loop.create_future()
    left = n

    def step() -> None:
        nonlocal left
        protocol.data_received(data)
        left -= 1
        if left:
            loop.call_soon(step)
        else:
            done.set_result(None)

    start = time.perf_counter()
    loop.call_soon(step)
    await done
    return time.perf_counter() - start, transport.writes


async def drive_floor(data: bytes, n: int) -> tuple[float, int]:
    """The app alone: n awaits of app(scope, receive, send) in one coroutine, the scope a fresh
    copy of one built for the request line in `data` (GET only); (seconds, send calls)."""
    path = data.split(b" ", 2)[1].decode()
    template: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 50000),
        "scheme": "http",
        "method": "GET",
        "root_path": "",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1:8000")],
        "state": {},
    }
    sends = 0
    request: dict[str, Any] = {"type": "http.request", "body": b"", "more_body": False}

    async def receive() -> dict[str, Any]:
        return request

    async def send(message: dict[str, Any]) -> None:
        nonlocal sends
        sends += 1

    for _ in range(WARMUP):
        await app(dict(template, state={}), receive, send)
    sends = 0
    start = time.perf_counter()
    for _ in range(n):
        await app(dict(template, state={}), receive, send)
    return time.perf_counter() - start, sends


async def drive_connections(server: str, data: bytes, n: int) -> tuple[float, int]:
    """n connections (after a warm-up), one request each: made and read in one loop callback
    (as uvloop usually reads a new connection's first request), then lost; (seconds, writes)."""
    loop = asyncio.get_running_loop()
    new_protocol = protocol_factory(server, loop)
    writes = 0

    async def one() -> None:
        nonlocal writes
        protocol, transport = new_protocol(), CountingTransport()

        def made_and_read() -> None:
            protocol.connection_made(transport)
            protocol.data_received(data)

        loop.call_soon(made_and_read)
        for _ in range(3):  # the response, then the close
            await asyncio.sleep(0)
        loop.call_soon(protocol.connection_lost, None)
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        writes += transport.writes

    for _ in range(WARMUP // 10):
        await one()
    writes = 0
    start = time.perf_counter()
    for _ in range(n):
        await one()
    return time.perf_counter() - start, writes


def instructions(argv: list[str], n: int) -> int:
    out = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv, "-n", str(n)],
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    found = re.search(r"Collected : (\d+)", out)
    if found is None:
        raise SystemExit(f"no callgrind total in:\n{out[-2000:]}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("scenario", choices=sorted(REQUESTS))
    parser.add_argument(
        "--server", choices=("aioprefork", "uvicorn", "raw", "floor"), default="aioprefork"
    )
    parser.add_argument("--app", default="", help="module:attribute (default examples.hello:app)")
    parser.add_argument("-n", type=int, default=100_000, help="requests measured")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument(
        "--access-log", action="store_true", help="aioprefork logs each request (to /dev/null)"
    )
    parser.add_argument(
        "--extra",
        type=int,
        default=10_000,
        help="--callgrind: requests in the second run beyond "
        "the first's (default 10,000; 2,000 is plenty for a framework app)",
    )
    args = parser.parse_args()
    per_connection = args.scenario == "close"
    global app
    if args.app:
        app = load_app(args.app)
    if args.callgrind:
        argv = [sys.executable, __file__, args.scenario, "--server", args.server]
        if args.access_log:
            argv.append("--access-log")
        argv += ["--app", args.app] if args.app else []
        low, extra = (1000, 2000) if per_connection else (2000, args.extra)
        counts = instructions(argv, low), instructions(argv, low + extra)
        print(
            f"{args.server} {args.scenario}{' (access log)' if args.access_log else ''}: "
            f"{(counts[1] - counts[0]) / extra:,.0f} "
            f"instructions/{'connection' if per_connection else 'request'}"
        )
        return
    if args.server == "floor":
        seconds, writes = uvloop.run(drive_floor(REQUESTS[args.scenario], args.n))
        total = args.n
    elif per_connection:
        seconds, writes = uvloop.run(drive_connections(args.server, REQUESTS["close"], args.n))
        total = args.n
    else:
        seconds, writes = uvloop.run(
            drive(args.server, REQUESTS[args.scenario], args.n, args.access_log)
        )
        total = args.n + WARMUP
    print(
        f"{args.server} {args.scenario}: {seconds / args.n * 1e6:.2f} us/request "
        f"({writes / total:.2f} writes/request)"
    )


if __name__ == "__main__":
    main()
