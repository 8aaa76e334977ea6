"""Stall attribution: a worker whose event loop is held logs where, counts it, and keeps serving
(worker/stalls.py); the count and the longest stall reach ctl status and /metrics."""

from __future__ import annotations

import asyncio
import logging
import threading
import time

import pytest

from aioprefork.worker.stalls import StallWatch

from .conftest import StartMaster, get, until

pytestmark = pytest.mark.timeout(60)


def blocking_call(seconds: float) -> None:
    time.sleep(seconds)


async def test_a_held_loop_is_reported_once_with_its_stack(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watch = StallWatch(0.2, slot=3)
    watch.start(asyncio.get_running_loop())
    try:
        with caplog.at_level(logging.WARNING, logger="aioprefork.server"):
            await asyncio.sleep(0.5)  # turning: nothing to report
            assert watch.stalls == 0
            blocking_call(0.8)
            await asyncio.sleep(0.4)  # the thread sees the loop turn again
            blocking_call(0.5)
            await asyncio.sleep(0.4)
    finally:
        watch.stop()
    assert watch.stalls == 2
    assert 0.6 <= watch.longest < 5
    stalled = [r.getMessage() for r in caplog.records if "stalled for" in r.getMessage()]
    assert len(stalled) == 2, stalled
    assert "worker 3" in stalled[0] and "blocking_call" in stalled[0], stalled[0]
    assert "in test_a_held_loop_is_reported_once_with_its_stack" in stalled[0]
    resumed = [r.getMessage() for r in caplog.records if "turned again" in r.getMessage()]
    assert len(resumed) == 2, resumed
    assert not any(t.name == "aioprefork-stallwatch" for t in threading.enumerate())


async def test_a_real_worker_logs_the_stall_and_the_master_counts_it(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", "--stall-threshold", "0.5", app="ops_apps:app")
    await master.wait_ready(1)
    assert await get(master.port, "/block?s=1.5") == (200, b"ok")
    assert await get(master.port) == (200, b"ok")  # the worker was not killed
    await until(lambda: "stalled for" in master.stderr, 10, "the stall report", master)
    log = master.stderr
    assert "hold_the_loop" in log and "time.sleep(seconds)" in log, log

    def counted(snap: dict[str, object]) -> bool:
        slots = snap["slots"]
        assert isinstance(slots, list)
        return bool(slots) and slots[0]["loop_stalls"] == 1

    snap = await master.status_until(counted, 10, "the stall in ctl status")
    assert 1.0 <= snap["slots"][0]["loop_stall_longest"] < 10
    assert snap["totals"]["loop_stalls"] == 1
