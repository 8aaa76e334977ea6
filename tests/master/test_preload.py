"""preload: the app is imported once, in the master, and the workers share it."""

from __future__ import annotations

import pytest

from .conftest import StartMaster, get

pytestmark = pytest.mark.timeout(60)


async def test_preload_imports_the_app_once_in_the_master(start_master: StartMaster) -> None:
    master = start_master("--workers", "2", "--preload", app="ops_preload:app")
    await master.wait_ready(2)
    bodies = {(await get(master.port))[1] for _ in range(20)}
    assert all(b.startswith(f"imported by {master.pid},".encode()) for b in bodies), bodies
    assert "preloaded ops_preload:app in the master" in master.stderr
    graceful = await master.ctl("graceful")
    assert graceful[-1]["ok"], graceful
    assert any("preload is on" in f.get("progress", "") for f in graceful), graceful


async def test_without_preload_each_worker_imports_the_app(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", app="ops_preload:app")
    await master.wait_ready(1)
    status, body = await get(master.port)
    assert status == 200
    worker = body.split()[-1]
    assert body.startswith(b"imported by " + worker + b","), body


async def test_a_preload_that_cannot_import_stops_the_start(start_master: StartMaster) -> None:
    master = start_master("--preload", app="ops_preload:app", env={"BREAK_IMPORT": "1"})
    assert await master.wait_exit(30) == 3
    err = master.stderr
    assert "preload: error importing 'ops_preload': KeyError: 'DATABASE_URL'" in err, err
    assert err.count("Traceback (most recent call last)") == 1, err
    assert 'raise KeyError("DATABASE_URL")' in err
