"""Stopping for real: TERM drains in-flight requests, QUIT and a second INT abort them, WINCH
drains with no timeout, an overdue drain is killed; --daemon with --pid-file."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import AIOPREFORK

from .conftest import (
    APP,
    APPS,
    ROOT,
    Master,
    StartMaster,
    alive,
    children_of,
    get,
    until,
)

pytestmark = pytest.mark.timeout(30)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGWINCH], ids=["TERM", "WINCH"])
async def test_stop_lets_the_slow_request_finish_then_exits(
    start_master: StartMaster, sig: signal.Signals
) -> None:
    master = start_master("--workers", "2", "--graceful-timeout", "10s")
    await master.wait_ready(2)
    workers = list(master.workers())
    slow = await _in_flight(master, 1.5)
    started = time.monotonic()
    master.signal(sig)
    status, body = await slow
    assert (status, body[:3]) == (200, b"ok ")
    assert await master.wait_exit(timeout=8) == 0
    took = time.monotonic() - started
    assert 1.0 < took < 4.0, f"exit {took:.1f}s after the signal"
    assert not any(alive(pid) for pid in workers)
    with pytest.raises(OSError):
        await get(master.port, timeout=2)  # the listener closed with the master
    print(f"\n{sig.name}: slow request completed, master exited {took:.2f}s after the signal")


async def _in_flight(master: Master, seconds: float) -> asyncio.Task[tuple[int, bytes]]:
    """A request the app sleeps `seconds` in, 0.3 s under way when this returns."""
    slow = asyncio.ensure_future(get(master.port, f"/sleep?s={seconds}"))
    await asyncio.sleep(0.3)
    return slow


async def _assert_aborted(
    master: Master,
    slow: asyncio.Task[tuple[int, bytes]],
    started: float,
    within: float,
    exit_timeout: float = 5,
) -> None:
    """`slow` was cut off, and the master exited 0 less than `within` seconds after `started`."""
    with pytest.raises((OSError, ConnectionError)):
        await slow
    assert await master.wait_exit(timeout=exit_timeout) == 0
    assert time.monotonic() - started < within


async def test_quit_aborts_in_flight_requests(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", "--graceful-timeout", "10s")
    await master.wait_ready(1)
    slow = await _in_flight(master, 8)
    started = time.monotonic()
    master.signal(signal.SIGQUIT)
    await _assert_aborted(master, slow, started, within=3)


async def test_second_int_stops_at_once(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", "--graceful-timeout", "20s")
    await master.wait_ready(1)
    slow = await _in_flight(master, 8)
    master.signal(signal.SIGINT)
    await until(lambda: "stopping 1 workers within 20s" in master.stderr, 5, "draining", master)
    started = time.monotonic()
    master.signal(signal.SIGINT)
    await _assert_aborted(master, slow, started, within=3)


async def test_overdue_drain_is_killed_at_graceful_timeout(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", "--graceful-timeout", "1s")
    await master.wait_ready(1)
    slow = await _in_flight(master, 20)
    started = time.monotonic()
    master.signal(signal.SIGTERM)
    await _assert_aborted(master, slow, started, within=3.5, exit_timeout=6)


async def test_daemon_writes_pid_file_and_detaches(workdir: Path) -> None:
    pid_file = workdir / "master.pid"
    listener = socket.create_server(("127.0.0.1", 0))  # bound before the detach, so it survives it
    port, fd = listener.getsockname()[1], listener.fileno()
    args = [AIOPREFORK, "serve", APP, "--app-dir", str(APPS), "--bind", f"fd://{fd}"]
    args += ["--workers", "1", "--daemon", "--pid-file", str(pid_file), "--no-metrics"]
    error_log, access_log = workdir / "error.log", workdir / "access.log"
    args += ["--error-log", str(error_log), "--access-log-file", str(access_log)]
    daemon_pid = 0
    try:
        started = subprocess.run(args, cwd=ROOT, capture_output=True, timeout=10, pass_fds=(fd,))
        listener.close()
        assert started.returncode == 0, started.stderr
        assert started.stdout == started.stderr == b""  # stdio went to /dev/null, logs to files
        daemon_pid = await until(lambda: pid_file.exists() and int(pid_file.read_text()), 5, "pid")
        with open(f"/proc/{daemon_pid}/stat") as f:
            session = int(f.read().rsplit(")", 1)[1].split()[3])
        assert session != os.getsid(0)  # detached into its own session
        await until(lambda: len(children_of(daemon_pid)) == 1, 10, "the worker")
        assert await _get_retry(port) == 200
        await until(lambda: '"GET / HTTP/1.1" 200' in access_log.read_text(), 5, "the access line")
        assert "aioprefork.server: running: 1 workers ready" in error_log.read_text()
        assert os.path.exists(f"{pid_file}.ctl")  # the control socket sits beside the pid file
        os.kill(daemon_pid, signal.SIGTERM)
        await until(lambda: not alive(daemon_pid), 10, "the daemon to exit")
        assert not pid_file.exists()
    finally:
        listener.close()
        if daemon_pid:
            for pid in [*children_of(daemon_pid), daemon_pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


@pytest.mark.parametrize(
    ("app", "held", "code", "words"),
    [
        (APP, True, 2, ["pid file", "names a running process"]),  # fails after the detach
        ("no_such_module_xyz:app", False, 3, ["no worker could boot", "no_such_module_xyz"]),
    ],
)
def test_a_daemon_that_cannot_start_says_why_and_exits_non_zero(
    workdir: Path, app: str, held: bool, code: int, words: list[str]
) -> None:
    # The detached master's stderr is /dev/null: the command that started it reports for it.
    pid_file = workdir / "master.pid"
    if held:
        pid_file.write_text(f"{os.getpid()}\n")  # a live process (this test) holds it
    args = [AIOPREFORK, "serve", app, "--app-dir", str(APPS), "--port", "0", "--workers", "1"]
    args += ["--daemon", "--pid-file", str(pid_file), "--no-metrics"]
    args += ["--ctl-socket", str(workdir / "ctl.sock"), "--no-access-log"]
    args += ["--error-log", str(workdir / "error.log")]
    started = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert started.returncode == code
    lines = started.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aioprefork: "), started.stderr
    for word in words:
        assert word in lines[0]
    assert pid_file.exists() == held  # ours is left alone; the daemon's went with it


async def _get_retry(port: int) -> int:
    for _ in range(50):
        try:
            status, _ = await get(port)
            return status
        except OSError:
            await asyncio.sleep(0.1)
    raise AssertionError("the daemon never answered")


def readable_copy_of_the_apps(mode: int) -> str:
    """The test apps copied where `nobody` can (0755) or cannot (0700) read them: the checkout
    itself may sit under a private (0700) directory."""
    directory = Path(tempfile.mkdtemp(prefix="apf-app-", dir="/tmp"))
    shutil.copy(APPS / "prefork_apps.py", directory)
    directory.chmod(mode)
    return str(directory)


@pytest.fixture
def app_copies() -> Iterator[list[str]]:
    made: list[str] = []
    yield made
    for directory in made:
        shutil.rmtree(directory, ignore_errors=True)


async def test_user_drops_privileges_after_binding(
    start_master: StartMaster, app_copies: list[str]
) -> None:
    app_dir = readable_copy_of_the_apps(0o755)
    app_copies.append(app_dir)
    master = start_master("--workers", "1", "--user", "nobody", "--app-dir", app_dir)
    if os.geteuid() != 0:  # only root may switch users: the master refuses at boot, one line
        assert await master.wait_exit(timeout=10) == 2
        assert "need root" in master.stderr
        return
    await master.wait_ready(1)
    (worker,) = master.workers()
    for pid in (master.pid, worker):
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert set(uids) == {"65534"}, (pid, uids)
    status, _ = await get(master.port)
    assert status == 200
    with open(f"/proc/{master.pid}/cmdline", "rb") as f:
        assert f.read().rstrip(b"\0") == b"aioprefork: master"


async def test_a_dropped_user_that_cannot_read_the_app_dir_is_told_permission_denied(
    start_master: StartMaster, app_copies: list[str]
) -> None:
    app_dir = readable_copy_of_the_apps(0o700)  # root's own: nobody cannot enter it
    app_copies.append(app_dir)
    master = start_master("--workers", "1", "--user", "nobody", "--app-dir", app_dir)
    code = await master.wait_exit(timeout=15)
    if os.geteuid() != 0:  # only root may switch users: the master refuses at boot, one line
        assert code == 2 and "need root" in master.stderr
        return
    assert code == 3, master.stderr
    assert f"permission denied reading {app_dir} (as uid 65534)" in master.stderr
    assert "no module named" not in master.stderr
