"""A real Prometheus scrapes a real aioprefork under load (process level, loopback only).

One server and one Prometheus for the whole module (they take seconds to start). The scenario runs
in order: load -> the series Prometheus stored match it exactly -> kill -9 of a worker -> graceful
restart (SIGUSR1) -> counters never went backwards, neither in our own 4 Hz scrapes nor in
Prometheus's `resets()` -> every PromQL expression of the Grafana dashboard returns data.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import httpx
import pytest

from aioprefork.buildinfo import hot_path_build

from .helpers import dashboard_promql, promtool, samples
from .procs import Server, aioprefork, prometheus

pytestmark = pytest.mark.timeout(150)

WORKERS = 2
HELLO = b"Hello, world!"


@dataclass
class Stack:
    server: Server
    prom_url: str

    @property
    def app_url(self) -> str:
        return self.server.app_url

    @property
    def metrics_url(self) -> str:
        return self.server.metrics_url

    @property
    def master(self) -> subprocess.Popen[bytes]:
        return self.server.master

    def workers(self) -> set[int]:
        return self.server.workers()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    exe = shutil.which("prometheus")
    assert exe, "prometheus missing: run `make system-deps` (Debian package prometheus)"
    tmp = tmp_path_factory.mktemp("live")
    with (
        aioprefork(tmp, "examples.hello:app", WORKERS) as server,
        prometheus(tmp, server.metrics_url.removeprefix("http://"), exe) as prom_url,
    ):
        yield Stack(server, prom_url)


# --- helpers over HTTP --------------------------------------------------------------------------


async def load(client: httpx.AsyncClient, n: int, concurrency: int = 8) -> None:
    """Exactly n successful GETs (the count Prometheus must report)."""
    queue = iter(range(n))

    async def one_connection() -> None:
        for _ in queue:
            r = await client.get("/")
            assert r.status_code == 200 and r.content == HELLO

    await asyncio.gather(*(one_connection() for _ in range(concurrency)))


async def refused(url: str) -> bytes:
    """One request the worker must refuse (414: request line over limit_request_line)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


async def scrape_soon(client: httpx.AsyncClient, stack: Stack) -> str:
    """A scrape taken while a load runs (promtool must find nothing in it either)."""
    await asyncio.sleep(0.05)
    return (await client.get(stack.metrics_url + "/metrics")).text


async def query(client: httpx.AsyncClient, prom_url: str, expr: str) -> list[dict[str, object]]:
    r = await client.get(prom_url + "/api/v1/query", params={"query": expr})
    body = r.json()
    assert body["status"] == "success", (expr, body)
    return list(body["data"]["result"])


async def scalar(client: httpx.AsyncClient, prom_url: str, expr: str) -> float | None:
    result = await query(client, prom_url, expr)
    if not result:
        return None
    value = result[0]["value"]
    assert isinstance(value, list)
    return float(value[1])


async def eventually(
    client: httpx.AsyncClient, prom_url: str, expr: str, want: float, timeout: float = 15
) -> None:
    deadline = time.monotonic() + timeout
    got: float | None = None
    while time.monotonic() < deadline:
        got = await scalar(client, prom_url, expr)
        if got == want:
            return
        await asyncio.sleep(0.3)
    raise AssertionError(f"{expr} = {got}, want {want}")


# Series whose sum must never go down, sampled from /metrics directly.
MONOTONIC = (
    "aioprefork_requests_total",
    "aioprefork_requests_rejected_total",
    "aioprefork_connections_accepted_total",
    "aioprefork_connections_handed_back_total",
    "aioprefork_response_bytes_total",
    "aioprefork_request_duration_seconds_count",
    "aioprefork_request_duration_seconds_sum",
    "aioprefork_workers_spawned_total",
    "aioprefork_workers_exited_total",
    "aioprefork_restarts_total",
)


OK = 'sum(aioprefork_requests_total{status_class="2xx"})'


class Sampler:
    """Scrapes /metrics 4 times a second and keeps the per-name sums it saw."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.client, self.url = client, url
        self.history: list[dict[str, float]] = []

    async def once(self) -> dict[str, float]:
        table = samples((await self.client.get(self.url + "/metrics")).text)
        sums = {name: 0.0 for name in (*MONOTONIC, "ok")}
        for (name, labels), v in table.items():
            if name in sums:
                sums[name] += v
            if name == "aioprefork_requests_total" and ("status_class", "2xx") in labels:
                sums["ok"] += v
        self.history.append(sums)
        return sums

    async def run(self) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                await self.once()
            await asyncio.sleep(0.25)

    def assert_monotonic(self) -> None:
        assert len(self.history) > 20
        for name in MONOTONIC:
            series = [h[name] for h in self.history]
            drops = [(a, b) for a, b in itertools.pairwise(series) if b < a]
            assert not drops, f"{name} went backwards: {drops}"


@pytest.fixture
async def clients(stack: Stack) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=8)
    async with (
        httpx.AsyncClient(base_url=stack.app_url, timeout=10, limits=limits) as app,
        httpx.AsyncClient(timeout=10) as other,
    ):
        yield app, other


async def wait_workers_replaced(
    stack: Stack, old: set[int], other: httpx.AsyncClient, timeout: float = 20
) -> set[int]:
    """Until WORKERS live workers, none of them in `old`, and /readyz says ready."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = stack.workers()
        if len(now) == WORKERS and not now & old:
            r = await other.get(stack.metrics_url + "/readyz")
            auto = (await other.get(stack.metrics_url + "/server-status?auto")).text
            if (
                r.status_code == 200
                and "Scoreboard: " in auto
                and "S" not in auto.split("Scoreboard: ")[1]
            ):
                return now
        await asyncio.sleep(0.2)
    raise AssertionError(f"workers not replaced: {stack.workers()} (old {old})")


