"""A worker takes a burst of new connections ACCEPT_FAN a loop turn, not one, and opening its
listeners never makes the socket that every worker shares blocking.

libuv accepts one connection per listener per loop turn; with a single listener, a busy loop drained
the clients that reconnect together after max_keepalive_requests one per turn, and their first
requests waited ~150 ms in the kernel's queue (the p99 at 256 connections). Here the loop is held
while a burst connects and sends; once it runs again, the burst's requests must all arrive in the
same loop turn (counted by a callback that re-arms itself every turn).
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

from aioprefork.worker.server import ACCEPT_FAN, _dup_listener

REQUEST = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"
HOLD = b"GET /hold HTTP/1.1\r\nHost: t\r\n\r\n"


def _read_response(sock: socket.socket) -> bytes:
    answer = b""
    while not answer.endswith(b"ok"):
        chunk = sock.recv(65536)
        assert chunk, f"closed after {answer!r}"
        answer += chunk
    return answer


def _burst_while_held(
    port: int, count: int, holder: socket.socket, burst_sent: threading.Event
) -> None:
    """While the app on `holder` holds the loop: `count` clients connect and send a request;
    then the loop is let go, and every one of them must be answered 200."""
    burst = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(count)]
    try:
        for sock in burst:
            sock.sendall(REQUEST)
        burst_sent.set()
        assert b"200 OK" in _read_response(holder)
        for sock in burst:
            assert b"200 OK" in _read_response(sock)
    finally:
        for sock in burst:
            sock.close()


def test_a_burst_of_connections_is_accepted_several_a_turn(serve: Any) -> None:
    holding, burst_sent = threading.Event(), threading.Event()
    turn = [0]
    arrived_in_turn: list[int] = []
    ticking = [True]

    def tick() -> None:
        turn[0] += 1
        if ticking[0]:
            asyncio.get_running_loop().call_soon(tick)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            asyncio.get_running_loop().call_soon(tick)
            holding.set()
            burst_sent.wait(10)  # blocks the loop on purpose: the burst queues in the kernel
        else:
            arrived_in_turn.append(turn[0])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(app)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as holder:
        holder.sendall(HOLD)
        assert holding.wait(10)
        try:
            _burst_while_held(server.port, ACCEPT_FAN, holder, burst_sent)
        finally:
            ticking[0] = False
    assert ACCEPT_FAN > 1
    assert len(arrived_in_turn) == ACCEPT_FAN
    # one listener would have spread them over ACCEPT_FAN consecutive turns
    assert len(set(arrived_in_turn)) == 1, arrived_in_turn


def test_a_listener_is_duplicated_without_making_the_shared_socket_blocking() -> None:
    """The gate takes new descriptors of the listening socket each time it opens. socket.dup()
    cleared O_NONBLOCK on the file description that the master and every worker share (it
    re-applies the object's timeout, None here as in the master); a sibling's accept() that found
    the queue empty then blocked its loop until the next client connected (3 s stalls under
    max_requests_per_worker recycling, with four listeners a worker)."""
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen(8)
        os.set_blocking(listening.fileno(), False)  # as uvloop leaves it; the object says blocking
        assert listening.gettimeout() is None
        for _ in range(ACCEPT_FAN):
            with _dup_listener(listening) as dup:
                assert os.get_blocking(listening.fileno()) is False
                assert dup.getsockname() == listening.getsockname()
        assert os.get_blocking(listening.fileno()) is False
        with listening.dup():  # what the gate used to do
            assert os.get_blocking(listening.fileno()) is True


def test_connections_taken_in_the_turn_the_gate_shut_are_served_not_cut(serve: Any) -> None:
    """At worker_connections the gate shuts, but the other listeners' accepts of that same loop
    turn have already happened: those clients are served, not cut as "the slowest" (a load
    step on a small pool saw connection resets from exactly this)."""
    holding, burst_sent = threading.Event(), threading.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            holding.set()
            burst_sent.wait(10)  # blocks the loop: the burst queues in the kernel
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = serve(app, server_kwargs={"worker_connections": 1})
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as holder:
        holder.sendall(b"GET /hold HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        assert holding.wait(10)
        _burst_while_held(server.port, ACCEPT_FAN - 1, holder, burst_sent)  # a reset raises
    assert not any(server.stats.shed.values()), server.stats.shed  # nobody was cut
