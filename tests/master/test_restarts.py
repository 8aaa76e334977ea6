"""Generations for real: graceful restart under load, HUP, rollback, recycling under load."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from pathlib import Path

import pytest

from .conftest import APP, Load, Master, StartMaster, get, until

pytestmark = pytest.mark.timeout(40)


async def test_graceful_restart_under_load_fails_no_request(start_master: StartMaster) -> None:
    master = start_master("--workers", "2", "--graceful-timeout", "5s")
    await master.wait_ready(2)
    gen1 = master.generations()
    assert set(gen1.values()) == {1}
    async with Load(master.port, "/sleep?s=0.05", concurrency=8).running() as load:
        await asyncio.sleep(0.5)
        before = load.ok
        started = time.monotonic()
        frames = await master.ctl("graceful")
        took = time.monotonic() - started
        await asyncio.sleep(0.5)
    final = frames[-1]
    assert final["ok"], frames
    assert "generation 2" in final["result"]
    progress = [f["progress"] for f in frames if "progress" in f]
    assert any("2/2 workers ready" in p for p in progress), progress
    assert load.failures == [], load.failures[:5]
    assert load.ok > before > 0
    gens = master.generations()
    assert set(gens.values()) == {2} and not set(gens) & set(gen1)
    snap = await master.status()
    assert snap["generation"] == 2
    assert snap["restarts_total"] == {"graceful:ok": 1}
    assert snap["exited_total"] == {"stopped": 2}
    assert took < 5, f"graceful restart took {took:.1f}s"
    print(f"\ngraceful under load: {took:.2f}s, {load.ok} requests ok, 0 failed")


async def test_hup_restart_while_idle(start_master: StartMaster) -> None:
    master = start_master("--workers", "2")
    await master.wait_ready(2)
    old = master.workers()
    started = time.monotonic()
    master.signal(signal.SIGHUP)
    await master.wait_ready(2, gen=2)
    took = time.monotonic() - started
    await until(lambda: not set(master.workers()) & set(old), 5, "the old workers to go", master)
    assert set(master.generations().values()) == {2}
    status, _ = await get(master.port)
    assert status == 200
    snap = await master.status()
    assert snap["restarts_total"] == {"restart:ok": 1}
    assert snap["spawned_total"] == {"start": 2, "restart": 2}
    print(f"\nHUP restart: new generation ready in {took:.2f}s")


async def _serving_from_file(
    start_master: StartMaster, workdir: Path, workers: int
) -> tuple[Master, Path]:
    """A master started from a TOML file (which the test then edits and reloads), once ready."""
    config = workdir / "server.toml"
    config.write_text(f'app = "{APP}"\nworkers = {workers}\n')
    master = start_master("--config", str(config), app=None)
    await master.wait_ready(workers)
    return master, config


async def test_graceful_restart_applies_new_logging_settings(
    start_master: StartMaster, workdir: Path
) -> None:
    master, config = await _serving_from_file(start_master, workdir, workers=1)

    config.write_text(f'app = "{APP}"\nworkers = 1\nlog_config = "{workdir}/absent.json"\n')
    frames = await master.ctl("graceful")
    assert frames[-1]["ok"] is False
    assert "log_config" in frames[-1]["error"] and "file not found" in frames[-1]["error"]

    log_file = workdir / "error.log"
    (workdir / "logging.json").write_text(
        json.dumps(
            {
                "version": 1,
                "disable_existing_loggers": False,
                "handlers": {"file": {"class": "logging.FileHandler", "filename": str(log_file)}},
                "root": {"level": "INFO", "handlers": ["file"]},
            }
        )
    )
    config.write_text(f'app = "{APP}"\nworkers = 1\nlog_config = "{workdir}/logging.json"\n')
    frames = await master.ctl("graceful")
    assert frames[-1]["ok"], frames
    await until(lambda: "graceful restart done" in log_file.read_text(), 10, "the new log", master)


async def test_graceful_restart_rolls_back_on_broken_config(
    start_master: StartMaster, workdir: Path
) -> None:
    master, config = await _serving_from_file(start_master, workdir, workers=2)
    serving = master.workers()

    config.write_text(f'app = "{APP}"\nworkers = "many"\n')  # invalid value
    frames = await master.ctl("graceful")
    assert frames[-1]["ok"] is False
    assert frames[-1]["error"].startswith("rolled back: config:")
    assert "workers" in frames[-1]["error"]

    config.write_bytes(f'app = "{APP}"\nworkers = 2\n# caf\xe9\n'.encode("latin-1"))
    frames = await master.ctl("graceful")  # not UTF-8: rolled back too, and not stuck
    assert frames[-1]["ok"] is False
    assert frames[-1]["error"].startswith("rolled back: config:")
    assert "not UTF-8" in frames[-1]["error"]

    config.write_text(f'app = "{APP}"\nworkers = 2\naccess_log_format = "%Q"\n')
    frames = await master.ctl("graceful")  # checked by the master, not by a booting worker
    assert frames[-1]["error"].startswith("rolled back: config: config error: access_log_format")
    assert "\n" not in frames[-1]["error"]

    config.write_text('app = "broken_app:app"\nworkers = 2\n')  # the new app cannot import
    frames = await master.ctl("graceful")
    assert frames[-1]["ok"] is False
    assert frames[-1]["error"].startswith("rolled back:")
    assert "this_module_does_not_exist" in frames[-1]["error"]

    master.signal(signal.SIGUSR1)  # the same through the signal: still rolled back, still serving
    await until(
        lambda: master.stderr.count("rolled back: ") == 5,
        10,
        "the fifth rollback",
        master,
    )
    await until(lambda: set(master.workers()) == set(serving), 10, "the failed workers to go")
    snap = await master.status()
    assert snap["generation"] == 1
    assert snap["master_state"] == "running"
    assert snap["restarts_total"] == {"graceful:rolled_back": 5}
    assert snap["last_restart"]["result"] == "rolled_back"
    status, _ = await get(master.port)
    assert status == 200

    config.write_text(f'app = "{APP}"\nworkers = 3\n')  # fixed: the restart goes through
    frames = await master.ctl("graceful")
    assert frames[-1]["ok"], frames
    await master.wait_ready(3)
    assert len(master.workers()) == 3


async def test_max_requests_recycles_under_load_without_failures(
    start_master: StartMaster,
) -> None:
    master = start_master(
        "--workers", "2", "--max-requests-per-worker", "60", "--max-requests-jitter", "20"
    )
    await master.wait_ready(2)
    first = set(master.workers())
    async with Load(master.port, "/", concurrency=6).running() as load:
        await until(
            lambda: master.workers() and len(master.seen - first) >= 3 and load.ok > 300,
            20,
            "three recycled workers",
            master,
        )
    assert load.failures == [], load.failures[:5]
    await master.wait_ready(2)
    # Totals survive recycling: once every live worker has sent its next Status frame (1 s
    # apart, later on a busy machine) and every retiring one its final frame, the master counts
    # at least what the clients received.
    snap = await master.status_until(
        lambda snap: snap["totals"]["requests"] >= load.ok, 10, f"{load.ok} requests counted"
    )
    assert snap["totals"]["requests"] >= load.ok  # totals survive recycling
    assert snap["spawned_total"].get("recycle", 0) >= 3
    assert snap["exited_total"].get("retired", 0) >= 2
    assert "crash" not in snap["exited_total"]
    print(f"\nrecycling: {load.ok} requests ok, {len(master.seen - first)} replacements, 0 failed")


async def test_a_restart_whose_app_cannot_boot_says_the_server_stopped(
    start_master: StartMaster, workdir: Path
) -> None:
    master, config = await _serving_from_file(start_master, workdir, workers=1)
    config.write_text('app = "broken_app:app"\nworkers = 1\n')
    frames = await master.ctl("restart")
    assert frames[-1]["ok"] is False
    assert "failed to boot" in frames[-1]["error"]
    assert "the server has stopped" in frames[-1]["error"] and "ctl graceful" in frames[-1]["error"]
    assert await master.wait_exit(timeout=10) == 3  # HALTED, as at start


async def test_control_commands(start_master: StartMaster, workdir: Path) -> None:
    master = start_master("--workers", "1")
    await master.wait_ready(1)
    assert (await master.ctl("reopen-logs"))[-1] == {
        "ok": True,
        "result": "logs reopened by the master and 1 workers",
    }
    frames = await master.ctl("restart")
    assert frames[-1]["ok"] and "generation 2" in frames[-1]["result"], frames
    assert any("generation 2: 1/1 workers ready" in f.get("progress", "") for f in frames)
    frames = await master.ctl("stop", timeout=2.0)
    assert frames[-1] == {"ok": True, "result": "stopping 1 workers within 2s"}
    assert await master.wait_exit(timeout=10) == 0
    assert not os.path.exists(master.ctl_path)  # the control socket went with the master
