"""`ctl set KEY VALUE` (config/live.py): live settings validated like the config file, in force at
once in the master and every worker, kept across graceful restarts until the file changes them,
and shown by check-config as coming from "ctl"."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import pytest
from support import AIOPREFORK

from aioprefork.config import live
from aioprefork.config.load import load
from aioprefork.errors import ConfigError

from .conftest import Master, StartMaster, get, until

pytestmark = pytest.mark.timeout(90)


def test_only_live_settings_and_valid_values_pass() -> None:
    loaded = load({"app": "x:y", "workers": 2, "max_workers": 4})
    with pytest.raises(ConfigError, match=r"workers = '5' \(from ctl\): not a live setting"):
        live.parse("workers", "5")
    with pytest.raises(ConfigError, match=r"min_wokers = '3' \(from ctl\): unknown setting"):
        live.parse("min_wokers", "3")
    with pytest.raises(ConfigError, match=r"min_workers = 'lots' \(from ctl\)"):
        live.parse("min_workers", "lots")
    too_many = {"min_workers": live.Override("9", 2)}
    with pytest.raises(ConfigError, match=r"min_workers = 9 \(from ctl\): must not exceed max"):
        live.apply(loaded.config, loaded.sources, too_many)
    config, sources = live.apply(
        loaded.config, loaded.sources, {"request_timeout": live.Override("30s", 0.0)}
    )
    assert config.request_timeout == 30.0 and sources["request_timeout"] == "ctl"


def test_an_override_lasts_until_the_layers_below_change() -> None:
    overrides = {"min_workers": live.Override("3", 2), "log_level": live.Override("debug", "info")}
    changed = load({"app": "x:y", "workers": 1, "max_workers": 4, "log_level": "info"}).config
    kept, dropped = live.still_wanted(changed, overrides)
    assert list(kept) == ["log_level"]
    assert dropped == [("min_workers", 1)]


def ctl(master: Master, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIOPREFORK, "ctl", *args, "--ctl-socket", master.ctl_path],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


async def test_ctl_set_in_a_running_server(start_master: StartMaster, workdir: Path) -> None:
    conf = workdir / "server.toml"
    conf.write_text("[processes]\nworkers = 2\nmin_workers = 2\nmax_workers = 4\n")
    master = start_master("--config", str(conf), app="ops_apps:app")
    await master.wait_ready(2)

    async def run(*args: str) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(ctl, master, *args)

    done = await run("set", "min_workers", "3")
    assert done.returncode == 0, done.stderr
    assert "min_workers = 3 (was 2), from ctl until the configuration changes it" in done.stdout
    await master.wait_ready(3)  # the master grew the pool at once

    refused = await run("set", "workers", "5")
    assert refused.returncode == 2
    assert "config error: workers = '5' (from ctl): not a live setting" in refused.stderr
    bad = await run("set", "max_workers", "2")
    assert bad.returncode == 2 and "must not exceed max_workers" in bad.stderr

    # worker-side settings reach the running workers
    assert (await run("set", "request_timeout", "1s")).returncode == 0
    status, _ = await get(master.port, "/wait?s=5")
    assert status == 503
    assert (await run("set", "request_timeout", "0")).returncode == 0
    assert await get(master.port, "/wait?s=1.5") == (200, b"ok")

    assert (await run("set", "max_requests_per_worker", "3")).returncode == 0
    for _ in range(12):
        assert (await get(master.port))[0] == 200
    await until(lambda: "retiring (max_requests)" in master.stderr, 10, "a recycle", master)
    assert (await run("set", "max_requests_per_worker", "0")).returncode == 0
    assert (await run("set", "log_level", "debug")).returncode == 0
    assert (await run("set", "access_log", "off")).returncode == 0
    assert await get(master.port) == (200, b"ok")

    checked = await asyncio.to_thread(
        subprocess.run,
        [AIOPREFORK, "check-config", "--config", str(conf), "--ctl-socket", master.ctl_path,
         "--no-import", "ops_apps:app"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    line = next(x for x in checked.stdout.splitlines() if x.startswith("min_workers "))
    assert line.split()[1] == "3" and line.endswith("# ctl"), line

    # kept across a graceful restart ...
    assert (await master.ctl("graceful"))[-1]["ok"]
    snap = await master.status()
    assert snap["min_workers"] == 3, snap
    # ... until the file changes the setting: the file decides again
    conf.write_text("[processes]\nworkers = 2\nmin_workers = 1\nmax_workers = 4\n")
    assert (await master.ctl("graceful"))[-1]["ok"]
    await until(lambda: "ctl set min_workers: dropped" in master.stderr, 10, "the drop", master)
    snap = await master.status()
    assert snap["min_workers"] == 1, snap
