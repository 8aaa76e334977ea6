"""Limits that hold under load, for real: max_requests_per_worker checked on the request path,
max_worker_memory sampled fast and retiring at once past a margin, and a SIGKILLed worker's last
requests still counted (the shared board). The client counts per worker pid from the bodies."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import pytest

from .conftest import Load, StartMaster, get

pytestmark = pytest.mark.timeout(60)


async def count_by_pid(
    port: int, path: str, seconds: float, concurrency: int = 4
) -> tuple[collections.Counter[str], list[str]]:
    """Requests answered per worker pid (the app's body is 'ok <pid>'), and the failures."""
    served: collections.Counter[str] = collections.Counter()
    failures: list[str] = []
    deadline = time.monotonic() + seconds

    async def client() -> None:
        while time.monotonic() < deadline:
            try:
                status, body = await get(port, path)
            except (OSError, ConnectionError, TimeoutError) as exc:
                failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if status == 200:
                served[body.decode()] += 1
            else:
                failures.append(f"status {status}")

    await asyncio.gather(*(client() for _ in range(concurrency)))
    return served, failures


async def test_max_requests_per_worker_holds_on_the_request_path(start_master: StartMaster) -> None:
    limit = 150
    master = start_master(
        "--workers", "2", "--max-requests-per-worker", str(limit), "--max-requests-jitter", "0"
    )
    await master.wait_ready(2)
    served, failures = await count_by_pid(master.port, "/", 5.0)
    assert not failures, failures[:5]
    assert len(served) >= 5, served  # recycled several times
    worst = max(served.values())
    # in flight when the limit is reached: at most one request per client connection, and the
    # connections accepted in the same loop turn as the gate shut
    assert worst <= limit + 8, served


def rss_of(pids: list[int]) -> int:
    peak = 0
    for pid in pids:
        with contextlib.suppress(OSError, ValueError, IndexError):
            peak = max(peak, int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE)
    return peak


PAGE = os.sysconf("SC_PAGE_SIZE")
MIB = 1 << 20


async def test_a_leak_of_1_mib_per_request_stays_within_1_5x_max_worker_memory(
    start_master: StartMaster,
) -> None:
    limit = 64 * MIB
    master = start_master("--workers", "2", "--max-worker-memory", "64MiB")
    await master.wait_ready(2)
    peak = 0
    stop = asyncio.Event()

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_of(list(master.workers())))
            await asyncio.sleep(0.003)

    sampler = asyncio.ensure_future(sample())
    try:
        served, failures = await count_by_pid(master.port, "/leak?mib=1", 5.0, concurrency=6)
    finally:
        stop.set()
        await sampler
    assert len(served) >= 4, served  # recycled
    assert not failures, failures[:5]
    assert peak <= 1.5 * limit, f"peak RSS {peak / MIB:.0f} MiB against a 64 MiB limit"
    snap = await master.status()
    assert snap["exited_total"].get("retired", 0) >= 2


async def test_requests_of_a_sigkilled_worker_are_still_counted(start_master: StartMaster) -> None:
    """The last second before a SIGKILL never reached a Status frame: 4-9% was lost."""
    master = start_master("--workers", "2")
    await master.wait_ready(2)
    load = Load(master.port, concurrency=6)
    kills = 0
    async with load.running():
        for _ in range(3):
            await asyncio.sleep(0.7)
            for pid in master.workers():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
                    kills += 1
            await master.wait_ready(2)
    await asyncio.sleep(1.5)  # the live workers' next Status frames
    snap = await master.status()
    counted = snap["totals"]["requests"]
    # each killed worker may have served up to 15 requests since its last board write, and
    # written a few responses it did not get to count (killed between the write and the count)
    assert load.ok - 24 * kills <= counted <= load.ok + len(load.failures), (
        counted,
        load.ok,
        len(load.failures),
        kills,
    )


async def test_fd_exhaustion_is_warned_at_start_counted_and_never_silent(
    start_master: StartMaster,
) -> None:
    """RLIMIT_NOFILE 256 with worker_connections 1000: 760 of 1000 connections were shed with no
    log and no metric. Now: a warning at start, each worker's gate shuts at its fd budget (the
    connections wait in the backlog instead of being dropped), counted and logged."""
    master = start_master("--workers", "2", nofile=256)
    await master.wait_ready(2)
    assert "RLIMIT_NOFILE is 256 (hard 256) but worker_connections = 1000" in master.stderr
    conns: list[socket.socket] = []
    try:
        for _ in range(600):
            sock = socket.create_connection(("127.0.0.1", master.port), timeout=5)
            conns.append(sock)
        snap = await master.status_until(
            lambda s: s["totals"]["rejected"].get("fd_limit", 0) >= 2,
            10,
            "both workers at their fd budget",
        )
        assert snap["totals"]["rejected"]["fd_limit"] >= 2
        assert "at the open-files limit" in master.stderr
        for pid in master.workers():
            assert len(os.listdir(f"/proc/{pid}/fd")) < 256
    finally:
        for sock in conns:
            sock.close()
    status, _ = await get(master.port, timeout=10)
    assert status == 200
