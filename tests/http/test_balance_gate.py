"""WorkerServer balancing against siblings on a LoadBoard, over real sockets.

The "siblings" are slots of the board this test writes; the server under test is slot 0.
A sibling's heartbeat is set a minute ahead, so it stays fresh for the whole test, and its
gate is open (it accepts) unless a test shuts it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from support.http_wire import Wire, wait_for

from aioprefork.channel.board import LoadBoard
from aioprefork.http.protocol import HttpProtocol
from aioprefork.worker.balance import STALE_MS, Balance, now_ms
from examples.hello import app as hello

pytestmark = pytest.mark.timeout(20)

GET = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n"


def _sibling(
    board: LoadBoard, slot: int, count: int, *, fresh: bool = True, accepting: bool = True
) -> None:
    board.counts[slot] = count
    board.gates[slot] = accepting
    board.beats[slot] = now_ms() + 60_000 if fresh else now_ms() - 4 * STALE_MS


@pytest.fixture
def board() -> LoadBoard:
    return LoadBoard(4)


def _serve(serve: Any, board: LoadBoard, **limits: Any) -> Any:
    balance = Balance(board, slot=0, slots=4)
    return serve(hello, server_kwargs={"balance": balance}, **limits)


def _connect(port: int, count: int) -> Iterator[socket.socket]:
    for _ in range(count):
        yield socket.create_connection(("127.0.0.1", port), timeout=5)


def test_the_gate_shuts_above_the_least_loaded_sibling_and_opens_when_it_catches_up(
    serve: Any, board: LoadBoard
) -> None:
    _sibling(board, 1, 0)
    _sibling(board, 2, 9)
    server = _serve(serve, board)
    assert board.beats[0] > 0 and board.gates[0] == 1  # our heartbeat and open gate
    socks = list(_connect(server.port, 2))  # least (0) + slack (1) = 1: the second shuts it
    try:
        wait_for(lambda: board.counts[0] == 2 and not server.server.listening)
        # Shut for balance, not full: the master still counts this worker's room as idle.
        assert server.server.accepting and server.accepting_changes == [True]
        assert board.gates[0] == 0
        _sibling(board, 1, 4)  # the sibling caught up: the next paused re-assessment reopens
        wait_for(lambda: server.server.listening and board.gates[0] == 1, timeout=2)
    finally:
        for sock in socks:
            sock.close()
    wait_for(lambda: board.counts[0] == 0)


def test_a_stale_withdrawn_or_shut_sibling_holds_nobody_back(serve: Any, board: LoadBoard) -> None:
    _sibling(board, 1, 0, fresh=False)  # its loop is stuck (or it died): not counted
    _sibling(board, 2, 0)
    board.clear(2)  # stopped taking connections
    _sibling(board, 3, 0, accepting=False)  # shut its gate: it would not take the next ones
    server = _serve(serve, board)
    socks = list(_connect(server.port, 6))
    try:
        for sock in socks:
            sock.sendall(GET)
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert server.server.listening and server.accepting_changes == [True]
    finally:
        for sock in socks:
            sock.close()


def test_connections_beyond_the_fair_share_close_after_their_next_response(
    serve: Any, board: LoadBoard
) -> None:
    _sibling(board, 1, 100)  # busy sibling: we take all 8
    server = _serve(serve, board, max_keepalive_requests=0)
    wires = [Wire(server.port) for _ in range(8)]
    try:
        for wire in wires:
            wire.send(GET)
            assert not wire.read_response().has(b"connection")
        wait_for(lambda: board.counts[0] == 8)
        _sibling(board, 1, 0)  # it emptied: mean 4 + slack 1 leaves us 3 too many
        wait_for(lambda: not server.server.listening, timeout=2)
        closing = 0
        for wire in wires:
            wire.send(GET)
            response = wire.read_response()
            assert response.status == 200
            if response.header(b"connection") == b"close":
                closing += 1
                assert wire.closed()
        assert closing == 3 == server.stats.handed_back_total
        wait_for(lambda: board.counts[0] == 5)
    finally:
        for wire in wires:
            wire.close()


def test_a_retired_connection_answers_in_flight_work_then_closes(serve: Any) -> None:
    server = serve(hello, max_keepalive_requests=0)
    with Wire(server.port) as wire:
        wire.send(GET)
        assert wire.read_response().status == 200
        assert len(server.stats.connections) == 1

        def retire_all() -> None:
            for conn in list(server.stats.connections):
                assert isinstance(conn, HttpProtocol)
                conn.retire()

        server.call(retire_all)
        wire.send(GET)
        assert wire.read_response().header(b"connection") == b"close"
        assert wire.closed()


def test_stopping_withdraws_from_the_board(serve: Any, board: LoadBoard) -> None:
    server = _serve(serve, board)
    assert board.beats[0] > 0
    server.call(lambda: server.server.shutdown(None))
    assert board.beats[0] == 0 and board.counts[0] == 0
