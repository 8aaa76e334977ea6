"""The spare pool for real: a load step grows the pool to max_workers, and it shrinks back one
worker per tick when the load stops; TTIN/TTOU and `ctl scale` move the floor."""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from typing import Any

import pytest

from .conftest import Load, Master, StartMaster, until

pytestmark = pytest.mark.timeout(40)


async def sample(
    master: Master, samples: list[tuple[float, int, str]], t0: float
) -> dict[str, Any]:
    snap = await master.status()
    samples.append((round(time.monotonic() - t0, 2), snap["active_workers"], snap["scoreboard"]))
    return snap


async def test_load_step_grows_to_max_workers_then_shrinks_one_per_tick(
    start_master: StartMaster,
) -> None:
    master = start_master(
        "--workers", "1",
        "--max-workers", "4",
        "--server-limit", "8",
        "--worker-connections", "4",  # C = 4, min_spare_slots = C/2 = 2
        "--max-spare-slots", "7",  # the smallest allowed: min_spare + C + 1
    )  # fmt: skip
    await master.wait_ready(1)
    samples: list[tuple[float, int, str]] = []
    t0 = time.monotonic()
    async with Load(master.port, "/sleep?s=0.5", concurrency=24).running() as load:
        while (await sample(master, samples, t0))["active_workers"] < 4:
            assert time.monotonic() - t0 < 12, samples
            await asyncio.sleep(0.1)
        grown_at = time.monotonic() - t0
        await asyncio.sleep(1.5)  # at the ceiling with spare capacity short
        snap = await sample(master, samples, t0)
        assert snap["active_workers"] == 4  # never above max_workers
        assert snap["max_workers_reached_total"] == 1
        stopped_at = time.monotonic() - t0  # clients stop now; their last requests still finish
    assert load.failures == [], load.failures[:5]
    while (await sample(master, samples, t0))["active_workers"] > 1:
        assert time.monotonic() - t0 - stopped_at < 12, samples
        await asyncio.sleep(0.1)
    shrunk_at = time.monotonic() - t0
    counts = [n for _, n, _ in samples]
    assert max(counts) == 4
    # shrinking: one worker per tick, never two at once, never below min_workers
    peak = next(i for i, (_, n, _) in enumerate(samples) if n == 4)
    after_load = [
        (t, a - b) for (_, a, _), (t, b, _) in itertools.pairwise(samples[peak:]) if b < a
    ]
    assert [d for _, d in after_load] == [1, 1, 1], samples
    gaps = [b - a for (a, _), (b, _) in itertools.pairwise(after_load)]
    assert all(g >= 0.6 for g in gaps), (gaps, samples)
    await asyncio.sleep(1.5)
    assert (await master.status())["active_workers"] == 1  # settled: no flapping
    assert master.stderr.count("server reached max_workers") == 1
    print(
        f"\nload step: 1 -> 4 workers in {grown_at:.1f}s; load stopped at {stopped_at:.1f}s, "
        f"back to 1 at {shrunk_at:.1f}s (drops at {[t for t, _ in after_load]})"
    )


async def test_ttin_ttou_and_ctl_scale_move_the_floor(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", "--max-workers", "4")
    await master.wait_ready(1)
    master.signal(signal.SIGTTIN)
    await master.wait_ready(2)
    assert (await master.status())["min_workers"] == 2
    frames = await master.ctl("scale", n="3")
    assert frames[-1] == {"ok": True, "result": "min_workers 3 (was 2)"}
    await master.wait_ready(3)
    frames = await master.ctl("scale", n="+1")
    await master.wait_ready(4)
    frames = await master.ctl("scale", n="+1")
    assert frames[-1]["result"] == "min_workers 4 (was 4) (clamped to max_workers=4)"
    master.signal(signal.SIGTTOU)
    await until(lambda: "min_workers 4 -> 3" in master.stderr, 5, "TTOU", master)
    assert (await master.status())["min_workers"] == 3
    # 4 idle workers hold 4000 free slots > max_spare_slots 2500: the surplus goes, down to the floor
    await until(lambda: len(master.workers()) == 3, 5, "the surplus worker to go", master)
    await asyncio.sleep(1.2)
    assert (await master.status())["active_workers"] == 3


async def test_workers_n_still_runs_n_after_several_maintenance_ticks(
    start_master: StartMaster,
) -> None:
    """4 idle workers hold 4000 free slots, above max_spare_slots (2500): before --workers was
    the floor, maintenance retired two of them within two seconds."""
    master = start_master("--workers", "4", "--max-workers", "8")
    await master.wait_ready(4)
    await asyncio.sleep(4.5)  # four maintenance ticks and more
    snap = await master.status()
    assert snap["active_workers"] == 4, master.stderr
    assert snap["min_workers"] == 4
    assert len(master.workers()) == 4
    assert "surplus" not in master.stderr
