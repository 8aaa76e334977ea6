"""pathsend / zerocopysend through the worker server: in-process (uvloop, real sockets) and as a
real `aioprefork serve` process whose descriptors we count in /proc after a client drops mid-file.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from support.launch import Served, spawn, wait_until
from support.serving import ServerThread, serve

from . import apps

__all__ = ["serve"]  # the HTTP core's in-process server fixture

SIZE = 4 * 1024 * 1024 + 3


@pytest.fixture(scope="module")
def payload(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, bytes]]:
    data = os.urandom(SIZE)
    path = tmp_path_factory.mktemp("files") / "payload.bin"
    path.write_bytes(data)
    old = os.environ.get("AIOPREFORK_TEST_FILE")
    os.environ["AIOPREFORK_TEST_FILE"] = str(path)
    yield path, data
    if old is None:
        del os.environ["AIOPREFORK_TEST_FILE"]
    else:
        os.environ["AIOPREFORK_TEST_FILE"] = old


Serve = Callable[..., ServerThread]


def test_extensions_are_advertised(serve: Serve) -> None:
    server = serve(apps.app)
    body = httpx.get(server.url + "/extensions", timeout=5).text.split(",")
    assert {"http.response.pathsend", "http.response.zerocopysend"} <= set(body)


@pytest.mark.parametrize("query", ["", "?own-length"])
def test_pathsend_sets_content_length(
    serve: Serve, payload: tuple[Path, bytes], query: str
) -> None:
    _, data = payload
    server = serve(apps.app)
    with httpx.Client(timeout=10) as client:
        response = client.get(server.url + "/pathsend" + query)
        assert response.headers["content-length"] == str(SIZE)
        assert "transfer-encoding" not in response.headers
        assert response.content == data
        head = client.head(server.url + "/pathsend")  # same connection: keep-alive survives
        assert head.headers["content-length"] == str(SIZE)
        assert head.content == b""
    # counted when the response is done, on the server's thread: maybe just after we read it
    wait_until(lambda: server.stats.requests_total == 2, timeout=5)
    assert server.stats.response_bytes_total >= SIZE


def test_zerocopysend_ranges_chunked(serve: Serve, payload: tuple[Path, bytes]) -> None:
    _, data = payload
    server = serve(apps.app)
    response = httpx.get(server.url + "/zerocopy", timeout=5)
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.content == data[10:110] + data[1000:1050] + b"END"


def test_starlette_file_response_uses_pathsend(serve: Serve, payload: tuple[Path, bytes]) -> None:
    _, data = payload
    server = serve(apps.app)
    response = httpx.get(server.url + "/starlette", timeout=10)
    assert response.status_code == 200
    assert response.content == data


def test_missing_file_is_a_500(serve: Serve) -> None:
    server = serve(apps.app)
    assert httpx.get(server.url + "/missing", timeout=5).status_code == 500


def test_client_drop_mid_file_returns_fds_to_baseline(
    payload: tuple[Path, bytes], tmp_path: Path
) -> None:
    path, _ = payload
    env = {"AIOPREFORK_TEST_FILE": str(path)}
    # the folder holding the `pathsend` package, wherever the tests live
    app_dir = str(Path(__file__).resolve().parents[1])
    with spawn("pathsend.apps:app", "--app-dir", app_dir, workdir=tmp_path, env=env) as served:
        url = f"http://127.0.0.1:{served.port}"
        assert httpx.get(url + "/pathsend", timeout=10).content[:1]  # warm up: lazy loop fds
        baseline = _settled_fds(served)  # the warm-up connection's close may still be in flight
        for _ in range(3):
            _drop_mid_file(served.port)
        wait_until(lambda: served.open_fds() <= baseline, timeout=10)
        assert httpx.get(url + "/pathsend", timeout=10).content == path.read_bytes()
        wait_until(lambda: served.open_fds() <= baseline, timeout=10)
        assert served.stop() == 0  # and nothing hangs the graceful stop
    # The access log: only the two complete transfers sent the whole file; the three dropped
    # ones ended mid-file (the server was inside sendfile when the reset came).
    log = served.output()
    assert log.count('"GET /pathsend HTTP/1.1" 200 ') == 5
    assert log.count(f'"GET /pathsend HTTP/1.1" 200 {SIZE} ') == 2


def _settled_fds(served: Served) -> int:
    """The worker's fd count once two readings 0.2 s apart agree."""
    previous = -1
    for _ in range(50):
        current = served.open_fds()
        if current == previous:
            return current
        previous = current
        time.sleep(0.2)
    return previous


def _drop_mid_file(port: int) -> None:
    """Ask for the file, read the first bytes, then reset the connection with the rest unread.

    A small receive buffer keeps the server's sendfile blocked mid-file when the reset comes.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", port))
        sock.sendall(b"GET /pathsend HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
