"""`aioprefork ctl` against a real master (`aioprefork serve --workers N`), every command.

One master serves the commands that leave it running; each stop flavour gets a fresh one. Every
master runs in its own session and its whole process group is SIGKILLed by pid in teardown.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import short_tmpdir

from aioprefork.control import protocol

from .helpers import AIOPREFORK, Result, clean_env, free_port, header, run_cli

REPO = Path(__file__).resolve().parents[2]
HELLO = "examples.hello:app"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    dir: Path
    port: int
    conf: Path

    @property
    def pid_file(self) -> Path:
        return self.dir / "master.pid"

    @property
    def ctl_socket(self) -> Path:
        return self.dir / "master.pid.ctl"

    def ctl(self, *args: str, timeout: float = 60) -> Result:
        return run_cli("ctl", *args, "--pid-file", str(self.pid_file), timeout=timeout)

    def status(self) -> dict[str, Any]:
        r = self.ctl("status", "--json")
        assert r.code == 0, r.err
        data: dict[str, Any] = json.loads(r.out)
        return data

    def get(self, path: str = "/") -> int:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            conn.request("GET", path)
            response = conn.getresponse()
            response.read()
            return response.status
        finally:
            conn.close()

    def log(self) -> str:
        return (self.dir / "master.log").read_text(errors="replace")[-3000:]


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def ready_workers(server: Server) -> int:
    snap = server.status()
    return sum(1 for s in snap["slots"] if s["current"] and s["state"] == "ready")


def start(dir_: Path, workers: int = 1) -> Server:
    port = free_port()
    conf = dir_ / "server.toml"
    if not conf.exists():
        conf.write_text(f'app = "{HELLO}"\n')
    log = (dir_ / "master.log").open("wb")
    proc = subprocess.Popen(
        [
            AIOPREFORK, "serve", "--config", str(conf), "--workers", str(workers),
            "--host", "127.0.0.1", "--port", str(port), "--pid-file", str(dir_ / "master.pid"),
            "--no-metrics", "--graceful-timeout", "5s", "--log-level", "warning", "--no-access-log",
        ],
        cwd=REPO,
        stdout=log,
        stderr=subprocess.STDOUT,
        env=clean_env(),
        start_new_session=True,
    )  # fmt: skip
    log.close()
    server = Server(proc, dir_, port, conf)

    def up() -> bool:
        assert proc.poll() is None, f"master exited {proc.returncode}: {server.log()}"
        if not server.ctl_socket.exists():
            return False
        try:
            return server.get() == 200
        except OSError:
            return False

    try:
        wait_for(up, 30, "the master to serve")
    except AssertionError as exc:
        kill(server)
        raise AssertionError(f"{exc}\n{server.log()}") from None
    return server


def kill(server: Server) -> None:
    """SIGKILL the master's whole process group (its workers included), by pid."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def shared_dir() -> Iterator[Path]:
    with short_tmpdir("apf-m-") as path:
        yield path


@pytest.fixture(scope="module")
def server(shared_dir: Path) -> Iterator[Server]:
    s = start(shared_dir)
    try:
        yield s
    finally:
        kill(s)


@pytest.fixture
def fresh(sock_dir: Path) -> Iterator[Server]:
    s = start(sock_dir)
    try:
        yield s
    finally:
        kill(s)


# --- a running master ---------------------------------------------------------------------------
def test_status_shows_the_scoreboard(server: Server) -> None:
    r = server.ctl("status")
    assert r.code == 0, r.err
    assert f"master pid {server.proc.pid}, running" in r.out
    assert "Scoreboard:" in r.out
    snap = server.status()
    assert snap["pid"] == server.proc.pid
    assert snap["master_state"] == "running"
    assert len(snap["scoreboard"]) == snap["server_limit"]
    assert any(s["state"] == "ready" for s in snap["slots"])


def test_the_control_socket_is_0600_and_ours(server: Server) -> None:
    st = os.stat(server.ctl_socket)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()


def raw(path: Path, data: bytes) -> list[dict[str, Any]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(str(path))
        s.sendall(data)
        received = b""
        while chunk := s.recv(65536):
            received += chunk
    return protocol.FrameDecoder().feed(received)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        header(protocol.MAX_REQUEST + 1) + b"x" * 100,
        header(9) + b"not json!",
        protocol.encode({"v": 1, "cmd": "self-destruct"}),
    ],
    ids=["garbage", "oversized", "non-json", "unknown-cmd"],
)
def test_malformed_socket_input_leaves_the_master_serving(server: Server, data: bytes) -> None:
    frames = raw(server.ctl_socket, data)
    assert len(frames) == 1 and frames[0]["ok"] is False and frames[0]["error"]
    assert server.proc.poll() is None
    assert server.get() == 200
    assert server.status()["master_state"] == "running"


def test_a_silent_or_vanishing_client_leaves_the_master_serving(server: Server) -> None:
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(server.ctl_socket))
        s.sendall(header(1000) + b"{")  # half a request, then gone
    with socket.socket(socket.AF_UNIX) as s:
        s.connect(str(server.ctl_socket))
        s.sendall(protocol.encode({"v": 1, "cmd": "status"}))
        s.shutdown(socket.SHUT_RDWR)  # asks and leaves before the answer
    assert server.get() == 200
    assert server.status()["master_state"] == "running"


