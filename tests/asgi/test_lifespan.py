"""asgi/lifespan.py against real ASGI apps: raw ones, Starlette, and the bundled example."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette

from aioprefork.asgi.lifespan import Lifespan
from aioprefork.errors import BootError

Message = dict[str, Any]

pytestmark = pytest.mark.timeout(10)


class Recorder:
    """A well-behaved lifespan app that records what it saw."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.scope: dict[str, Any] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        self.scope = scope
        assert scope["type"] == "lifespan"
        while True:
            message = await receive()
            self.events.append(message["type"])
            if message["type"] == "lifespan.startup":
                scope["state"]["db"] = "connected"
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                scope["state"]["db"] = "closed"
                await send({"type": "lifespan.shutdown.complete"})
                return


async def test_startup_and_shutdown_share_state() -> None:
    app = Recorder()
    lifespan = Lifespan(app, "auto")
    await lifespan.startup(timeout=5)
    assert app.scope["asgi"] == {"version": "3.0", "spec_version": "2.0"}
    assert app.scope["state"] is lifespan.state
    assert lifespan.state == {"db": "connected"}
    assert app.events == ["lifespan.startup"]
    await lifespan.shutdown(timeout=5)
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]
    assert lifespan.state == {"db": "closed"}


async def test_mode_on_with_well_behaved_app() -> None:
    app = Recorder()
    lifespan = Lifespan(app, "on")
    await lifespan.startup()
    await lifespan.shutdown()
    assert app.events == ["lifespan.startup", "lifespan.shutdown"]


async def test_mode_off_never_calls_the_app() -> None:
    app = Recorder()
    lifespan = Lifespan(app, "off")
    await lifespan.startup()
    await lifespan.shutdown()
    assert app.events == [] and app.scope == {}


def test_bad_mode() -> None:
    with pytest.raises(ValueError, match="auto, on or off"):
        Lifespan(Recorder(), "sometimes")


async def test_starlette_lifespan_state() -> None:
    seen: list[str] = []

    @contextlib.asynccontextmanager
    async def lifespan_cm(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        seen.append("up")
        yield {"pool": "ready"}
        seen.append("down")

    lifespan = Lifespan(Starlette(lifespan=lifespan_cm), "on")
    await lifespan.startup(timeout=5)
    assert lifespan.state == {"pool": "ready"}
    await lifespan.shutdown(timeout=5)
    assert seen == ["up", "down"]


async def test_starlette_startup_exception_is_boot_error(caplog: pytest.LogCaptureFixture) -> None:
    @contextlib.asynccontextmanager
    async def lifespan_cm(app: Starlette) -> AsyncIterator[None]:
        raise ConnectionError("database at db:5432 refused the connection")
        yield

    lifespan = Lifespan(Starlette(lifespan=lifespan_cm), "auto")
    with (
        caplog.at_level(logging.DEBUG, logger="aioprefork.app"),
        pytest.raises(BootError) as info,
    ):
        await lifespan.startup(timeout=5)
    # Starlette reports a traceback as the failure message: the error keeps its last line.
    assert str(info.value) == (
        "ASGI lifespan startup failed: ConnectionError: database at db:5432 refused the connection"
    )
    # the full message rides along for the master to log once per generation, not per worker
    assert info.value.detail.startswith("Traceback") and "db:5432" in info.value.detail
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    await lifespan.shutdown(timeout=1)  # a no-op after a failed startup


async def test_startup_failed_message() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "missing SECRET_KEY"})
        await receive()  # waits forever: the failure must not depend on the app returning

    for mode in ("auto", "on"):
        lifespan = Lifespan(app, mode)
        with pytest.raises(BootError, match=r"^ASGI lifespan startup failed: missing SECRET_KEY$"):
            await lifespan.startup(timeout=5)
        await lifespan.shutdown(timeout=1)


async def test_startup_failed_without_message() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.failed"})

    with pytest.raises(BootError, match=r"^ASGI lifespan startup failed$"):
        await Lifespan(app, "auto").startup()


async def no_lifespan_support(scope: dict[str, Any], receive: Any, send: Any) -> None:
    # Like Django's ASGIHandler: refuses the scope before touching receive/send.
    if scope["type"] != "http":
        raise ValueError(f"only http is supported, not {scope['type']}")


