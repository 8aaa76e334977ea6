"""The server's logs through a real master and workers: logger names, an app that configures
logging itself, log files reopened by `ctl reopen-logs`, `--daemon` without log files, and the
"running" line once the boot generation is ready."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
from pathlib import Path

from support import AIOPREFORK

from aioprefork.config.model import Config
from aioprefork.logs import discarded_by_daemon
from aioprefork.master.arbiter import size_line

from .conftest import APP, APPS, ROOT, Master, StartMaster, children_of, get, until


def _lines(text: str, needle: str) -> list[str]:
    return [line for line in text.splitlines() if needle in line]


async def test_an_app_that_configures_logging_keeps_its_lines_once_and_ours_survive(
    start_master: StartMaster,
) -> None:
    # The app's dictConfig (at import, in the worker) disables every existing logger and gives
    # its own logger a handler that propagates: a handler of ours on the root logger printed each
    # of its lines twice, and our disabled loggers never logged the app's exception.
    master = start_master("--workers", "1", app="logging_app:app")
    await master.wait_ready(1)
    assert (await get(master.port, "/"))[0] == 200
    assert (await get(master.port, "/boom"))[0] == 500
    await until(
        lambda: "Exception in ASGI application" in master.stderr, 10, "the 500's log", master
    )
    err = master.stderr
    lines = err.splitlines()
    for line in ("APP myapp INFO request /", "APP myapp.views WARNING view warning /boom"):
        assert lines.count(line) == 1, err
    assert len(_lines(err, "request /boom")) == 1, err  # not again in our format
    assert len(_lines(err, "view warning /")) == 2, err
    (boom,) = _lines(err, "Exception in ASGI application")
    assert "] [ERROR] aioprefork.app: " in boom, boom
    assert "ValueError: boom" in err


async def test_every_line_names_what_it_carries(start_master: StartMaster) -> None:
    master = start_master("--workers", "1")
    await master.wait_ready(1)
    err = master.stderr
    assert "aioprefork.error" not in err
    info = _lines(err, "[INFO]")
    assert info and all(" aioprefork.server: " in line for line in info), err
    assert re.search(r"\[INFO\] aioprefork\.server: worker 0 \(pid \d+, gen 1\) ready", err), err


def test_size_line_waits_for_the_boot_generation_then_reports_changes() -> None:
    assert size_line(ready=1, booting=True, announced=0) == ""  # 1 of 2 up: not "running" yet
    assert size_line(ready=2, booting=False, announced=0) == "running: 2 workers ready"
    assert size_line(ready=2, booting=False, announced=2) == ""
    assert size_line(ready=2, booting=True, announced=2) == ""  # a replacement boots
    assert size_line(ready=3, booting=False, announced=2) == "workers: 3 ready (was 2)"
    assert size_line(ready=1, booting=False, announced=3) == "workers: 1 ready (was 3)"
    assert size_line(ready=0, booting=False, announced=3) == ""  # stopping: the exits say it


async def test_running_is_logged_once_the_boot_generation_is_ready_then_one_line_per_scale(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "3", "--min-workers", "3", "--max-workers", "4")
    await master.wait_ready(3)
    await until(lambda: "running:" in master.stderr, 10, "the running line", master)
    err = master.stderr
    (running,) = _lines(err, "running:")
    assert running.endswith("aioprefork.server: running: 3 workers ready"), err
    ready = [
        i
        for i, line in enumerate(err.splitlines())
        if re.search(r"worker \d \(pid", line) and line.endswith(" ready")
    ]
    assert len(ready) == 3 and max(ready) < err.splitlines().index(running), err
    await master.ctl("scale", n="4")
    await master.wait_ready(4)
    await until(lambda: "workers: 4 ready (was 3)" in master.stderr, 10, "the scale line", master)
    await master.ctl("scale", n="3")
    await until(
        lambda: "workers: 3 ready (was 4)" in master.stderr, 15, "the scale-down line", master
    )
    assert len(_lines(master.stderr, "running:")) == 1


async def test_log_files_are_reopened_by_ctl_reopen_logs_in_master_and_workers(
    start_master: StartMaster, workdir: Path
) -> None:
    error_log, access_log = workdir / "error.log", workdir / "access.log"
    master = start_master(
        "--workers", "2", "--min-workers", "2", "--max-workers", "2",
        "--error-log", str(error_log), "--access-log", "--access-log-file", str(access_log),
    )  # fmt: skip
    await master.wait_ready(2)
    await _requests_until_both_workers_answered(master)
    assert '"GET / HTTP/1.1" 200' in access_log.read_text()
    assert "aioprefork.server: running: 2 workers ready" in error_log.read_text()
    assert "running:" not in master.stderr  # the error log went to its file, not to stderr
    # logrotate: move the files away, then ask every process to reopen its logs
    error_log.rename(workdir / "error.log.1")
    access_log.rename(workdir / "access.log.1")
    (reply,) = (await master.ctl("reopen-logs"))[-1:]
    assert reply["ok"], reply
    pids = await _requests_until_both_workers_answered(master)
    written = access_log.read_text()
    assert written.count('"GET / HTTP/1.1" 200') >= 2, written
    assert {line.split()[0] for line in written.splitlines()} == {"127.0.0.1"}
    await until(
        lambda: error_log.exists() and "logs reopened" in error_log.read_text(),
        5,
        "reopened",
        master,
    )
    assert "logs reopened" not in (workdir / "error.log.1").read_text()
    assert len(pids) == 2


async def _requests_until_both_workers_answered(master: Master) -> set[str]:
    """GET / on fresh connections until both workers have answered (their pids in the body)."""
    pids: set[str] = set()
    for _ in range(200):
        status, body = await get(master.port, "/")
        assert status == 200
        pids.add(body.decode().split()[-1])
        if len(pids) == 2:
            return pids
    raise AssertionError(f"only {pids} answered")


async def test_daemon_without_log_files_warns_in_one_line(workdir: Path) -> None:
    pid_file = workdir / "master.pid"
    args = [AIOPREFORK, "serve", APP, "--app-dir", str(APPS), "--port", "0", "--workers", "1"]
    args += ["--daemon", "--pid-file", str(pid_file), "--no-metrics"]
    args += ["--ctl-socket", str(workdir / "ctl.sock")]
    daemon_pid = 0
    try:
        started = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert started.returncode == 0, started.stderr
        daemon_pid = await until(lambda: pid_file.exists() and int(pid_file.read_text()), 5, "pid")
        assert started.stderr.splitlines() == [
            f"aioprefork: {discarded_by_daemon(Config(daemon=True))}"
        ]
    finally:
        if daemon_pid:
            for pid in [*children_of(daemon_pid), daemon_pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_the_daemon_warning_names_what_is_discarded() -> None:
    config = Config(daemon=True)
    assert discarded_by_daemon(config) == (
        "warning: --daemon detaches from the terminal and discards the error log and the "
        "access log: set --error-log PATH and --access-log-file PATH (or log_config)"
    )
    assert "discards the access log: set --access-log-file PATH" in discarded_by_daemon(
        Config(daemon=True, error_log="/var/log/e.log")
    )
    assert discarded_by_daemon(Config(daemon=True, error_log="e", access_log=False)) == ""
    assert discarded_by_daemon(Config(daemon=True, log_config="l.json")) == ""
    assert discarded_by_daemon(Config()) == ""


async def test_log_files_stay_writable_after_dropping_to_user(
    start_master: StartMaster, workdir: Path
) -> None:
    # The master opens the files as root; workers reopen them after the fork, and reopen-logs
    # reopens them everywhere, as --user: the files are handed over to that user first.
    workdir.chmod(0o777)  # a log directory that user may create files in (logrotate's job)
    error_log, access_log = workdir / "error.log", workdir / "access.log"
    master = start_master(
        "--workers", "1", "--user", "nobody", "--error-log", str(error_log),
        "--access-log", "--access-log-file", str(access_log),
    )  # fmt: skip
    if os.geteuid() != 0:  # only root may switch users: the master refuses at boot, one line
        assert await master.wait_exit(timeout=10) == 2
        assert "need root" in error_log.read_text() + master.stderr
        return
    await master.wait_ready(1)
    assert (await get(master.port, "/"))[0] == 200
    await until(
        lambda: '"GET / HTTP/1.1" 200' in access_log.read_text(), 5, "the access line", master
    )
    assert "Logging error" not in master.stderr + error_log.read_text()
    access_log.rename(workdir / "access.log.1")
    assert (await master.ctl("reopen-logs"))[-1]["ok"]
    assert (await get(master.port, "/"))[0] == 200
    await until(
        lambda: access_log.exists() and "GET /" in access_log.read_text(), 5, "reopened", master
    )
    assert access_log.stat().st_uid == 65534


async def test_a_daemon_with_an_error_log_sends_its_stderr_there(workdir: Path) -> None:
    # Tracebacks of a dying worker and faulthandler's stacks of a hung one bypass logging: a
    # daemon's stderr was /dev/null; it is now the error log, reopened with it.
    pid_file, error_log = workdir / "master.pid", workdir / "error.log"
    args = [AIOPREFORK, "serve", "stderr_app:app", "--app-dir", str(APPS), "--port", "0"]
    args += ["--workers", "1", "--daemon", "--pid-file", str(pid_file), "--no-metrics"]
    args += ["--ctl-socket", str(workdir / "ctl.sock"), "--no-access-log"]
    args += ["--error-log", str(error_log)]
    daemon_pid = 0
    try:
        started = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=30)
        assert (started.returncode, started.stderr) == (0, "")
        daemon_pid = await until(lambda: pid_file.exists() and int(pid_file.read_text()), 5, "pid")
        await until(lambda: "straight to stderr" in error_log.read_text(), 10, "the app's stderr")
        error_log.rename(workdir / "error.log.1")
        os.kill(daemon_pid, signal.SIGUSR1)  # graceful: a new worker imports the app again
        await until(
            lambda: error_log.exists() and "straight to stderr" in error_log.read_text(),
            20,
            "the new worker's stderr in the reopened file",
        )
    finally:
        if daemon_pid:
            for pid in [*children_of(daemon_pid), daemon_pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