def test_graceful_restart_starts_a_new_generation(server: Server) -> None:
    before = server.status()["generation"]
    r = server.ctl("graceful")
    assert r.code == 0, r.err + server.log()
    assert r.out.strip()
    snap = server.status()
    assert snap["generation"] == before + 1
    assert snap["master_state"] == "running"
    assert server.get() == 200


def test_restart_starts_a_new_generation(server: Server) -> None:
    before = server.status()["generation"]
    r = server.ctl("restart")
    assert r.code == 0, r.err + server.log()
    wait_for(lambda: server.status()["generation"] == before + 1, 10, "the new generation")
    wait_for(lambda: server.get() == 200, 10, "serving after restart")


def test_a_graceful_restart_that_cannot_boot_rolls_back(server: Server) -> None:
    before = server.status()["generation"]
    server.conf.write_text('app = "no_such_module_here:app"\n')
    try:
        r = server.ctl("graceful")
    finally:
        server.conf.write_text(f'app = "{HELLO}"\n')
    assert r.code == 2, r.out + r.err
    assert "no_such_module_here" in r.one_line_error
    snap = server.status()
    assert snap["generation"] in (before, before + 1)  # the failed one may be counted
    assert snap["master_state"] == "running"
    assert server.get() == 200  # the old generation kept serving


def test_a_bad_config_on_reload_is_refused_and_the_old_one_kept(server: Server) -> None:
    server.conf.write_text(f'app = "{HELLO}"\nbacklog = "lots"\n')
    try:
        r = server.ctl("graceful")
    finally:
        server.conf.write_text(f'app = "{HELLO}"\n')
    assert r.code == 2, r.out + r.err
    assert "backlog" in r.one_line_error
    assert server.get() == 200


def test_scale_up_and_down(server: Server) -> None:
    r = server.ctl("scale", "+1")
    assert r.code == 0, r.err + server.log()
    assert server.status()["min_workers"] == 2
    wait_for(lambda: ready_workers(server) >= 2, 20, "a second worker")
    r = server.ctl("scale", "-1")
    assert r.code == 0, r.err
    assert server.status()["min_workers"] == 1
    r = server.ctl("scale", "1")
    assert r.code == 0, r.err
    assert server.status()["min_workers"] == 1


def test_scale_says_when_it_clamps(server: Server) -> None:
    """`scale 99` and `scale 0` were clamped silently."""
    ceiling = server.status()["max_workers"]
    r = server.ctl("scale", "0")
    assert r.code == 0, r.err
    assert r.out.strip() == "min_workers 1 (was 1) (clamped to 1: a pool has at least one worker)"
    r = server.ctl("scale", "99")
    assert r.code == 0, r.err
    assert r.out.strip() == f"min_workers {ceiling} (was 1) (clamped to max_workers={ceiling})"
    r = server.ctl("scale", "1")
    assert r.code == 0, r.err
    assert r.out.strip() == f"min_workers 1 (was {ceiling})"
    # 4000 free slots > max_spare_slots: idle workers retire, one per tick (2 hold 2000, kept)
    wait_for(lambda: server.status()["active_workers"] <= 2, 30, "idle workers to retire")


def test_reopen_logs(server: Server) -> None:
    r = server.ctl("reopen-logs")
    assert r.code == 0, r.err + server.log()
    assert server.get() == 200


def test_status_watch(server: Server) -> None:
    r = server.ctl("status", "--watch", "0.2", "--count", "2")
    assert r.code == 0, r.err
    assert r.out.count("Scoreboard:") == 2


# --- stopping (a fresh master each) ------------------------------------------------------------
@pytest.mark.parametrize(
    "args", [["stop"], ["stop", "--now"], ["stop", "--timeout", "2s"], ["graceful-stop"]]
)
def test_stop_commands_stop_the_master(fresh: Server, args: list[str]) -> None:
    r = fresh.ctl(*args)
    assert r.code == 0, r.err + fresh.log()
    assert r.out.splitlines()[-1] == f"master pid {fresh.proc.pid} has exited"
    assert fresh.proc.wait(timeout=15) == 0
    assert not fresh.ctl_socket.exists()
    r = fresh.ctl("status")
    assert r.code == 1
    assert "not running" in r.one_line_error
    with pytest.raises(OSError):
        fresh.get()


def test_without_the_socket_ctl_signals_the_pid(fresh: Server) -> None:
    fresh.ctl_socket.unlink()  # e.g. /tmp cleaned: the master still runs
    r = fresh.ctl("status")
    assert r.code == 0, r.err
    assert f"master pid {fresh.proc.pid}" in r.out
    r = fresh.ctl("stop")
    assert r.code == 0, r.err + fresh.log()
    assert "sent SIGTERM (stop)" in r.out
    assert "using pid file" in r.err
    assert fresh.proc.wait(timeout=15) == 0
    assert fresh.ctl("graceful").code == 1