async def test_prometheus_scrapes_a_loaded_server(
    stack: Stack, clients: tuple[httpx.AsyncClient, httpx.AsyncClient]
) -> None:
    app, other = clients
    prom = stack.prom_url
    sampler = Sampler(other, stack.metrics_url)
    sampling = asyncio.create_task(sampler.run())
    try:
        # 1. Load; workers report every second, Prometheus scrapes every second.
        await load(app, 300)
        assert (await refused(stack.app_url)).startswith(b"HTTP/1.1 414 ")
        job = '{job="aioprefork"}'
        await eventually(other, prom, OK, 300)
        await eventually(
            other, prom, 'aioprefork_requests_rejected_total{reason="uri_too_long"}', 1
        )
        await eventually(
            other,
            prom,
            'sum(aioprefork_requests_total{job="aioprefork",method="GET",status_class="2xx"})',
            300,
        )
        # The histogram counts every response the counter counts, across workers.
        total = await scalar(other, prom, f"sum(aioprefork_requests_total{job})")
        assert total is not None and total >= 300
        await eventually(other, prom, f"sum(aioprefork_request_duration_seconds_count{job})", total)
        await eventually(
            other, prom, 'sum(aioprefork_request_duration_seconds_bucket{le="+Inf"})', total
        )
        await eventually(other, prom, f"aioprefork_workers_active{job}", WORKERS)
        await eventually(
            other, prom, 'sum(aioprefork_workers{state=~"idle|serving|full"})', WORKERS
        )
        await eventually(other, prom, 'aioprefork_master_state{state="running"}', 1)
        await eventually(other, prom, "count(aioprefork_slot_rss_bytes > 0)", WORKERS)
        await eventually(other, prom, "count(aioprefork_info)", 1)
        build = f'count(aioprefork_build_info{{hot_path="{hot_path_build()}"}})'
        await eventually(other, prom, build, 1)  # the build this test's server runs
        accepted = await scalar(other, prom, "sum(aioprefork_connections_accepted_total)")
        assert accepted is not None and 8 <= accepted <= 300  # keep-alive: 8 connections or more
        sent = await scalar(other, prom, "sum(aioprefork_response_bytes_total)")
        assert sent is not None and sent >= 300 * len(HELLO)
        generation = await scalar(other, prom, "aioprefork_generation")
        assert generation is not None

        # 2. kill -9 one worker: its counts stay in the totals, a replacement takes its slot.
        await asyncio.sleep(1.5)  # every request reported by a status frame before the kill
        victim = min(stack.workers())
        os.kill(victim, signal.SIGKILL)
        await wait_workers_replaced(stack, {victim}, other)
        under_load = (await asyncio.gather(load(app, 100), scrape_soon(other, stack)))[1]
        check = promtool("check", "metrics", stdin=under_load)
        assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr
        await eventually(other, prom, OK, 400)
        exits = await scalar(other, prom, "sum(aioprefork_workers_exited_total)")
        assert exits is not None and exits >= 1

        # 3. Graceful restart (SIGUSR1): a new generation, counters keep counting.
        await asyncio.sleep(1.5)
        before = stack.workers()
        stack.master.send_signal(signal.SIGUSR1)
        await wait_workers_replaced(stack, before, other, timeout=30)
        await load(app, 100)
        await eventually(other, prom, OK, 500)
        await eventually(other, prom, "aioprefork_generation", generation + 1)
        await eventually(other, prom, 'sum(aioprefork_restarts_total{kind="graceful"})', 1)
        await asyncio.sleep(1.5)  # a few more scrapes after the last change
    finally:
        sampling.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await sampling

    # 4. Never backwards: in our own scrapes, and in what Prometheus stored.
    sampler.assert_monotonic()
    final = await sampler.once()
    assert final["ok"] == 500
    for name in MONOTONIC:
        resets = await query(other, prom, f"resets({name}[5m]) > 0")
        assert resets == [], (name, resets)

    # 5. Every PromQL expression of the dashboard returns data.
    empty = []
    for expr in dashboard_promql("30s"):
        if not await query(other, prom, expr):
            empty.append(expr)
    assert empty == [], empty
