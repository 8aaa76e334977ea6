"""The master under failure, for real: broken apps, killed and hung workers, a killed master."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from support import AIOPREFORK

from .conftest import APPS, ROOT, StartMaster, alive, get, until

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize(
    ("app", "message"),
    [
        ("broken_app:app", "this_module_does_not_exist"),
        ("prefork_apps:failing_lifespan", "database unreachable"),
        ("prefork_apps:nothing_here", "nothing_here"),
    ],
    ids=["import error", "lifespan startup failure", "missing attribute"],
)
async def test_broken_app_halts_with_exit_3_fast(
    start_master: StartMaster, app: str, message: str
) -> None:
    started = time.monotonic()
    master = start_master("--workers", "2", app=app)
    code = await master.wait_exit(timeout=10)
    elapsed = time.monotonic() - started
    assert code == 3, master.stderr
    assert elapsed < 6, f"took {elapsed:.1f}s"
    assert message in master.stderr
    assert "no worker could boot" in master.stderr
    assert master.stderr.count("failed to boot:") <= 2  # the two workers, never a respawn loop
    assert not master.workers()


SETTINGS_LINE = "tests/master/apps/needs_env_settings.py:7"
SUMMARY = (
    "error importing 'needs_env': KeyError: 'AIOPF_TEST_DATABASE_URL' (at " + SETTINGS_LINE + ")"
)


async def test_an_import_error_shows_its_traceback_and_summary_once(
    start_master: StartMaster,
) -> None:
    """Three workers fail the same way: one traceback, one summary naming file:line of the app's
    code (not os.environ's), then the halt; never the same error per worker."""
    master = start_master("--workers", "3", app="needs_env:app")
    assert await master.wait_exit(timeout=10) == 3, master.stderr
    log = master.stderr
    assert log.count("Traceback (most recent call last):") == 1, log
    assert log.count(SUMMARY) == 1, log
    assert 'needs_env_settings.py", line 7, in <module>' in log
    assert log.count("KeyError: 'AIOPF_TEST_DATABASE_URL'") == 2, (
        log
    )  # the summary, the traceback's last line
    assert "no worker could boot" in log


async def test_a_lifespan_startup_error_shows_its_traceback_once(start_master: StartMaster) -> None:
    """Each worker logged the app's traceback itself: three workers, three tracebacks."""
    master = start_master("--workers", "3", app="prefork_apps:raising_lifespan")
    assert await master.wait_exit(timeout=10) == 3, master.stderr
    log = master.stderr
    assert log.count("Traceback (most recent call last):") == 1, log
    summary = "ASGI lifespan startup failed: ConnectionRefusedError: db:5432 refused the connection"
    assert log.count(summary) == 1, log
    assert 'prefork_apps.py", line' in log


def test_an_import_error_in_process_shows_its_traceback_and_summary(tmp_path: Path) -> None:
    """--workers 0 too: the traceback, then the one line."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPREFORK_")}
    proc = subprocess.run(
        [AIOPREFORK, "serve", "needs_env:app", "--workers", "0", "--app-dir", str(APPS)],
        cwd=ROOT, capture_output=True, text=True, timeout=20, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("Traceback (most recent call last):") == 1, proc.stderr
    assert proc.stderr.rstrip().endswith(f"aioprefork: {SUMMARY}"), proc.stderr


async def test_worker_never_ready_halts_after_boot_timeout(start_master: StartMaster) -> None:
    started = time.monotonic()
    master = start_master(
        "--workers", "1", "--boot-timeout", "1s", app="prefork_apps:hanging_lifespan"
    )
    assert await master.wait_exit(timeout=10) == 3, master.stderr
    assert time.monotonic() - started < 5
    assert "not ready within boot_timeout (1s)" in master.stderr
    assert not master.workers()


async def test_kill_9_of_a_worker_is_replaced_at_once(start_master: StartMaster) -> None:
    master = start_master("--workers", "2")
    await master.wait_ready(2)
    before = master.workers()
    victim = min(before)
    killed_at = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    now = await until(
        lambda: (w := master.workers()) and victim not in w and len(w) == 2 and w,
        timeout=5,
        what="a replacement worker",
        master=master,
    )
    replaced_in = time.monotonic() - killed_at
    await master.wait_ready(2)
    assert set(now) - set(before), "a new pid serves"
    assert replaced_in < 2.5
    status, _ = await get(master.port)
    assert status == 200
    snap = await master.status()
    assert snap["exited_total"] == {"crash": 1}
    assert snap["spawned_total"] == {"start": 2, "crash": 1}
    assert "died (killed by SIGKILL)" in master.stderr


async def test_kill_9_of_the_master_leaves_no_orphan(start_master: StartMaster) -> None:
    master = start_master("--workers", "2", "--graceful-timeout", "2s")
    await master.wait_ready(2)
    workers = list(master.workers())
    assert len(workers) == 2
    os.kill(master.pid, signal.SIGKILL)
    killed_at = time.monotonic()
    await until(lambda: not any(alive(pid) for pid in workers), 6, "the orphans to exit")
    gone_in = time.monotonic() - killed_at
    assert gone_in < 4, f"orphans lived {gone_in:.1f}s"
    with pytest.raises(OSError):
        await get(master.port, timeout=2)


async def test_blocked_loop_is_aborted_and_replaced(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", "--heartbeat-timeout", "1.5s")
    await master.wait_ready(1)
    (hung,) = master.workers()
    blocked = asyncio.ensure_future(get(master.port, "/block?s=30", timeout=20))
    started = time.monotonic()
    await until(
        lambda: (w := master.workers()) and hung not in w and w, timeout=10, what="a replacement"
    )
    replaced_in = time.monotonic() - started
    with pytest.raises((OSError, ConnectionError)):
        await blocked  # its worker was killed under it
    await master.wait_ready(1)
    status, _ = await get(master.port)
    assert status == 200
    assert replaced_in < 6, f"hung worker replaced after {replaced_in:.1f}s"
    assert "SIGABRT" in master.stderr
    assert "time.sleep" in master.stderr or "prefork_apps.py" in master.stderr  # the stack dump
    snap = await master.status()
    assert snap["heartbeat_timeouts_total"] == 1
    assert snap["exited_total"] == {"hung": 1}
