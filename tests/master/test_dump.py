"""`ctl dump SLOT`: a live worker's thread and task stacks, printed without stopping it."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from support import AIOPREFORK

from .conftest import Master, StartMaster, get

pytestmark = pytest.mark.timeout(60)


def ctl(master: Master, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIOPREFORK, "ctl", *args, "--ctl-socket", master.ctl_path],
        capture_output=True,
        text=True,
        timeout=30,
    )


async def test_dump_shows_threads_and_the_task_of_a_request_in_flight(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", app="ops_apps:app")
    await master.wait_ready(1)
    in_flight = asyncio.ensure_future(get(master.port, "/wait?s=3"))
    await asyncio.sleep(0.5)
    result = await asyncio.to_thread(ctl, master, "dump", "0")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert out.startswith("worker 0 (pid "), out[:200]
    assert "Thread MainThread" in out and "(event loop; this dump)" in out
    assert "aioprefork-stallwatch" in out  # the stall watch thread, waiting
    assert "asyncio tasks" in out
    assert "awaiting_the_database" in out, out  # the request's task, where it waits
    assert await in_flight == (200, b"ok")  # the worker kept serving
    assert master.proc.poll() is None


async def test_dump_of_a_blocked_worker_says_so_and_of_a_free_slot_is_refused(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", "--stall-threshold", "0", app="ops_apps:app")
    await master.wait_ready(1)
    missing = await asyncio.to_thread(ctl, master, "dump", "7")
    assert missing.returncode == 2
    assert "no serving worker in slot 7 (serving: [0])" in missing.stderr
    blocked = asyncio.ensure_future(get(master.port, "/block?s=7", timeout=20))
    await asyncio.sleep(0.5)
    result = await asyncio.to_thread(ctl, master, "dump", "0")
    assert result.returncode == 2
    assert "did not answer within 5s: its event loop is blocked" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert await blocked == (200, b"ok")
