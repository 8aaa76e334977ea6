"""ctl upgrade: the master re-execs itself with its listeners, under load, with zero failed
requests; a new master that cannot boot leaves the old one serving (master/upgrade.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from pathlib import Path

import pytest

from .conftest import Load, StartMaster, alive, children_of, get, until

pytestmark = pytest.mark.timeout(90)


def _stop(pid: int) -> None:
    """Stop a master the test did not start itself (the upgraded one), workers included."""
    workers = children_of(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    for worker in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


async def test_upgrade_under_load_fails_no_request(
    start_master: StartMaster, workdir: Path
) -> None:
    pid_file = workdir / "master.pid"
    master = start_master(
        "--workers", "2", "--pid-file", str(pid_file), "--graceful-timeout", "10s",
        app="ops_apps:app", env={"OPS_BREAK_FLAG": str(workdir / "broken")},
    )  # fmt: skip
    await master.wait_ready(2)
    old = master.pid
    new = 0
    try:
        async with Load(master.port, concurrency=6).running() as load:
            await asyncio.sleep(0.5)
            before = load.ok
            replies = await master.ctl("upgrade")
            final = replies[-1]
            assert final["ok"], replies
            found = re.search(r"new master pid (\d+) serving", final["result"])
            assert found, final
            new = int(found.group(1))
            assert any("new master pid" in r.get("progress", "") for r in replies[:-1])
            assert await master.wait_exit(30) == 0  # the old master drained and left
            await asyncio.sleep(0.5)
            parents = {int((await get(master.port, "/master"))[1]) for _ in range(10)}
        assert load.failures == [], load.failures[:5]
        assert load.ok > before + 20
        assert parents == {new}  # every worker now is the new master's
        assert pid_file.read_text().strip() == str(new)
        assert not Path(f"{pid_file}.oldbin").exists()
        snap = await master.status()  # the control socket is the new master's
        assert snap["pid"] == new and snap["master_state"] == "running"
        assert snap["generation"] == 1
        assert alive(new) and not alive(old)
        assert "taking over from master pid" in master.stderr
    finally:
        if new:
            _stop(new)
            await until(lambda: not alive(new), 20, "the new master to stop")


async def test_an_upgrade_that_cannot_boot_leaves_the_old_master_serving(
    start_master: StartMaster, workdir: Path
) -> None:
    pid_file = workdir / "master.pid"
    flag = workdir / "broken"
    master = start_master(
        "--workers", "1", "--pid-file", str(pid_file),
        app="ops_apps:app", env={"OPS_BREAK_FLAG": str(flag)},
    )  # fmt: skip
    await master.wait_ready(1)
    flag.write_text("the next import fails")
    async with Load(master.port, concurrency=4).running() as load:
        replies = await master.ctl("upgrade")
        await asyncio.sleep(0.3)
    final = replies[-1]
    assert not final["ok"], replies
    assert "upgrade failed" in final["error"] and "keeps serving" in final["error"], final
    assert "the new code is broken" in final["error"], final
    assert load.failures == [], load.failures[:5]
    assert pid_file.read_text().strip() == str(master.pid)
    assert not Path(f"{pid_file}.oldbin").exists()
    snap = await master.status()  # the control socket answers again
    assert snap["pid"] == master.pid and snap["master_state"] == "running"
    assert snap["restarts_total"] == {"upgrade:failed": 1}
    flag.unlink()
    again = await master.ctl("upgrade")
    assert again[-1]["ok"], again
    new = int(re.search(r"new master pid (\d+)", again[-1]["result"]).group(1))  # type: ignore[union-attr]
    try:
        assert await master.wait_exit(30) == 0
    finally:
        _stop(new)
        await until(lambda: not alive(new), 20, "the new master to stop")


async def test_sigusr2_upgrades_like_ctl_upgrade(start_master: StartMaster, workdir: Path) -> None:
    pid_file = workdir / "master.pid"
    master = start_master("--workers", "1", "--pid-file", str(pid_file), app="ops_apps:app")
    await master.wait_ready(1)
    master.signal(signal.SIGUSR2)
    assert await master.wait_exit(30) == 0
    new = int(pid_file.read_text())
    try:
        assert new != master.pid and alive(new)
        assert await get(master.port, "/master") == (200, str(new).encode())
    finally:
        _stop(new)
        await until(lambda: not alive(new), 20, "the new master to stop")
