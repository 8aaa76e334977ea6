"""WorkerServer.retire(): a recycled worker (max_requests, max_worker_memory) stops accepting at
once, keeps serving its open connections with keep-alive ended, and accepts again only if no
replacement took over in time (a replacement that cannot boot must not become an outage)."""

from __future__ import annotations

import socket
import time
from typing import Any

from support.http_wire import wait_for

from examples.hello import app as hello

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def test_a_retired_worker_stops_accepting_ends_keep_alive_then_reopens(serve: Any) -> None:
    server = serve(hello)
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as held:
        held.sendall(REQUEST)
        assert b"200 OK" in held.recv(65536)
        wait_for(lambda: server.stats.accepted_total == 1)
        server.call(lambda: server.server.retire(reopen_after=1.0))
        retired_at = time.monotonic()
        assert not server.server.listening and not server.server.accepting
        held.sendall(REQUEST)  # the open connection is served once more, then closed
        answer = b""
        while chunk := held.recv(65536):
            answer += chunk
        assert b"200 OK" in answer and b"connection: close" in answer.lower()
    wait_for(lambda: server.server.listening, timeout=5)  # no replacement took over: reopen
    assert 0.9 <= time.monotonic() - retired_at < 5.0
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as fresh:
        fresh.sendall(REQUEST)
        assert b"200 OK" in fresh.recv(65536)
