"""Lifecycle hooks (aioprefork/hooks.py): where each runs, in which process, and what a hook that
raises does, with a real master, real workers and real signals."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest
from support import AIOPREFORK

from .conftest import APPS, StartMaster, get, until

pytestmark = pytest.mark.timeout(60)

ALL = ["on_starting", "when_ready", "on_reload", "on_exit", "post_fork", "post_worker_init",
       "worker_exit"]  # fmt: skip


def flags(**hooks: str) -> list[str]:
    return [a for name, path in hooks.items() for a in (f"--{name.replace('_', '-')}", path)]


def events(log: Path) -> list[dict[str, str]]:
    rows = []
    for line in log.read_text().splitlines() if log.exists() else []:
        name, *pairs = line.split()
        rows.append({"hook": name, **dict(p.split("=", 1) for p in pairs)})
    return rows


async def test_every_hook_runs_where_and_when_it_should(
    start_master: StartMaster, workdir: Path
) -> None:
    log = workdir / "hooks.log"
    every = flags(**{name: f"ops_hooks:{name}" for name in ALL})
    master = start_master("--workers", "2", *every, env={"HOOK_LOG": str(log)})
    await master.wait_ready(2)
    await until(lambda: any(e["hook"] == "when_ready" for e in events(log)), 10, "when_ready")
    first = {pid for pid in master.generations()}
    assert (await master.ctl("graceful"))[-1]["ok"]
    await master.wait_ready(2, gen=2)
    assert (await get(master.port))[0] == 200
    master.signal(signal.SIGTERM)
    assert await master.wait_exit(30) == 0

    seen = events(log)
    master_pid = str(master.pid)
    by_hook: dict[str, list[dict[str, str]]] = {}
    for e in seen:
        by_hook.setdefault(e["hook"], []).append(e)
    for name in ("on_starting", "when_ready", "on_reload", "on_exit"):
        assert [e["pid"] for e in by_hook[name]] == [master_pid], (name, seen)
    assert seen[0]["hook"] == "on_starting" and seen[-1]["hook"] == "on_exit", seen
    assert by_hook["when_ready"][0]["gen"] == "1" and by_hook["on_reload"][0]["gen"] == "2"
    # Each of the 4 workers (2 per generation): post_fork, then post_worker_init, then worker_exit.
    workers = {e["pid"] for e in by_hook["post_fork"]}
    assert len(workers) == 4 and master_pid not in workers
    assert {str(p) for p in first} <= workers
    for pid in workers:
        mine = [e["hook"] for e in seen if e["pid"] == pid]
        assert mine == ["post_fork", "post_worker_init", "worker_exit"], (pid, seen)
    assert sorted(e["gen"] for e in by_hook["post_fork"]) == ["1", "1", "2", "2"]
    assert (
        sorted(e["slot"] for e in by_hook["post_worker_init"]) == ["0", "0", "1", "1"]
        or len({e["slot"] for e in by_hook["post_worker_init"]}) >= 2
    )
    assert all(e["app"] == "prefork_apps:app" for e in seen)


async def test_a_raising_on_starting_stops_the_start_in_one_line(
    start_master: StartMaster, workdir: Path
) -> None:
    master = start_master(*flags(on_starting="ops_hooks:refuse"), env={"HOOK_LOG": "/dev/null"})
    assert await master.wait_exit(30) == 3
    err = master.stderr
    assert (
        "aioprefork: hook on_starting: ops_hooks:refuse raised RuntimeError: on_starting says no"
        in err
    )
    assert 'raise RuntimeError(f"{ctx.hook} says no")' in err  # its traceback, once
    assert err.count("Traceback (most recent call last)") == 1, err


async def test_a_raising_master_hook_is_reported_and_serving_goes_on(
    start_master: StartMaster, workdir: Path
) -> None:
    log = workdir / "hooks.log"
    master = start_master(
        *flags(when_ready="ops_hooks:refuse", on_reload="ops_hooks:refuse"),
        env={"HOOK_LOG": str(log)},
    )
    await master.wait_ready(1)
    assert (await master.ctl("graceful"))[-1]["ok"]
    assert (await get(master.port))[0] == 200
    err = master.stderr
    assert "hook when_ready: ops_hooks:refuse raised RuntimeError: when_ready says no" in err
    assert "hook on_reload: ops_hooks:refuse raised RuntimeError: on_reload says no" in err


async def test_a_raising_post_worker_init_is_a_boot_failure(
    start_master: StartMaster, workdir: Path
) -> None:
    master = start_master(
        *flags(post_worker_init="ops_hooks:refuse"), env={"HOOK_LOG": str(workdir / "log")}
    )
    assert await master.wait_exit(30) == 3
    assert (
        "hook post_worker_init: ops_hooks:refuse raised RuntimeError: post_worker_init says no"
        in master.stderr
    )


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("ops_hooks", "expected module:function, e.g. myhooks:post_fork"),
        ("ops_hooks:nothing", "cannot load 'ops_hooks:nothing': AttributeError"),
        ("no_such_module:f", "cannot load 'no_such_module:f': ModuleNotFoundError"),
        ("ops_hooks:not_plain", "'ops_hooks:not_plain' is not a plain function"),
    ],
)
def test_check_config_refuses_a_hook_it_cannot_load(value: str, problem: str) -> None:
    result = subprocess.run(
        [AIOPREFORK, "check-config", "prefork_apps:app", "--app-dir", str(APPS),
         "--post-fork", value],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"config error: post_fork = {value!r} (from cli): {problem}" in result.stderr
    assert "Traceback" not in result.stderr
