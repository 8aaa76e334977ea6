"""`aioprefork ctl` without a control socket: the pid file and signals, like `apachectl -k`.

The master here is a small real process that writes its pid file and logs every signal it gets
(SIGTERM/SIGQUIT also make it exit), so the test sees exactly what ctl sent. Exit codes: 0 sent,
1 not running (no pid file, stale pid), 2 what only the socket can do.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from .helpers import run_cli

STAND_IN = r"""
import os, signal, sys, time
import setproctitle
setproctitle.setproctitle("aioprefork: master")  # what ctl checks before it signals a pid
log, pid_file = sys.argv[1], sys.argv[2]
def on(sig, frame):
    with open(log, "a") as f:
        f.write(signal.Signals(sig).name + "\n")
    if sig in (signal.SIGTERM, signal.SIGQUIT):
        sys.exit(0)
for name in ("SIGHUP", "SIGUSR1", "SIGWINCH", "SIGTTIN", "SIGTTOU", "SIGTERM", "SIGQUIT"):
    signal.signal(getattr(signal, name), on)
with open(pid_file + ".tmp", "w") as f:
    f.write(f"{os.getpid()}\n")
os.rename(pid_file + ".tmp", pid_file)
while True:
    time.sleep(0.05)
"""


@dataclass
class StandIn:
    proc: subprocess.Popen[bytes]
    pid_file: Path
    log: Path

    def signals(self, expect: int = 1) -> list[str]:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            lines = self.log.read_text().split() if self.log.exists() else []
            if len(lines) >= expect:
                return lines
            time.sleep(0.02)
        return self.log.read_text().split() if self.log.exists() else []


@pytest.fixture
def stand_in(sock_dir: Path) -> Iterator[StandIn]:
    pid_file, log = sock_dir / "master.pid", sock_dir / "signals.log"
    proc = subprocess.Popen([sys.executable, "-c", STAND_IN, str(log), str(pid_file)])
    try:
        deadline = time.monotonic() + 10
        while not pid_file.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "stand-in did not start"
            time.sleep(0.02)
        yield StandIn(proc, pid_file, log)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)


@pytest.mark.parametrize(
    ("args", "sent", "meaning"),
    [
        (["graceful"], "SIGUSR1", "graceful restart"),
        (["graceful-stop"], "SIGWINCH", "graceful stop"),
        (["scale", "-1"], "SIGTTOU", "min_workers - 1"),
        (["reopen-logs"], "SIGUSR1", "graceful restart, which reopens the logs"),
    ],
)
def test_commands_fall_back_to_signals(
    stand_in: StandIn, args: list[str], sent: str, meaning: str
) -> None:
    r = run_cli("ctl", *args, "--pid-file", str(stand_in.pid_file))
    assert r.code == 0, r.err
    pid = stand_in.proc.pid
    assert r.out == f"sent {sent} ({meaning}) to master pid {pid}\n"
    assert r.one_line_error == (
        f"aioprefork ctl: no control socket at {stand_in.pid_file}.ctl; "
        f"using pid file {stand_in.pid_file}"
    )
    assert stand_in.signals() == [sent]
    assert stand_in.proc.poll() is None


@pytest.mark.parametrize(("args", "sent"), [(["stop"], "SIGTERM"), (["stop", "--now"], "SIGQUIT")])
def test_stop_falls_back_to_signals_and_waits_for_the_exit(
    stand_in: StandIn, args: list[str], sent: str
) -> None:
    r = run_cli("ctl", *args, "--pid-file", str(stand_in.pid_file))
    assert r.code == 0, r.err
    assert r.out.splitlines() == [
        f"sent {sent} ({'immediate stop' if '--now' in args else 'stop'}) "
        f"to master pid {stand_in.proc.pid}",
        f"master pid {stand_in.proc.pid} has exited",
    ]
    assert stand_in.proc.wait(timeout=5) == 0
    assert stand_in.signals() == [sent]


def test_a_stop_timeout_is_said_to_need_the_socket(stand_in: StandIn) -> None:
    r = run_cli("ctl", "stop", "--timeout", "5s", "--pid-file", str(stand_in.pid_file))
    assert r.code == 0, r.err
    assert "--timeout needs the control socket; ignored" in r.err
    assert stand_in.signals() == ["SIGTERM"]


def test_a_stale_socket_file_falls_back_too(stand_in: StandIn) -> None:

    with socket.socket(socket.AF_UNIX) as dead:  # bound, never listening: a killed master's socket
        dead.bind(f"{stand_in.pid_file}.ctl")
    r = run_cli("ctl", "graceful", "--pid-file", str(stand_in.pid_file))
    assert r.code == 0, r.err
    assert stand_in.signals() == ["SIGUSR1"]


def test_status_without_socket_says_running_with_the_pid(stand_in: StandIn) -> None:
    pid = stand_in.proc.pid
    r = run_cli("ctl", "status", "--pid-file", str(stand_in.pid_file))
    assert r.code == 0, r.err
    assert r.out.startswith(f"aioprefork is running: master pid {pid} (from {stand_in.pid_file})")
    r = run_cli("ctl", "status", "--json", "--pid-file", str(stand_in.pid_file))
    assert r.out.strip() == f'{{"running": true, "pid": {pid}, "snapshot": null}}'
    assert stand_in.signals(expect=0) == []  # status never signals


def test_an_absolute_scale_needs_the_socket(stand_in: StandIn) -> None:
    r = run_cli("ctl", "scale", "4", "--pid-file", str(stand_in.pid_file))
    assert r.code == 2
    assert "needs the control socket" in r.one_line_error
    assert stand_in.signals(expect=0) == []


def test_not_running_without_a_pid_file(sock_dir: Path) -> None:
    for args in (["graceful"], ["status"]):
        r = run_cli("ctl", *args, "--pid-file", str(sock_dir / "none.pid"))
        assert r.code == 1
        assert r.one_line_error == (
            f"aioprefork ctl: not running (no control socket at {sock_dir}/none.pid.ctl; "
            f"no pid file at {sock_dir}/none.pid); if it is running, tell ctl what serve was "
            "told: --port, --config or --pid-file (or --ctl-socket)"
        )
    r = run_cli("ctl", "restart", "--ctl-socket", str(sock_dir / "x.ctl"))
    assert r.code == 1
    assert "no pid file configured" in r.one_line_error


def test_not_running_with_a_stale_pid_file(sock_dir: Path) -> None:
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait(timeout=10)
    pid_file = sock_dir / "stale.pid"
    pid_file.write_text(f"{gone.pid}\n")
    r = run_cli("ctl", "graceful", "--pid-file", str(pid_file))
    assert r.code == 1
    assert f"stale pid file {pid_file}: pid {gone.pid} is gone" in r.one_line_error


def test_a_pid_file_of_garbage_is_exit_2(sock_dir: Path) -> None:
    pid_file = sock_dir / "junk.pid"
    pid_file.write_text("hello\n")
    r = run_cli("ctl", "graceful", "--pid-file", str(pid_file))
    assert r.code == 2
    assert "does not hold a pid" in r.one_line_error


def test_a_stale_pid_file_naming_another_process_is_refused(sock_dir: Path) -> None:
    """The master was killed and its pid reused: ctl stop must not kill the newcomer."""
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        pid_file = sock_dir / "reused.pid"
        pid_file.write_text(f"{other.pid}\n")
        r = run_cli("ctl", "stop", "--pid-file", str(pid_file))
        assert r.code == 2, r.err
        assert r.one_line_error.startswith(
            f"aioprefork ctl: stale pid file {pid_file}: pid {other.pid} is "
        )
        assert "not an aioprefork master" in r.err
        time.sleep(0.2)
        assert other.poll() is None, "the unrelated process was signalled"
    finally:
        other.kill()
        other.wait(timeout=5)


def test_a_master_titled_process_newer_than_the_pid_file_is_refused(stand_in: StandIn) -> None:
    """Same title, but it started after the pid file was written: not the one that wrote it."""
    long_ago = time.time() - 3600
    os.utime(stand_in.pid_file, (long_ago, long_ago))
    r = run_cli("ctl", "stop", "--pid-file", str(stand_in.pid_file))
    assert r.code == 2, r.err
    assert "after the pid file was written" in r.one_line_error
    assert stand_in.signals(expect=0) == []
    assert stand_in.proc.poll() is None
