"""open_region / send_region: file regions sent over real loopback sockets, on uvloop and asyncio.

uvloop has no loop.sendfile (we call sendfile(2) on a dup of the socket), asyncio's loop has one:
both paths run. A client that drops mid-file must end the transfer with ClientDisconnected and
leave no descriptor behind.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any, cast

import pytest
import uvloop

from aioprefork.errors import ClientDisconnected
from aioprefork.http.pathsend import FileRegion, ShortFile, open_region, send_region
from aioprefork.wire.flow import FlowControl

SIZE = 8 * 1024 * 1024  # well past the loopback socket buffers: sendfile must wait and resume
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "uvloop": uvloop.new_event_loop,
    "asyncio": asyncio.new_event_loop,
}


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("files") / "big.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def _run(loop: str, coro: Coroutine[Any, Any, Any]) -> Any:
    with asyncio.Runner(loop_factory=LOOPS[loop]) as runner:
        return runner.run(asyncio.wait_for(coro, 20))


def _open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


class _Sender(asyncio.Protocol):
    """Writes a head, then the region, then a tail; reports what send_region did."""

    def __init__(self, region: Callable[[], FileRegion], done: asyncio.Future[Any]) -> None:
        self.region = region
        self.done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's are not subclasses
        self.flow = FlowControl(self.transport, asyncio.get_running_loop())
        self.task = asyncio.get_running_loop().create_task(self.send())

    def pause_writing(self) -> None:
        self.flow.pause_writing()

    def resume_writing(self) -> None:
        self.flow.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        self.flow.connection_lost()

    async def send(self) -> None:
        self.transport.write(b"HEAD")
        region = self.region()
        try:
            sent = await send_region(self.transport, self.flow, region, 5.0)
            self.transport.write(b"TAIL")
            self.transport.close()
            self.done.set_result(sent)
        except Exception as exc:
            self.transport.abort()  # what the request cycle does with a broken body
            self.done.set_result(exc)
        finally:
            region.close()


async def _exchange(region: Callable[[], FileRegion], *, drop_after: int = -1) -> tuple[bytes, Any]:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[Any] = loop.create_future()
    server = await loop.create_server(lambda: _Sender(region, done), "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        received = bytearray()
        try:
            while chunk := await reader.read(256 * 1024):
                received += chunk
                if 0 <= drop_after < len(received):
                    break
        finally:
            writer.transport.abort()
        return bytes(received), await done
    finally:
        server.close()
        await server.wait_closed()


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_whole_file_after_the_head(loop: str, big_file: Path) -> None:
    message = {"type": "http.response.pathsend", "path": str(big_file)}
    received, sent = _run(loop, _exchange(lambda: open_region(message)))
    assert sent == SIZE
    assert received == b"HEAD" + big_file.read_bytes() + b"TAIL"


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_zerocopysend_region_and_file_position(loop: str, big_file: Path) -> None:
    with open(big_file, "rb") as file:
        file.seek(1000)
        message = {"type": "http.response.zerocopysend", "file": file, "count": 5000}
        received, sent = _run(loop, _exchange(lambda: open_region(message)))
        assert sent == 5000
        assert file.tell() == 6000  # no offset given: it read from, and moved, the position
        assert not file.closed  # the app's file: not ours to close
    assert received == b"HEAD" + big_file.read_bytes()[1000:6000] + b"TAIL"


@pytest.mark.parametrize("loop", sorted(LOOPS))
def test_client_drop_mid_file_frees_everything(loop: str, big_file: Path) -> None:
    message = {"type": "http.response.pathsend", "path": str(big_file)}
    before = _open_fds()
    received, outcome = _run(loop, _exchange(lambda: open_region(message), drop_after=SIZE // 8))
    leaked = {os.readlink(f"/proc/self/fd/{fd}") for fd in _open_fds() - before}
    assert SIZE // 8 < len(received) < SIZE
    assert isinstance(outcome, ClientDisconnected)
    assert leaked == set()  # the file, the socket dup, the connection: all closed


def test_file_shorter_than_count(big_file: Path) -> None:
    fd = os.open(big_file, os.O_RDONLY)
    try:
        region = FileRegion(fd, SIZE - 10, 100, owned=False)
        _, outcome = _run("uvloop", _exchange(lambda: region))
        assert isinstance(outcome, ShortFile)
    finally:
        os.close(fd)


def test_open_region_pathsend(tmp_path: Path) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"hello")
    region = open_region({"type": "http.response.pathsend", "path": str(path)})
    assert (region.offset, region.count, region.owned) == (0, 5, True)
    fd = region.fd
    region.close()
    region.close()  # idempotent
    with pytest.raises(OSError):
        os.fstat(fd)


@pytest.mark.parametrize(
    ("message", "error"),
    [
        ({"type": "http.response.pathsend", "path": "relative.txt"}, ValueError),
        ({"type": "http.response.pathsend", "path": "/"}, ValueError),  # a directory
        ({"type": "http.response.pathsend", "path": "/nonexistent/x"}, FileNotFoundError),
        ({"type": "http.response.pathsend", "path": b"/etc/hostname"}, ValueError),
        ({"type": "http.response.zerocopysend", "file": object()}, TypeError),
        ({"type": "http.response.zerocopysend", "file": 0, "offset": -1}, ValueError),
    ],
)
def test_open_region_refuses(message: dict[str, Any], error: type[Exception]) -> None:
    before = _open_fds()
    with pytest.raises(error):
        open_region(message)
    assert _open_fds() == before


def test_zerocopysend_defaults(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"x" * 100)
    with open(path, "rb") as file:
        region = open_region(
            {"type": "http.response.zerocopysend", "file": file.fileno(), "offset": 30}
        )
        assert (region.fd, region.offset, region.count, region.owned) == (
            file.fileno(),
            30,
            70,
            False,
        )
        assert region.file is None  # an explicit offset leaves the position alone
        region = open_region(
            {"type": "http.response.zerocopysend", "file": file, "more_body": True}
        )
        assert (region.offset, region.count, region.more_body) == (0, 100, True)
