"""channel/endpoint.py over a real socketpair, on asyncio and on uvloop."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from aioprefork.channel.codec import encode
from aioprefork.channel.endpoint import PeerGone, open_master_end, open_worker_end
from aioprefork.channel.messages import Ready, Status, Stop, ToMaster
from aioprefork.errors import ProtocolViolation

LOOPS = {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(params=LOOPS)
def run(request: pytest.FixtureRequest) -> Callable[[Coroutine[Any, Any, None]], None]:
    """Run a coroutine on a fresh loop of each kind (the master uses asyncio, workers uvloop)."""

    def runner(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param]) as r:
            r.run(coro)

    return runner


async def _send_and_iterate_until_eof() -> None:
    a, b = socket.socketpair()
    left, right = await open_worker_end(a), await open_master_end(b)
    sent: list[ToMaster] = [
        Ready(pid=1, slot=0, gen=1),
        *(Status(accepting=True, requests_total=i) for i in range(50)),
    ]
    for msg in sent:
        left.send(msg)
    await left.drain()
    left.close()
    got = [msg async for msg in right]
    assert got == sent
    assert right.closed
    with pytest.raises(PeerGone):
        await right.recv()
    with pytest.raises(PeerGone):
        right.send(Stop())
    right.close()


async def _peer_closing_wakes_a_waiting_reader() -> None:
    a, b = socket.socketpair()
    left, right = await open_worker_end(a), await open_master_end(b)
    reader = asyncio.ensure_future(right.recv())
    await asyncio.sleep(0.01)
    assert not reader.done()
    left.close()
    with pytest.raises(PeerGone):
        await reader
    right.close()


async def _garbage_is_a_protocol_violation() -> None:
    a, b = socket.socketpair()
    right = await open_worker_end(b)
    a.sendall(encode(Stop()))
    assert await right.recv() == Stop()
    a.sendall(b"\x00" * 16)
    with pytest.raises(ProtocolViolation):
        await right.recv()
    a.close()
    right.close()


async def _a_message_of_the_wrong_direction_is_a_protocol_violation() -> None:
    a, b = socket.socketpair()
    master = await open_master_end(b)
    a.sendall(encode(Ready(pid=1, slot=0, gen=1)) + encode(Stop()))  # Stop only goes to workers
    assert await master.recv() == Ready(pid=1, slot=0, gen=1)
    with pytest.raises(ProtocolViolation, match="Stop does not travel this way"):
        await master.recv()
    assert master.closed
    a.close()


async def _large_burst_is_delivered_whole() -> None:
    a, b = socket.socketpair()
    left, right = await open_worker_end(a), await open_master_end(b)
    big = Status(accepting=True, rejected=tuple((f"reason-{i}", i) for i in range(3000)))
    for _ in range(20):
        left.send(big)
    await left.drain()
    for _ in range(20):
        assert await right.recv() == big
    left.close()
    right.close()


@pytest.mark.timeout(5)
def test_send_and_iterate_until_eof(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    run(_send_and_iterate_until_eof())


@pytest.mark.timeout(5)
def test_peer_closing_wakes_a_waiting_reader(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_peer_closing_wakes_a_waiting_reader())


@pytest.mark.timeout(5)
def test_garbage_is_a_protocol_violation(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    run(_garbage_is_a_protocol_violation())


@pytest.mark.timeout(5)
def test_large_burst_is_delivered_whole(run: Callable[[Coroutine[Any, Any, None]], None]) -> None:
    run(_large_burst_is_delivered_whole())


@pytest.mark.timeout(5)
def test_a_message_of_the_wrong_direction_is_a_protocol_violation(
    run: Callable[[Coroutine[Any, Any, None]], None],
) -> None:
    run(_a_message_of_the_wrong_direction_is_a_protocol_violation())
