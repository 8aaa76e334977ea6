"""control/server.py against a handler of our own, in-process, over a real Unix socket."""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from cli.helpers import ask, header, raw_exchange

from aioprefork.control import protocol
from aioprefork.control.server import MAX_CLIENTS, open_control_server
from aioprefork.errors import BindError


class Recorder:
    """A stand-in for the arbiter's `control` method: records requests, streams progress."""

    def __init__(self) -> None:
        self.requests: list[Mapping[str, Any]] = []
        self.finished: list[str] = []
        self.release = asyncio.Event()

    async def __call__(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        self.requests.append(request)
        cmd = request["cmd"]
        if cmd == "status":
            yield {"ok": True, "snapshot": {"pid": os.getpid()}}
        elif cmd == "graceful":
            yield {"progress": "generation 2: 0/2 workers ready"}
            await self.release.wait()
            yield {"progress": "generation 2: 2/2 workers ready"}
            self.finished.append(cmd)
            yield {"ok": True, "result": "generation 2 serving"}
        elif cmd == "restart":
            raise RuntimeError("boom")
        elif cmd == "reopen-logs":
            yield {"progress": "reopening"}  # and forgets the final frame
        elif cmd == "graceful-stop":
            await asyncio.Event().wait()  # never answers
            yield {"ok": True}
        else:
            yield {"ok": False, "error": f"rolled back: {cmd} refused"}


@pytest.fixture
async def served(sock_dir: Path) -> AsyncIterator[tuple[Path, Recorder]]:
    path = sock_dir / "ctl"
    handler = Recorder()
    async with await open_control_server(str(path), handler, read_timeout=0.3):
        yield path, handler


async def test_one_request_one_final_frame(served: tuple[Path, Recorder]) -> None:
    path, handler = served
    assert await ask(path, "status") == [{"ok": True, "snapshot": {"pid": os.getpid()}}]
    assert handler.requests == [{"v": 1, "cmd": "status"}]


async def test_progress_frames_stream_as_they_happen(served: tuple[Path, Recorder]) -> None:
    path, handler = served
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(protocol.encode({"v": 1, "cmd": "graceful"}))
    decoder = protocol.FrameDecoder()
    first = decoder.feed(await asyncio.wait_for(reader.read(4096), 2))
    assert first == [{"progress": "generation 2: 0/2 workers ready"}]  # before the command ends
    handler.release.set()
    rest = decoder.feed(await asyncio.wait_for(reader.read(), 2))
    assert rest == [
        {"progress": "generation 2: 2/2 workers ready"},
        {"ok": True, "result": "generation 2 serving"},
    ]
    writer.close()
    await writer.wait_closed()


async def test_refusals_are_final_frames(served: tuple[Path, Recorder]) -> None:
    path, _ = served
    frames = await ask(path, "scale", n="+1")
    assert frames == [{"ok": False, "error": "rolled back: scale refused"}]


def test_socket_is_mode_0600_even_under_a_lax_umask(sock_dir: Path) -> None:
    async def main() -> int:
        async with await open_control_server(str(sock_dir / "ctl"), Recorder()):
            return os.stat(sock_dir / "ctl").st_mode

    old = os.umask(0)
    try:
        mode = asyncio.run(main())
    finally:
        os.umask(old)
    assert stat.S_ISSOCK(mode)
    assert stat.S_IMODE(mode) == 0o600


async def test_close_unlinks_the_path(sock_dir: Path) -> None:
    path = sock_dir / "ctl"
    server = await open_control_server(str(path), Recorder())
    assert path.exists()
    await server.close()
    assert not path.exists()
    await server.close()  # idempotent


async def test_close_leaves_a_socket_that_replaced_ours(sock_dir: Path) -> None:
    path = sock_dir / "ctl"
    server = await open_control_server(str(path), Recorder())
    path.unlink()
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        await server.close()
        assert path.exists()


async def test_a_stale_socket_is_replaced(sock_dir: Path) -> None:
    path = sock_dir / "ctl"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(path))  # bound, never listening: what a SIGKILLed master leaves
    async with await open_control_server(str(path), Recorder()):
        assert (await ask(path, "status"))[0]["ok"] is True


async def test_a_live_master_socket_is_refused(served: tuple[Path, Recorder]) -> None:
    path, _ = served
    with pytest.raises(BindError, match="in use"):
        await open_control_server(str(path), Recorder())
    assert (await ask(path, "status"))[0]["ok"] is True  # the first one is untouched


