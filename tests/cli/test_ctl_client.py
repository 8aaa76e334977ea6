"""`aioprefork ctl` (a real subprocess) against a control server of our own, in-process.

The server side is control/server.py with a scripted handler standing in for the arbiter, so these
tests pin the client: request shapes, progress printing, outcomes, exit codes, and how the socket
is found from --config / env / --pid-file / --port. tests/cli/test_ctl_master.py repeats the
essentials against the real master.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aioprefork.config.model import Config
from aioprefork.control import protocol
from aioprefork.control.server import ControlServer, open_control_server
from aioprefork.master.daemon import ctl_socket_path, private_dir
from aioprefork.snapshot import SlotView, Snapshot

from .helpers import arun_cli, clean_env, free_port


def snapshot() -> Snapshot:
    now = time.time()
    return Snapshot(
        now=now,
        pid=os.getpid(),
        master_state="running",
        generation=2,
        started_at=now - 100,
        version="0.1.0",
        slots=(
            SlotView(
                slot=0,
                pid=4001,
                gen=2,
                state="ready",
                current=True,
                accepting=True,
                requests_total=17,
                started_at=now - 50,
                heartbeat_age=0.5,
            ),
            SlotView(slot=1, pid=4002, gen=2, state="starting", current=True, started_at=now - 1),
        ),
        server_limit=4,
        worker_connections=10,
        min_workers=1,
        max_workers=2,
        min_spare_slots=5,
        max_spare_slots=25,
        idle_slots=10,
        spawn_rate=1,
    )


class Master:
    """Scripted answers in the shape the arbiter's `control()` gives."""

    def __init__(self) -> None:
        self.requests: list[Mapping[str, Any]] = []
        self.server: ControlServer | None = None
        self.refuse = False

    async def __call__(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.requests.append(request)
        cmd = request["cmd"]
        if cmd == "status":
            yield {"ok": True, "snapshot": snapshot().to_json()}
            return
        if self.refuse:
            yield {"progress": "generation 3: 0/1 workers ready"}
            yield {
                "ok": False,
                "error": "rolled back: generation 3 failed to boot:\nImportError: no module named 'nope'",
            }
            return
        yield {"progress": f"{cmd}: step 1"}
        yield {"progress": f"{cmd}: step 2"}
        if cmd in ("stop", "graceful-stop"):  # the master exits, closing its socket
            assert self.server is not None
            asyncio.get_running_loop().call_later(0.05, asyncio.ensure_future, self.server.close())
        yield {"ok": True, "result": f"{cmd} complete"}


@pytest.fixture
async def master(sock_dir: Path) -> AsyncIterator[tuple[Master, list[str]]]:
    """A control server at <sock_dir>/pid.ctl; yields it and the ctl options that find it."""
    handler = Master()
    handler.server = await open_control_server(str(sock_dir / "pid.ctl"), handler)
    try:
        yield handler, ["--pid-file", str(sock_dir / "pid")]
    finally:
        await handler.server.close()


async def test_status_prints_the_mod_status_view(master: tuple[Master, list[str]]) -> None:
    handler, where = master
    r = await arun_cli("ctl", "status", *where)
    assert r.code == 0, r.err
    assert f"master pid {os.getpid()}, running, generation 2" in r.out
    assert "SLOT" in r.out and "HEARTBEAT" in r.out
    assert "Scoreboard:\n_S..\n" in r.out
    assert handler.requests == [{"v": 1, "cmd": "status"}]


async def test_status_json_is_the_raw_snapshot(master: tuple[Master, list[str]]) -> None:
    _, where = master
    r = await arun_cli("ctl", "status", "--json", *where)
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["scoreboard"] == "_S.."
    assert [s["pid"] for s in data["slots"]] == [4001, 4002]


async def test_status_watch_refreshes(master: tuple[Master, list[str]]) -> None:
    handler, where = master
    r = await arun_cli("ctl", "status", "--watch", "0.1", "--count", "3", *where)
    assert r.code == 0, r.err
    assert r.out.count("Scoreboard:") == 3
    assert "(every 0.1s, Ctrl-C to quit)" in r.out
    assert len(handler.requests) == 3


@pytest.mark.parametrize(
    ("args", "request_"),
    [
        (["graceful"], {"v": 1, "cmd": "graceful"}),
        (["stop"], {"v": 1, "cmd": "stop", "now": False, "timeout": None}),
        (
            ["stop", "--now", "--timeout", "1500ms"],
            {"v": 1, "cmd": "stop", "now": True, "timeout": 1.5},
        ),
        (["scale", "-1"], {"v": 1, "cmd": "scale", "n": "-1"}),
        (["scale", "3"], {"v": 1, "cmd": "scale", "n": "3"}),
    ],
)
async def test_pool_commands_print_progress_then_the_outcome(
    master: tuple[Master, list[str]], args: list[str], request_: dict[str, Any]
) -> None:
    handler, where = master
    r = await arun_cli("ctl", *args, *where)
    assert r.code == 0, r.err
    cmd = request_["cmd"]
    expected = [f"{cmd}: step 1", f"{cmd}: step 2", f"{cmd} complete"]
    if cmd in ("stop", "graceful-stop"):  # and it waited for the master to go away
        expected.append("master has exited")
    assert r.out.splitlines() == expected
    assert handler.requests == [request_]


async def test_a_rolled_back_graceful_restart_exits_2_with_the_reason_on_one_line(
    master: tuple[Master, list[str]],
) -> None:
    handler, where = master
    handler.refuse = True
    r = await arun_cli("ctl", "graceful", *where)
    assert r.code == 2
    assert r.out == "generation 3: 0/1 workers ready\n"
    assert r.one_line_error == (
        "aioprefork ctl: graceful failed: rolled back: generation 3 failed to boot: "
        "ImportError: no module named 'nope'"
    )


@pytest.mark.parametrize("bad", [["+2"], ["-5"]])
async def test_scale_refuses_bad_counts_before_asking(
    master: tuple[Master, list[str]], bad: list[str]
) -> None:
    handler, where = master
    r = await arun_cli("ctl", "scale", *bad, *where)
    assert r.code == 2
    assert handler.requests == []


async def test_the_socket_is_found_from_the_config_file(sock_dir: Path) -> None:
    path = sock_dir / "from-file.sock"
    conf = sock_dir / "server.toml"
    conf.write_text(f'ctl_socket = "{path}"\nworkers = 1\n')
    async with await open_control_server(str(path), Master()):
        r = await arun_cli("ctl", "status", "--json", "--config", str(conf))
        assert r.code == 0, r.err
        env = clean_env(AIOPREFORK_CONFIG=str(conf))
        assert (await arun_cli("ctl", "status", "--json", env=env)).code == 0


async def test_the_socket_is_found_from_the_environment(sock_dir: Path) -> None:
    path = sock_dir / "from-env.sock"
    async with await open_control_server(str(path), Master()):
        r = await arun_cli(
            "ctl", "status", "--json", env=clean_env(AIOPREFORK_CTL_SOCKET=str(path))
        )
        assert r.code == 0, r.err
        r = await arun_cli("ctl", "status", "--json", "--ctl-socket", str(path))
        assert r.code == 0, r.err


async def test_the_default_socket_derives_from_the_first_tcp_port() -> None:
    port = free_port()
    path = ctl_socket_path(Config(port=port))
    private_dir(os.path.dirname(path))
    async with await open_control_server(path, Master()):
        assert (await arun_cli("ctl", "status", "--json", "--port", str(port))).code == 0
        bind = ["--bind", "unix:/tmp/x.sock", "--bind", f"127.0.0.1:{port}"]
        assert (await arun_cli("ctl", "status", "--json", *bind)).code == 0
        env = clean_env(AIOPREFORK_PORT=str(port))
        assert (await arun_cli("ctl", "status", "--json", env=env)).code == 0


async def test_a_malformed_reply_is_one_line_exit_2(sock_dir: Path) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x00\x00\x00\x05{nope")
        writer.close()

    server = await asyncio.start_unix_server(garbage, str(sock_dir / "pid.ctl"))
    async with server:
        r = await arun_cli("ctl", "graceful", "--pid-file", str(sock_dir / "pid"))
    assert r.code == 2
    assert (
        r.one_line_error
        == "aioprefork ctl: malformed reply from the master: frame body is not JSON"
    )


async def test_a_master_hanging_up_without_an_answer_is_exit_2(sock_dir: Path) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(protocol.encode({"progress": "working"}))
        writer.close()

    server = await asyncio.start_unix_server(hang_up, str(sock_dir / "pid.ctl"))
    async with server:
        r = await arun_cli("ctl", "restart", "--pid-file", str(sock_dir / "pid"))
    assert r.code == 2
    assert r.out == "working\n"
    assert "closed the connection without answering" in r.one_line_error


async def test_a_bad_config_file_is_one_line_exit_2(sock_dir: Path) -> None:
    conf = sock_dir / "bad.toml"
    conf.write_text("wrokers = 4\n")
    r = await arun_cli("ctl", "status", "--config", str(conf))
    assert r.code == 2
    assert r.one_line_error == (
        f"aioprefork ctl: config error: wrokers = 4 (from file {conf}): unknown setting"
        " (did you mean workers?) (or name the server with --ctl-socket or --pid-file)"
    )


SQUATTER = r"""
import os, socket, sys
path = sys.argv[1]
if os.geteuid() == 0:
    os.setgid(65534)
    os.setuid(65534)
srv = socket.socket(socket.AF_UNIX)
srv.bind(path)
srv.listen(4)
print("ready", flush=True)
while True:  # the fake 'done' a squatter would answer root's ctl with
    conn, _ = srv.accept()
    conn.recv(65536)
    body = b'{"ok": true, "final": true, "result": "graceful: done"}'
    conn.sendall(len(body).to_bytes(4, "big") + body)
    conn.close()
"""


async def test_a_socket_served_by_another_uid_is_not_trusted() -> None:
    """A local user pre-created the socket path; root's ctl must not print its fake 'done'.
    (Not root: the squatter runs as our own uid, whose answers ctl does trust.)"""
    import subprocess
    import sys
    import tempfile

    directory = tempfile.mkdtemp(prefix="apf-sq-", dir="/tmp")
    os.chmod(directory, 0o777)  # a world-writable place, like /tmp itself
    path = os.path.join(directory, "ctl")
    squatter = subprocess.Popen(
        [sys.executable, "-c", SQUATTER, path], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert squatter.stdout is not None and squatter.stdout.readline() == b"ready\n"
        r = await arun_cli("ctl", "graceful", "--ctl-socket", path)
        if os.geteuid() != 0:
            assert r.code == 0 and "graceful: done" in r.out, (r.out, r.err)
            return
        assert r.code == 2, (r.out, r.err)
        assert "served by uid 65534, neither us nor root: not trusting" in r.one_line_error
        assert "done" not in r.out
    finally:
        squatter.kill()
        squatter.wait(timeout=5)
        assert squatter.stdout is not None
        squatter.stdout.close()
        import shutil

        shutil.rmtree(directory, ignore_errors=True)
