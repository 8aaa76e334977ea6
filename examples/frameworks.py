"""The framework apps bench/ measures (bench extra: fastapi, which brings starlette): a plain-text
route and a JSON route each, written the way the frameworks' own tutorials write them.

    aioprefork serve examples.frameworks:fastapi_app
    aioprefork serve examples.frameworks:starlette_app
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse as FastAPIPlainText
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

MESSAGE = "Hello, world!"

# --- FastAPI: decorated path operations, the JSON body from a returned dict -----------------------
fastapi_app = FastAPI()


@fastapi_app.get("/", response_class=FastAPIPlainText)
async def fastapi_text() -> str:
    return MESSAGE


@fastapi_app.get("/json")
async def fastapi_json() -> dict[str, str]:
    return {"message": MESSAGE}


# --- Starlette: Route table, Response objects --------------------------------------------------


async def starlette_text(request: Request) -> PlainTextResponse:
    return PlainTextResponse(MESSAGE)


async def starlette_json(request: Request) -> JSONResponse:
    return JSONResponse({"message": MESSAGE})


starlette_app = Starlette(routes=[Route("/", starlette_text), Route("/json", starlette_json)])
