"""A Starlette app (a test dependency, not a runtime one): routing, JSON, lifespan state, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Route


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
    yield {"greeting": "hello from lifespan"}


async def home(request: Request) -> PlainTextResponse:
    return PlainTextResponse("Hello, world!")


async def state(request: Request) -> JSONResponse:
    return JSONResponse({"greeting": request.state.greeting})


async def echo(request: Request) -> JSONResponse:
    body = await request.body()
    return JSONResponse(
        {
            "method": request.method,
            "path": request.url.path,
            "query": dict(request.query_params),
            "length": len(body),
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
        }
    )


async def numbers(request: Request) -> StreamingResponse:
    async def gen() -> AsyncIterator[bytes]:
        for i in range(5):
            yield f"{i}\n".encode()

    return StreamingResponse(gen(), media_type="text/plain")


app = Starlette(
    routes=[
        Route("/", home),
        Route("/state", state),
        Route("/echo", echo, methods=["GET", "POST", "PUT"]),
        Route("/numbers", numbers),
    ],
    lifespan=lifespan,
)
