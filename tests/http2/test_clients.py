"""HTTP/2 with real clients: httpx (h2), curl --http2-prior-knowledge, nghttp, h2load; h2c and
HTTP/1.1 on one listener (an ALB health check beside h2c traffic); h2 over TLS by ALPN."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from support.launch import spawn
from tls.certs import Pki, make_pki

from aioprefork.http.h2 import frames as f

from .apps import app
from .conftest import ServerThread
from .h2wire import DEFAULT_REQUEST, RawH2


def _tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is missing: make system-deps installs it (Debian curl, nghttp2-client)"
    return path


def test_httpx_h2c_requests_bodies_and_http1_on_the_same_port(h2server: ServerThread) -> None:
    with httpx.Client(http2=True, http1=False, timeout=10) as client:
        for size in (0, 1, 70_000, 300_000):  # past the 64 KiB stream window: flow control
            response = client.post(h2server.url + "/count", content=b"x" * size)
            assert response.http_version == "HTTP/2"
            assert response.text == str(size)
        big = client.get(h2server.url + "/big")
        assert len(big.content) == 100 * 1024
        scope = client.get(h2server.url + "/scope?a=1").text
        assert "'http_version': '2'" in scope and "'query_string': b'a=1'" in scope
    with httpx.Client(timeout=10) as client:  # the health check: HTTP/1.1, same listener
        response = client.get(h2server.url + "/")
        assert response.http_version == "HTTP/1.1" and response.text == "hello"


async def test_httpx_many_concurrent_streams(h2server: ServerThread) -> None:
    async with httpx.AsyncClient(http2=True, http1=False, timeout=20) as client:
        responses = await asyncio.gather(
            *(client.post(h2server.url + "/echo", content=b"%d" % i) for i in range(200))
        )
    assert [r.text for r in responses] == [str(i) for i in range(200)]


def test_curl_prior_knowledge(h2server: ServerThread) -> None:
    curl = _tool("curl")
    for args, expected in (([], "hello"), (["-d", "abc", "/echo"], "abc")):
        path = args.pop() if args else "/"
        done = subprocess.run(
            [curl, "-s", "-w", " %{http_version}", "--http2-prior-knowledge", *args,
             h2server.url + path],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"{expected} 2"


def test_nghttp_two_streams_in_the_first_read(h2server: ServerThread) -> None:
    """nghttp sends both requests with its preface: the second used to be lost (asgi/host)."""
    done = subprocess.run(
        [_tool("nghttp"), "-n", "-s", h2server.url + "/", h2server.url + "/big"],
        capture_output=True, text=True, timeout=20,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(re.findall(r" 200 +\S+ /", done.stdout)) == 2, done.stdout


def test_raw_requests_sent_with_the_preface(h2server: ServerThread) -> None:
    with RawH2(h2server.port) as client:
        block1 = client.block(DEFAULT_REQUEST)
        block3 = client.block(DEFAULT_REQUEST)
        client.send(
            f.PREFACE
            + f.settings([])
            + f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 1, block1)
            + f.frame(f.HEADERS, f.END_HEADERS | f.END_STREAM, 3, block3)
        )
        assert client.response(1)[1] == b"hello"
        assert client.response(3)[1] == b"hello"


def test_h2load_many_streams(h2server: ServerThread) -> None:
    done = subprocess.run(
        [_tool("h2load"), "-n", "3000", "-c", "4", "-m", "10", h2server.url + "/"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "3000 succeeded, 0 failed, 0 errored" in done.stdout, done.stdout


def test_http2_off_refuses_the_preface(serve: Callable[..., ServerThread]) -> None:
    server = serve(app, h2=None)
    with RawH2(server.port) as client:
        client.send(f.PREFACE + f.settings([]))
        assert client.sock.recv(4096).startswith(b"HTTP/1.1 400")
    assert server.stats.rejected.get("http2_off") == 1


def test_tls_only_refuses_h2c(serve: Callable[..., ServerThread]) -> None:
    from aioprefork.config.model import H2Limits

    server = serve(app, h2=H2Limits(cleartext=False))
    with RawH2(server.port) as client:
        client.send(f.PREFACE + f.settings([]))
        assert client.sock.recv(4096).startswith(b"HTTP/1.1 400")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_args(pki: Pki) -> list[str]:
    return ["--app-dir", "tests", "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key)]


async def test_h2_over_tls_by_alpn(pki: Pki, tmp_path: Path) -> None:
    """ALPN h2: the tls extension and https scope over HTTP/2, pathsend framed from a thread
    (3 MiB through 64 KiB windows), and HTTP/1.1 for a client that offers only http/1.1."""
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(payload)
    env = {"AIOPREFORK_TEST_FILE": str(tmp_path / "big.bin")}
    verify = ssl.create_default_context(cafile=str(pki.ca))
    with spawn("tls.apps:app", *_tls_args(pki), workdir=tmp_path, env=env) as served:
        base = f"https://localhost:{served.port}"
        async with httpx.AsyncClient(verify=verify, http2=True, timeout=20) as client:
            response = await client.get(base + "/")
            scope = response.json()
            file = await client.get(base + "/file")
        async with httpx.AsyncClient(verify=verify, timeout=20) as client:
            plain = await client.get(base + "/")
    assert response.http_version == "HTTP/2"
    assert scope["scheme"] == "https" and scope["tls"]["tls_version"] == 0x0304
    assert file.http_version == "HTTP/2" and file.content == payload
    assert file.headers["content-length"] == str(len(payload))
    assert plain.http_version == "HTTP/1.1"


def test_h2_off_over_tls_negotiates_http1(pki: Pki, tmp_path: Path) -> None:
    verify = ssl.create_default_context(cafile=str(pki.ca))
    with (
        spawn("tls.apps:app", *_tls_args(pki), "--http2", "off", workdir=tmp_path) as served,
        httpx.Client(verify=verify, http2=True, timeout=10) as client,
    ):
        response = client.get(f"https://localhost:{served.port}/")
    assert response.http_version == "HTTP/1.1"
    assert json.loads(response.text)["scheme"] == "https"


def test_curl_h2_over_tls(pki: Pki, tmp_path: Path) -> None:
    with spawn("tls.apps:app", *_tls_args(pki), workdir=tmp_path) as served:
        done = subprocess.run(
            [_tool("curl"), "-s", "--http2", "--cacert", str(pki.ca), "-w", " %{http_version}",
             f"https://localhost:{served.port}/"],
            capture_output=True, text=True, timeout=20,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith(" 2")


def test_access_log_says_http_2_0(serve: Callable[..., ServerThread]) -> None:
    import logging

    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    logger = logging.getLogger("aioprefork.access")
    handler = Keep()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        server = serve(app, access_log=True, access_log_format="%h %r %s %H")
        with httpx.Client(http2=True, http1=False, timeout=10) as client:
            assert client.get(server.url + "/scope?x=1").status_code == 200
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    assert lines == ["127.0.0.1 GET /scope?x=1 HTTP/2.0 200 HTTP/2.0"]
