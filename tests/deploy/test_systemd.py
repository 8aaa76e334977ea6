"""deploy/systemd/ for real, without a systemd PID 1: `systemd-socket-activate` plays the socket
unit (binds, waits for the first connection, execs the service with LISTEN_FDS/LISTEN_PID), and
the service unit's own Environment=, ExecStart=, ExecReload= and KillSignal= lines are run as
systemd would run them (paths moved into a temporary directory, the venv's aioprefork).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support import short_tmpdir

from .support import DEPLOY, VENV_BIN, Procs, answers, free_port, http_get, run, start, tool
from .support import wait_for as wait

pytestmark = pytest.mark.timeout(90)

UNIT_DIR = DEPLOY / "systemd"


def unit_values(text: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", text, re.M)


def unit_command(line: str) -> list[str]:
    argv = shlex.split(line)
    return [str(VENV_BIN / Path(argv[0]).name), *argv[1:]]  # /opt/aioprefork/venv/bin -> venv


@pytest.fixture
def tmp() -> Iterator[Path]:
    with short_tmpdir("apf-sd-") as path:
        yield path


def test_units_pass_systemd_analyze_verify(tmp: Path) -> None:
    """systemd's own parser accepts every line (Type=notify, WatchdogSec=...): it prints a
    line for anything it would ignore, so silence is the pass."""
    for unit in ("aioprefork.service", "aioprefork.socket"):
        text = (UNIT_DIR / unit).read_text().replace("/opt/aioprefork/venv/bin", str(VENV_BIN))
        (tmp / unit).write_text(text)
    result = run([tool("systemd-analyze"), "verify", "--man=no", str(tmp / "aioprefork.service")])
    assert result.returncode == 0 and not (result.stdout + result.stderr).strip(), (
        result.stdout + result.stderr
    )
    assert unit_values((tmp / "aioprefork.service").read_text(), "Type") == ["notify"]


def _notifications(sock: socket.socket) -> list[dict[str, str]]:
    found: list[dict[str, str]] = []
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return found
        found.append(dict(line.split("=", 1) for line in data.decode().splitlines() if line))


def test_socket_activation_reload_and_stop(tmp: Path) -> None:
    service = (UNIT_DIR / "aioprefork.service").read_text()
    socket_unit = (UNIT_DIR / "aioprefork.socket").read_text()
    port, metrics = free_port(), free_port()
    assert unit_values(socket_unit, "Accept") == ["no"]

    # Environment= of the unit, with /run/aioprefork and /etc/aioprefork moved under tmp.
    env: dict[str, str] = {}
    for assignment in unit_values(service, "Environment"):
        key, _, value = assignment.partition("=")
        env[key] = value.replace("/run/aioprefork", str(tmp)).replace("/etc/aioprefork", str(tmp))
    config = Path(env["AIOPREFORK_CONFIG"])
    config.write_text(
        "[app]\n"
        'app = "app:app"\n'
        f'app_dir = "{Path(__file__).parent}"\n'
        "[processes]\n"
        "workers = 2\n"
        'graceful_timeout = "10s"\n'
        "[metrics]\n"
        f'metrics_bind = "127.0.0.1:{metrics}"\n'
        "[logging]\n"
        "access_log = false\n"
    )
    # Type=notify: systemd's NOTIFY_SOCKET, owned by the test.
    assert unit_values(service, "Type") == ["notify"]
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp / "notify"))
    notify.setblocking(False)
    env["NOTIFY_SOCKET"] = str(tmp / "notify")
    [exec_start] = unit_values(service, "ExecStart")
    [exec_reload] = unit_values(service, "ExecReload")
    [kill_signal] = unit_values(service, "KillSignal")
    [stop_timeout] = unit_values(service, "TimeoutStopSec")

    procs = Procs()
    try:
        activator = procs.add(
            start(
                [tool("systemd-socket-activate"), "-l", f"127.0.0.1:{port}"]
                + [a for k, v in env.items() for a in ("-E", f"{k}={v}")]
                + unit_command(exec_start),
                tmp / "service.log",
                name="socket-activate",
            )
        )
        # Like the socket unit: the port is bound before the service runs, and the first
        # connection starts it; that request waits in the backlog, it is not refused.
        wait(lambda: "Listening on" in activator.output(), 10, "the activation socket")
        status, body = http_get("127.0.0.1", port, "/", timeout=30)
        assert (status, body) == (200, b"ok")
        pid = activator.pid  # exec'd: the master is the activator's pid (LISTEN_PID matched)
        assert "aioprefork" in Path(f"/proc/{pid}/cmdline").read_text()
        assert stat.S_ISSOCK(os.stat(f"/proc/{pid}/fd/3").st_mode)  # fd 3 = the passed socket
        assert "--bind" not in exec_start and "--port" not in exec_start
        assert Path(env["AIOPREFORK_PID_FILE"]).read_text().strip() == str(pid)
        wait(answers("127.0.0.1", metrics, "/readyz"), 20, "readiness")
        seen = _notifications(notify)
        assert any(m.get("READY") == "1" for m in seen), seen

        # ExecReload (systemctl reload) = ctl graceful: a new generation on the same socket.
        # (Zero failed requests under load through a reload is test_haproxy.py's subject.)
        workers_before = set(_worker_pids(pid))
        reload = run(unit_command(exec_reload), env=env, timeout=60)
        assert reload.returncode == 0, reload.stdout + reload.stderr
        assert "generation 2" in reload.stdout
        seen = _notifications(notify)
        assert [m.get("RELOADING") for m in seen if "RELOADING" in m] == ["1"], seen
        assert "generation 2" in [m for m in seen if m.get("READY") == "1"][-1]["STATUS"]
        snapshot = json.loads(
            run([str(VENV_BIN / "aioprefork"), "ctl", "status", "--json"], env=env).stdout
        )
        assert snapshot["generation"] == 2
        assert snapshot["pid"] == pid  # same master, same listener: a reload never rebinds
        wait(lambda: not workers_before & set(_worker_pids(pid)), 15, "old workers to exit")
        new_workers = {int(http_get("127.0.0.1", port, "/pid")[1]) for _ in range(20)}
        assert new_workers and new_workers <= set(_worker_pids(pid)) - workers_before

        # systemctl stop: KillSignal to the master (KillMode=mixed); an in-flight request
        # finishes, and the master is gone well within TimeoutStopSec.
        slow: list[tuple[int, bytes]] = []
        request = threading.Thread(
            target=lambda: slow.append(http_get("127.0.0.1", port, "/slow?ms=1500", timeout=20))
        )
        request.start()
        time.sleep(0.5)
        began = time.monotonic()
        os.kill(pid, signal.Signals[kill_signal])
        assert activator.popen.wait(float(stop_timeout)) == 0
        took = time.monotonic() - began
        request.join(10)
        assert slow == [(200, b"slow done")]
        assert 0.5 < took < float(stop_timeout)
        assert any(m.get("STOPPING") == "1" for m in _notifications(notify))
        print(
            f"\n[systemd] socket-activated, reloaded to generation 2, stop drained in {took:.2f} s"
        )
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.stop_all()
        notify.close()


def _worker_pids(master: int) -> list[int]:
    try:
        children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    except OSError:
        return []
    return [int(c) for c in children]