async def test_auto_tolerates_app_without_lifespan(caplog: pytest.LogCaptureFixture) -> None:
    lifespan = Lifespan(no_lifespan_support, "auto")
    with caplog.at_level(logging.DEBUG, logger="aioprefork.app"):
        await lifespan.startup(timeout=5)
        await lifespan.shutdown(timeout=5)
    assert [r.levelno for r in caplog.records] == [logging.DEBUG]
    assert "unsupported" in caplog.records[0].getMessage()


async def test_on_rejects_app_without_lifespan_naming_the_setting() -> None:
    """Django's ASGI handler raises like this one: the line says the app lacks lifespan support
    and which setting lets it boot."""
    with pytest.raises(BootError) as info:
        await Lifespan(no_lifespan_support, "on").startup(timeout=5)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(
        "the app does not support the ASGI lifespan protocol (it raised ValueError: only http is"
        " supported, not lifespan on lifespan.startup"
    )
    assert 'lifespan = "on" requires it: set lifespan = "auto" (--lifespan auto' in message


async def test_auto_exception_after_receive_is_boot_error() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        raise RuntimeError("cache warm-up failed\nsecond line")

    with pytest.raises(
        BootError, match=r"^ASGI lifespan startup failed: RuntimeError: second line$"
    ) as info:
        await Lifespan(app, "auto").startup(timeout=5)
    assert info.value.detail.startswith("Traceback (most recent call last):")
    assert info.value.detail.endswith("RuntimeError: cache warm-up failed\nsecond line")


async def returns_at_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return


async def test_app_that_returns_auto_and_on() -> None:
    lifespan = Lifespan(returns_at_once, "auto")
    await lifespan.startup(timeout=5)
    await lifespan.shutdown(timeout=5)
    with pytest.raises(
        BootError,
        match=r"does not support .* returned without answering .*"
        r'set lifespan = "auto"',
    ):
        await Lifespan(returns_at_once, "on").startup(timeout=5)


async def test_unexpected_message_is_boot_error() -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.shutdown.complete"})

    with pytest.raises(BootError, match="unexpected ASGI lifespan message"):
        await Lifespan(app, "auto").startup(timeout=5)


async def test_startup_timeout_cancels_the_app() -> None:
    cancelled = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    with pytest.raises(BootError, match=r"did not complete within 0\.05s"):
        await Lifespan(app, "on").startup(timeout=0.05)
    assert cancelled.is_set()


async def test_shutdown_failed_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.failed", "message": "could not flush queue"})

    lifespan = Lifespan(app, "on")
    await lifespan.startup(timeout=5)
    with caplog.at_level(logging.ERROR, logger="aioprefork.app"):
        await lifespan.shutdown(timeout=5)
    assert "ASGI lifespan shutdown failed: could not flush queue" in caplog.text


async def test_shutdown_exception_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        raise OSError("disk gone")

    lifespan = Lifespan(app, "auto")
    await lifespan.startup(timeout=5)
    with caplog.at_level(logging.ERROR, logger="aioprefork.app"):
        await lifespan.shutdown(timeout=5)
    (record,) = caplog.records
    assert record.getMessage() == "ASGI lifespan shutdown raised"
    assert record.exc_info is not None and "disk gone" in str(record.exc_info[1])


async def test_shutdown_timeout_is_logged_and_cancels(caplog: pytest.LogCaptureFixture) -> None:
    cancelled = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    lifespan = Lifespan(app, "on")
    await lifespan.startup(timeout=5)
    with caplog.at_level(logging.ERROR, logger="aioprefork.app"):
        await lifespan.shutdown(timeout=0.05)
    assert "did not complete within 0.05s" in caplog.text
    assert cancelled.is_set()


async def test_crash_while_serving_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    crash = asyncio.Event()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "lifespan.startup.complete"})
        await crash.wait()
        raise KeyError("background")

    lifespan = Lifespan(app, "on")
    await lifespan.startup(timeout=5)
    with caplog.at_level(logging.ERROR, logger="aioprefork.app"):
        crash.set()
        for _ in range(5):
            await asyncio.sleep(0)
        await lifespan.shutdown(timeout=1)  # the task is gone: nothing to send
    assert [r.getMessage() for r in caplog.records] == ["ASGI lifespan task raised while serving"]


async def test_bundled_example_app() -> None:
    path = Path(__file__).resolve().parents[2] / "examples" / "hello.py"
    spec = importlib.util.spec_from_file_location("_hello_example", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    lifespan = Lifespan(module.app, "on")
    await lifespan.startup(timeout=5)
    await lifespan.shutdown(timeout=5)
