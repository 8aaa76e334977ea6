"""TLS end to end: `aioprefork serve --ssl-*` as a real process; httpx and websockets as clients.

https and wss scopes with the tls extension, client certificates (optional and required),
pathsend's copy fallback under TLS, and certificate reload on a graceful restart (USR1).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import ssl
from pathlib import Path

import httpx
import pytest
from support.launch import spawn, wait_until
from websockets.asyncio.client import connect

from .certs import CLIENT_NAME, Pki, make_pki


def _tls_args(pki: Pki, cert_reqs: str = "optional") -> list[str]:
    return [
        "--app-dir", "tests",
        "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key),
        "--ssl-ca-certs", str(pki.ca), "--ssl-cert-reqs", cert_reqs,
    ]  # fmt: skip


def _client_ctx(pki: Pki, *, with_cert: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if with_cert:
        context.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    return context


async def test_https_wss_and_pathsend(pki: Pki, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 17)
    (tmp_path / "big.bin").write_bytes(payload)
    env = {"AIOPREFORK_TEST_FILE": str(tmp_path / "big.bin")}
    with spawn("tls.apps:app", *_tls_args(pki), workdir=tmp_path, env=env) as served:
        base = f"https://localhost:{served.port}"
        async with httpx.AsyncClient(verify=_client_ctx(pki, with_cert=False), timeout=10) as c:
            plain = (await c.get(base + "/")).json()
            response = await c.get(base + "/file")
        async with httpx.AsyncClient(verify=_client_ctx(pki, with_cert=True), timeout=10) as c:
            mutual = (await c.get(base + "/")).json()
        async with connect(
            f"wss://localhost:{served.port}/ws", ssl=_client_ctx(pki, with_cert=True)
        ) as ws:
            wss = json.loads(await ws.recv())
            await ws.send("over tls")
            assert await ws.recv() == "over tls"

    assert plain["scheme"] == "https"
    tls = plain["tls"]
    assert tls["server_cert"] == pki.cert.read_text()
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None
    assert tls["tls_version"] == 0x0304 and isinstance(tls["cipher_suite"], int)
    assert "http.response.pathsend" in plain["extensions"]

    assert mutual["tls"]["client_cert_name"] == CLIENT_NAME
    assert len(mutual["tls"]["client_cert_chain"]) == 1

    assert (wss["type"], wss["scheme"]) == ("websocket", "wss")
    assert wss["tls"]["client_cert_name"] == CLIENT_NAME
    assert "websocket.http.response" in wss["extensions"]

    assert response.status_code == 200
    assert response.headers["content-length"] == str(len(payload))
    assert response.content == payload


def test_required_client_certificate(pki: Pki, tmp_path: Path) -> None:
    with spawn("tls.apps:app", *_tls_args(pki, "required"), workdir=tmp_path) as served:
        url = f"https://localhost:{served.port}/"
        with httpx.Client(verify=_client_ctx(pki, with_cert=True), timeout=10) as client:
            assert client.get(url).json()["tls"]["client_cert_name"] == CLIENT_NAME
        with (
            httpx.Client(verify=_client_ctx(pki, with_cert=False), timeout=10) as client,
            pytest.raises(httpx.TransportError),
        ):
            client.get(url)


def _served_cert(port: int) -> str:
    return ssl.get_server_certificate(("127.0.0.1", port), timeout=5)


def test_graceful_restart_reloads_the_certificate(tmp_path: Path) -> None:
    first, second = make_pki(tmp_path / "a"), make_pki(tmp_path / "b", server_cn="renewed")
    live = tmp_path / "live"
    live.mkdir()
    shutil.copy(first.cert, live / "cert.pem")
    shutil.copy(first.key, live / "key.pem")
    args = [
        "--app-dir", "tests", "--workers", "1", "--graceful-timeout", "5",
        "--ssl-certfile", str(live / "cert.pem"), "--ssl-keyfile", str(live / "key.pem"),
    ]  # fmt: skip
    with spawn("tls.apps:app", *args, workdir=tmp_path) as served:
        wait_until(lambda: _try_cert(served.port) is not None, timeout=20)
        assert _same(_served_cert(served.port), first.cert)
        shutil.copy(second.cert, live / "cert.pem")
        shutil.copy(second.key, live / "key.pem")
        assert _same(_served_cert(served.port), first.cert)  # nothing reloads by itself
        os.kill(served.pid, signal.SIGUSR1)
        wait_until(lambda: _same(_try_cert(served.port), second.cert), timeout=20)
        assert served.stop() == 0


def _try_cert(port: int) -> str | None:
    try:
        return _served_cert(port)
    except OSError:
        return None


def _same(pem: str | None, path: Path) -> bool:
    return pem is not None and ssl.PEM_cert_to_DER_cert(pem) == ssl.PEM_cert_to_DER_cert(
        path.read_text()
    )
