"""Real clients against a real WorkerServer: httpx, and the Starlette example app with lifespan."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from examples.hello import app as hello
from examples.starlette_app import app as starlette_app


@pytest.fixture
def hello_server(serve: Any) -> Any:
    return serve(hello)


def test_httpx_keep_alive_get_post_stream(hello_server: Any) -> None:
    with httpx.Client(base_url=hello_server.url, timeout=5) as client:
        for _ in range(3):
            resp = client.get("/")
            assert resp.status_code == 200 and resp.text == "Hello, world!"
            assert resp.headers["server"] == "aioprefork" and "date" in resp.headers
        assert client.get("/json").json() == {"message": "Hello, world!", "server": "aioprefork"}
        body = b"x" * 300_000
        assert client.post("/echo", content=body).content == body
        chunks = client.post("/echo", content=iter([b"a" * 1000, b"b" * 1000])).content
        assert chunks == b"a" * 1000 + b"b" * 1000
        with client.stream("GET", "/stream") as resp:
            assert resp.headers["transfer-encoding"] == "chunked"
            assert b"".join(resp.iter_bytes()) == b"".join(b"chunk %d\n" % i for i in range(10))
        assert len(client.get("/big").content) == 65536
        assert client.head("/").headers["content-length"] == "13"
    assert hello_server.stats.accepted_total == 1


async def test_httpx_async_concurrent(hello_server: Any) -> None:
    import asyncio

    async with httpx.AsyncClient(base_url=hello_server.url, timeout=5) as client:
        responses = await asyncio.gather(*(client.get(f"/?n={i}") for i in range(50)))
    assert all(r.status_code == 200 and r.text == "Hello, world!" for r in responses)


def test_starlette_app_with_lifespan_state(serve: Any) -> None:
    server = serve(starlette_app, lifespan=True)
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/").text == "Hello, world!"
        assert client.get("/state").json() == {"greeting": "hello from lifespan"}
        echo = client.post("/echo?a=1&b=2", content=b"payload").json()
        assert echo == {
            "method": "POST",
            "path": "/echo",
            "query": {"a": "1", "b": "2"},
            "length": 7,
            "client": "127.0.0.1",
            "scheme": "http",
        }
        assert client.get("/numbers").text == "0\n1\n2\n3\n4\n"
        assert client.get("/missing").status_code == 404
        assert client.put("/", content=b"x").status_code == 405


def test_starlette_behind_root_path(serve: Any) -> None:
    server = serve(starlette_app, lifespan=True, root_path="/app")
    with httpx.Client(base_url=server.url, timeout=5) as client:
        assert client.get("/").text == "Hello, world!"
        assert client.get("/echo").json()["path"] == "/app/echo"
