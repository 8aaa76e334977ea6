"""App metrics merge: real forked children write prometheus-client metrics, the parent scrapes them."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest, values

from aioprefork.metrics import appmetrics
from aioprefork.metrics.http import open_metrics_server

from .helpers import promtool, samples, snapshot, value

pytestmark = pytest.mark.timeout(30)


@pytest.fixture
def prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.delenv(appmetrics.ENV, raising=False)
    path = appmetrics.prepare(str(tmp_path))
    try:
        yield path
    finally:
        appmetrics.cleanup()


def fork_worker(orders: int, carts: int) -> int:
    """A 'worker': a forked child that uses prometheus_client the ordinary way, then exits."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 1
        try:
            registry = CollectorRegistry()  # an app's own registry, as with the default one
            c = Counter("shop_orders", "Orders placed", ["kind"], registry=registry)
            g = Gauge(
                "shop_open_carts", "Open carts", registry=registry, multiprocess_mode="livesum"
            )
            c.labels("web").inc(orders)
            g.set(carts)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return pid


def scrape() -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    registry = CollectorRegistry()
    registry.register(appmetrics.collector())
    return samples(generate_latest(registry).decode())


def test_prepare_makes_a_private_directory_and_exports_it(prepared: str, tmp_path: Path) -> None:
    assert Path(prepared).parent == tmp_path
    assert stat.S_IMODE(os.stat(prepared).st_mode) == 0o700
    assert os.environ[appmetrics.ENV] == prepared
    assert appmetrics.directory() == prepared
    assert appmetrics.prepare() == prepared  # idempotent across restarts
    assert values.ValueClass is not values.MutexValue  # re-selected although already imported


def test_workers_metrics_are_summed_and_dead_live_gauges_dropped(prepared: str) -> None:
    first = fork_worker(orders=3, carts=2)
    second = fork_worker(orders=4, carts=5)
    t = scrape()
    assert value(t, "shop_orders_total", kind="web") == 7
    assert value(t, "shop_open_carts") == 7
    appmetrics.mark_dead(first)
    t = scrape()
    assert value(t, "shop_orders_total", kind="web") == 7  # counters survive the worker
    assert value(t, "shop_open_carts") == 5  # its live gauge does not
    appmetrics.mark_dead(second)
    assert ("shop_open_carts", frozenset()) not in scrape()


async def test_merged_into_the_master_scrape(prepared: str) -> None:
    fork_worker(orders=2, carts=1)
    srv = await open_metrics_server("127.0.0.1:0", snapshot, registry_extra=appmetrics.collector())
    try:
        async with httpx.AsyncClient(timeout=5) as c:
            text = (await c.get(f"http://127.0.0.1:{srv.port}/metrics")).text
    finally:
        await srv.close()
    t = samples(text)
    assert value(t, "shop_orders_total", kind="web") == 2
    assert value(t, "aioprefork_generation") == 2
    check = promtool("check", "metrics", stdin=text)
    assert check.returncode == 0 and not check.stdout.strip(), check.stdout + check.stderr


def test_cleanup_restores_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    monkeypatch.setenv(appmetrics.ENV, str(outer))
    path = appmetrics.prepare()
    assert Path(path).parent == outer  # a fresh directory inside the operator's choice
    appmetrics.cleanup()
    assert not Path(path).exists()
    assert os.environ[appmetrics.ENV] == str(outer)
    monkeypatch.delenv(appmetrics.ENV)
    appmetrics.prepare(str(tmp_path))
    appmetrics.cleanup()
    assert appmetrics.ENV not in os.environ
    assert values.ValueClass is values.MutexValue
    appmetrics.cleanup()  # twice is harmless
    appmetrics.mark_dead(12345)  # so is marking after cleanup


def test_collector_before_prepare_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="prepare"):
        appmetrics.collector()
