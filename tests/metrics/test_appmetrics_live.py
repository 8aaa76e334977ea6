"""App metrics through a real master: workers' prometheus_client metrics in the master's scrape."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from .helpers import promtool, samples, value
from .procs import Server, aioprefork

pytestmark = pytest.mark.timeout(90)

WORKERS = 2


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with aioprefork(tmp_path, "demo_app:app", WORKERS, "--app-dir", "tests/metrics") as s:
        yield s


async def hits(client: httpx.AsyncClient, n: int) -> None:
    async def one() -> None:
        for _ in range(n // 4):
            assert (await client.get("/a")).content == b"ok"

    await asyncio.gather(*(one() for _ in range(4)))  # several connections: several workers


async def scrape(server: Server) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    async with httpx.AsyncClient(timeout=5) as c:
        text = (await c.get(server.metrics_url + "/metrics")).text
    check = promtool("check", "metrics", stdin=text)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
    return samples(text)


async def until_alive(server: Server, want: int, old: set[int]) -> None:
    deadline = time.monotonic() + 20
    got = None
    while time.monotonic() < deadline:
        live = server.workers()
        got = value(await scrape(server), "demo_workers_alive")
        if len(live) == want and not live & old and got == want:
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"demo_workers_alive = {got}, workers {server.workers()}")


async def test_app_metrics_are_merged_and_survive_a_killed_worker(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.app_url, timeout=10) as client:
        await hits(client, 40)
        t = await scrape(server)
        assert value(t, "demo_hits_total", path="/a") == 40  # summed over the workers
        assert value(t, "demo_workers_alive") == WORKERS  # livesum: one per live worker
        assert value(t, "aioprefork_workers_active") == WORKERS  # ours, in the same scrape

        victim = min(server.workers())
        os.kill(victim, signal.SIGKILL)
        await until_alive(server, WORKERS, {victim})  # the dead worker's live gauge is gone
        assert value(await scrape(server), "demo_hits_total", path="/a") == 40  # kept

        await hits(client, 8)
        assert value(await scrape(server), "demo_hits_total", path="/a") == 48