async def test_a_path_that_is_not_a_socket_is_refused(sock_dir: Path) -> None:
    path = sock_dir / "ctl"
    path.write_text("precious")
    with pytest.raises(BindError, match="not a socket"):
        await open_control_server(str(path), Recorder())
    assert path.read_text() == "precious"


async def test_a_missing_directory_is_a_bind_error(sock_dir: Path) -> None:
    with pytest.raises(BindError, match="control socket"):
        await open_control_server(str(sock_dir / "no" / "ctl"), Recorder())


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "exceeds"),  # garbage: 'GET ' is a huge length
        (header(protocol.MAX_REQUEST + 1), "exceeds"),
        (header(2**32 - 1), "exceeds"),
        (header(0), "empty frame"),
        (header(5) + b"{nope", "not JSON"),
        (header(2) + b"\xff\xfe", "not UTF-8"),
        (header(2) + b"[]", "not a JSON object"),
        (protocol.encode({"v": 1, "cmd": "rm -rf"}), "unknown command"),
        (protocol.encode({"v": 9, "cmd": "status"}), "version"),
        (protocol.encode({"v": 1, "cmd": "stop", "timeout": "soon"}), "'timeout'"),
    ],
)
async def test_malformed_requests_get_an_error_and_a_close(
    served: tuple[Path, Recorder], data: bytes, problem: str
) -> None:
    path, handler = served
    frames = await raw_exchange(path, data)
    assert len(frames) == 1
    assert frames[0]["ok"] is False
    assert problem in frames[0]["error"]
    assert handler.requests == []  # never reached the master
    assert (await ask(path, "status"))[0]["ok"] is True  # and it keeps serving


async def test_a_silent_client_is_dropped_after_the_read_timeout(
    served: tuple[Path, Recorder],
) -> None:
    path, handler = served
    for data in (b"", header(10), header(10) + b"{"):  # nothing, a header, half a body
        started = time.monotonic()
        assert await raw_exchange(path, data, timeout=3) == []
        assert time.monotonic() - started < 2
    assert handler.requests == []
    assert (await ask(path, "status"))[0]["ok"] is True


async def test_a_client_leaving_mid_stream_does_not_cancel_the_command(
    served: tuple[Path, Recorder],
) -> None:
    path, handler = served
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(protocol.encode({"v": 1, "cmd": "graceful"}))
    await asyncio.wait_for(reader.read(4096), 2)  # the first progress frame
    writer.transport.abort()  # gone, with a reset
    await asyncio.sleep(0.05)
    handler.release.set()
    for _ in range(100):
        if handler.finished:
            break
        await asyncio.sleep(0.01)
    assert handler.finished == ["graceful"]
    assert (await ask(path, "status"))[0]["ok"] is True


async def test_a_failing_handler_is_an_error_reply(served: tuple[Path, Recorder]) -> None:
    path, _ = served
    assert await ask(path, "restart") == [{"ok": False, "error": "internal error: boom"}]
    frames = await ask(path, "reopen-logs")
    assert frames == [
        {"progress": "reopening"},
        {"ok": False, "error": "internal error: no final reply"},
    ]
    assert (await ask(path, "status"))[0]["ok"] is True


async def test_too_many_clients_get_busy(served: tuple[Path, Recorder]) -> None:
    path, _ = served
    idle = [await asyncio.open_unix_connection(str(path)) for _ in range(MAX_CLIENTS)]
    try:
        await asyncio.sleep(0.05)
        frames = await raw_exchange(path, protocol.encode({"v": 1, "cmd": "status"}))
        assert frames == [{"ok": False, "error": "busy: too many control connections"}]
    finally:
        for _, writer in idle:
            writer.close()
    await asyncio.sleep(0.4)  # the read timeout frees them
    assert (await ask(path, "status"))[0]["ok"] is True


async def test_close_cancels_a_command_that_never_answers(sock_dir: Path) -> None:
    path = sock_dir / "ctl"
    server = await open_control_server(str(path), Recorder())
    reader, writer = await asyncio.open_unix_connection(str(path))
    writer.write(protocol.encode({"v": 1, "cmd": "graceful-stop"}))
    await writer.drain()
    await asyncio.sleep(0.05)
    started = time.monotonic()
    await server.close(grace=0.1)
    assert time.monotonic() - started < 1
    assert await asyncio.wait_for(reader.read(), 1) == b""
    writer.close()
    await writer.wait_closed()
