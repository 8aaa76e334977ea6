"""Connections spread evenly over the workers (worker/balance.py), with real processes and sockets."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time

import pytest

from .conftest import StartMaster, get

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio]

REQUEST = b"GET / HTTP/1.1\r\nHost: test\r\n\r\n"


class KeepAliveClient:
    """One keep-alive client; it reconnects when a response ends the connection."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.failures: list[str] = []
        self.reconnects = 0

    async def connect(self) -> None:
        self.streams = await asyncio.open_connection("127.0.0.1", self.port)

    async def request(self) -> bytes:
        """One request; the body names the pid of the worker holding this connection."""
        if self.streams is None:
            await self.connect()
            self.reconnects += 1
        assert self.streams is not None
        reader, writer = self.streams
        writer.write(REQUEST)
        head = (await reader.readuntil(b"\r\n\r\n")).lower()
        if not head.startswith(b"http/1.1 200 "):
            self.failures.append(head.decode(errors="replace"))
        length = int(head.split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        body = await reader.readexactly(length)
        if b"connection: close" in head:
            await reader.read()  # the server closes after the response
            self.close()
        return body

    async def holder(self) -> bytes:
        """The pid of the worker holding this client's connection once any hand-back is done."""
        body = await self.request()
        while self.streams is None:  # that response ended the connection: ask on the next one
            body = await self.request()
        return body

    async def run_until(self, deadline: float) -> None:
        while time.monotonic() < deadline:
            await self.request()

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def test_connections_opened_at_once_spread_evenly_over_the_workers(
    start_master: StartMaster,
) -> None:
    master = start_master(
        "--workers", "4", "--min-workers", "4", "--max-workers", "4",
        "--max-keepalive-requests", "0",  # every reconnect is a hand-back
    )  # fmt: skip
    await master.wait_ready(4)
    clients = [KeepAliveClient(master.port) for _ in range(64)]
    try:
        await asyncio.gather(*(client.connect() for client in clients))  # one burst
        deadline = time.monotonic() + 1.5
        await asyncio.gather(*(client.run_until(deadline) for client in clients))
        settling = sum(client.reconnects for client in clients)
        deadline = time.monotonic() + 1.5
        await asyncio.gather(*(client.run_until(deadline) for client in clients))
        settled = sum(client.reconnects for client in clients) - settling
        holders = collections.Counter(
            await asyncio.gather(*(client.holder() for client in clients))
        )
    finally:
        for client in clients:
            client.close()
    assert [f for client in clients for f in client.failures] == []
    # 16 each is even. The gate admits at most the least loaded + 2; hand-back trims anything
    # beyond the mean (16) + slack (2), so the least loaded holds at least 64 - 3 x 18.
    assert len(holders) == 4, holders
    assert all(10 <= held <= 18 for held in holders.values()), holders
    assert settling > 0  # the burst was uneven and was evened out by handing back...
    assert settled <= 2  # ...and once even, connections stay where they are
    # Every reconnect was a hand-back, and the scoreboard counts them (status frames, 1 s).
    reconnects = sum(client.reconnects for client in clients)
    snapshot = await master.status_until(
        lambda snap: snap["totals"]["handed_back"] >= reconnects, 5, "hand-backs counted"
    )
    served = [slot["requests_total"] for slot in snapshot["slots"]]
    assert len(served) == 4 and min(served) > 0, served
    # A worker shut for balance still has room: the master must not count it as full.
    assert all(slot["accepting"] for slot in snapshot["slots"]), snapshot["slots"]


async def test_a_worker_whose_loop_is_stuck_holds_no_sibling_back(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "2", "--min-workers", "2", "--max-workers", "2")
    await master.wait_ready(2)
    blocked = asyncio.ensure_future(get(master.port, "/block?s=3"))
    try:
        await asyncio.sleep(0.5)  # one worker now sleeps in the app with one connection
        started = time.monotonic()
        answers = await asyncio.gather(*(get(master.port, "/") for _ in range(12)))
        elapsed = time.monotonic() - started
        status, stuck = await blocked
    finally:
        blocked.cancel()
        with contextlib.suppress(BaseException):
            await blocked
    assert status == 200
    assert [code for code, _ in answers] == [200] * 12
    # Counted as live, the stuck worker (1 connection) would cap its sibling at 1 + slack (1) = 2
    # connections until it woke up 3 s later. Its heartbeat went stale, so it is not counted.
    assert stuck not in {body for _, body in answers}
    assert elapsed < 2.0, elapsed
