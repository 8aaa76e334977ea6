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
        (Config(port=8123), "/run/d/aioprefork-8123.ctl"),
        (Config(bind=("unix:/tmp/s", "[::1]:9000")), "/run/d/aioprefork-9000.ctl"),
        (Config(bind=("fd://3",)), "/run/d/aioprefork-unix.ctl"),
    ],
)
def test_ctl_socket_path(config: Config, path: str) -> None:
    assert daemon.ctl_socket_path(config, "/run/d") == path


def test_the_default_socket_lives_in_a_private_runtime_dir_never_world_writable_tmp() -> None:
    assert daemon.runtime_dir(0, {"XDG_RUNTIME_DIR": "/run/user/0"}) == "/run/aioprefork"
    assert daemon.runtime_dir(1000, {"XDG_RUNTIME_DIR": "/run/user/1000"}) == "/run/user/1000"
    assert daemon.runtime_dir(1000, {}) == "/tmp/aioprefork-1000"
    assert daemon.runtime_dir(1000, {"XDG_RUNTIME_DIR": "relative"}) == "/tmp/aioprefork-1000"
    assert daemon.ctl_socket_path(Config(port=8123)).startswith(daemon.runtime_dir() + "/")


def test_private_dir_is_made_0700_and_one_owned_by_another_uid_is_refused(tmp_path: Path) -> None:
    mine = str(tmp_path / "mine")
    old = os.umask(0)
    try:
        assert daemon.private_dir(mine) == mine
    finally:
        os.umask(old)
    assert os.stat(mine).st_mode & 0o777 == 0o700
    os.chmod(mine, 0o755)
    daemon.private_dir(mine)  # ours but open: closed again
    assert os.stat(mine).st_mode & 0o777 == 0o700
    squatted = tmp_path / "squatted"
    squatted.mkdir(mode=0o700)
    if os.geteuid() != 0:  # cannot give it away: another user's directory is /tmp's sticky root
        squatted = Path("/")
    else:
        os.chown(squatted, 65534, -1)
    with pytest.raises(
        UserError, match=r"owned by uid \d+, not by us: remove it or set ctl_socket"
    ):
        daemon.private_dir(str(squatted))


@pytest.mark.parametrize("umask", [0o000, 0o077])
def test_the_pid_file_is_0644_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = str(tmp_path / "a.pid")
    old = os.umask(umask)
    try:
        daemon.write_pid_file(path)
    finally:
        os.umask(old)
    assert os.stat(path).st_mode & 0o777 == 0o644
    assert daemon.read_pid_file(path) == os.getpid()


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
