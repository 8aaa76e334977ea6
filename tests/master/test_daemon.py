"""master/daemon.py: the control socket path rule, pid files, owner resolution."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aioprefork.config.model import Config
from aioprefork.errors import UserError
from aioprefork.master import daemon


@pytest.mark.parametrize(
    ("config", "path"),
    [
        (Config(ctl_socket="/run/x.ctl", pid_file="/run/a.pid"), "/run/x.ctl"),
        (Config(pid_file="/run/a.pid"), "/run/a.pid.ctl"),
        (Config(port=8123), "/tmp/aioprefork-8123.ctl"),
        (Config(bind=("unix:/tmp/s", "[::1]:9000")), "/tmp/aioprefork-9000.ctl"),
        (Config(bind=("fd://3",)), "/tmp/aioprefork-unix.ctl"),
    ],
)
def test_ctl_socket_path(config: Config, path: str) -> None:
    assert daemon.ctl_socket_path(config) == path


def test_pid_file_round_trip(tmp_path: Path) -> None:
    pid_file = str(tmp_path / "m.pid")
    daemon.write_pid_file(pid_file)
    assert daemon.read_pid_file(pid_file) == os.getpid()
    daemon.write_pid_file(pid_file)  # our own pid: rewriting is fine
    daemon.remove_pid_file(pid_file)
    assert not os.path.exists(pid_file)


def test_pid_file_of_a_live_process_is_refused(tmp_path: Path) -> None:
    pid_file = tmp_path / "m.pid"
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        pid_file.write_text(f"{other.pid}\n")
        with pytest.raises(UserError, match="running process"):
            daemon.write_pid_file(str(pid_file))
        daemon.remove_pid_file(str(pid_file))  # not ours: left alone
        assert pid_file.exists()
    finally:
        other.kill()
        other.wait()
    daemon.write_pid_file(str(pid_file))  # stale now: overwritten
    assert daemon.read_pid_file(str(pid_file)) == os.getpid()


def test_pid_file_in_a_missing_directory_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot write pid file"):
        daemon.write_pid_file(str(tmp_path / "nope" / "m.pid"))


def test_resolve_owner() -> None:
    assert daemon.resolve_owner("", "") is None
    assert daemon.resolve_owner("0", "0") == (0, 0)
    assert daemon.resolve_owner(str(os.getuid()), "") == (os.getuid(), os.getgid())
    with pytest.raises(UserError) as info:
        daemon.resolve_owner("no-such-user-here", "")
    assert str(info.value) == (
        "config error: user = 'no-such-user-here' (from --user): no such account on this machine;"
        " create it or name an existing one"
    )
    with pytest.raises(UserError, match=r"group = 'no-such-group' \(from --group\)"):
        daemon.resolve_owner("0", "no-such-group")


def test_dropping_to_ourselves_is_a_no_op() -> None:
    before = (os.getuid(), os.getgid(), os.getgroups())
    daemon.drop_privileges(str(os.getuid()), str(os.getgid()))
    assert (os.getuid(), os.getgid(), os.getgroups()) == before
