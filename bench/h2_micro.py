"""Per-stream cost of the HTTP/2 engine alone, in process: no sockets, no kernel, no h2load.

One H2Connection (aioprefork/http/h2/connection.py) is fed N request streams in batches of 10
HEADERS frames (what h2load -m10 sends), answering through examples/hello.py into a transport
that only counts writes. Under callgrind the instruction count is the same on a loaded machine:

    PYTHONPATH=build/compiled PYTHONHASHSEED=0 valgrind --tool=callgrind \\
        --callgrind-out-file=/dev/null .venv/bin/python bench/h2_micro.py 5000
    (the same with 15000; the difference / 10000 is instructions per stream)

Without valgrind it prints microseconds per stream (noisy).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hpack
import uvloop

sys.path.append(str(Path(__file__).resolve().parent.parent))

from aioprefork.config.model import HttpLimits
from aioprefork.http.h2 import frames as f
from aioprefork.http.h2.connection import H2Connection
from aioprefork.http.protocol import Shared
from aioprefork.http.stats import WorkerStats
from examples.hello import app

REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":path", b"/"),
    (b":authority", b"127.0.0.1:8000"),
    (b"user-agent", b"h2load nghttp2/1.52.0"),
]


class CountingTransport:
    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def writelines(self, data: Any) -> None:
        self.writes += 1

    def is_closing(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default

    def close(self) -> None:
        pass


async def main(n: int) -> None:
    loop = asyncio.get_running_loop()
    limits = HttpLimits(access_log=False)
    assert limits.http2 is not None
    shared = Shared(
        app, limits, WorkerStats(), loop, state=None, opened=print, closed=print, tls=False
    )
    shared.opened = shared.closed = lambda conn: None
    template = dict(shared.scope_base, server=("127.0.0.1", 8000), client=("127.0.0.1", 1234))
    conn = H2Connection(shared, limits.http2, template, {}, False, True)
    transport = CountingTransport()

    async def call(fn: Callable[[], Any]) -> Any:
        """Run fn from a loop callback (as data_received runs), not inside a task."""
        done: asyncio.Future[Any] = loop.create_future()
        loop.call_soon(lambda: done.set_result(fn()))
        return await done

    await call(lambda: conn.connection_made(transport))  # type: ignore[arg-type]
    encoder = hpack.Encoder()
    first = bytes(encoder.encode(REQUEST))
    indexed = bytes(encoder.encode(REQUEST))  # every field from the dynamic table now
    await call(lambda: conn.data_received(f.settings([]) + f.frame(f.HEADERS, 5, 1, first)))
    await asyncio.sleep(0.01)
    sid = 3

    def batch() -> bytes:
        nonlocal sid
        out = b""
        for _ in range(10):
            out += f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, sid, indexed)
            sid += 2
        return out + f.window_update(0, 1000)

    warm = [batch() for _ in range(200)]
    batches = [batch() for _ in range(n // 10)]

    def feed(chunks: list[bytes]) -> float:
        began = time.perf_counter()
        for chunk in chunks:
            conn.data_received(chunk)
        return time.perf_counter() - began

    await call(lambda: feed(warm))
    spent = await call(lambda: feed(batches))
    print(f"{spent / n * 1e6:.2f} us per stream ({transport.writes} writes)")


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 20000))
