"""The ASGI lifespan protocol (spec 2.0): run the app's startup before serving, shutdown after.

Internal; one instance per worker. The app runs as one task for the worker's whole life, fed
through a queue: `startup()` sends lifespan.startup and waits for the answer, `shutdown()` sends
lifespan.shutdown after the last request. `state` is the scope["state"] dict the app fills at
startup; the HTTP side hands each request a shallow copy of it.

Modes (Config.lifespan): "off" never calls the app; "auto" tolerates an app without lifespan
support (it raises or returns before touching receive/send); "on" treats that as a boot failure.
A startup failure always becomes errors.BootError (the worker reports it as Fatal, with the app's
traceback as its detail, and exits EXIT_BOOT; the master logs it once per generation); shutdown
problems are logged on "aioprefork.app" and never raised.
"""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections.abc import Awaitable, Callable
from typing import Any, Final

from aioprefork.errors import BootError

__all__ = ["Lifespan"]

log: Final = logging.getLogger("aioprefork.app")

_STARTUP_ANSWERS: Final = frozenset({"lifespan.startup.complete", "lifespan.startup.failed"})
_SHUTDOWN_ANSWERS: Final = frozenset({"lifespan.shutdown.complete", "lifespan.shutdown.failed"})


_UNSUPPORTED: Final = (
    "the app does not support the ASGI lifespan protocol ({} on lifespan.startup; Django's ASGI"
    ' handler never does), and lifespan = "on" requires it: set lifespan = "auto" (--lifespan'
    " auto, AIOPREFORK_LIFESPAN=auto) to run such apps"
)


def _summary(message: str) -> str:
    """One line for BootError: the last non-blank line (a traceback's "ValueError: ...")."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    return lines[-1] if lines else ""


class Lifespan:
    """Drives one lifespan scope: startup() before accepting, shutdown() after draining."""

    def __init__(self, app: Callable[..., Awaitable[None]], mode: str) -> None:
        if mode not in ("auto", "on", "off"):
            raise ValueError(f"lifespan mode must be auto, on or off, not {mode!r}")
        self.app = app
        self.mode = mode
        self.state: dict[str, Any] = {}
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        # startup -> running | failed;  running -> shutdown -> done | failed
        self._phase = "startup"
        self._touched = False  # the app called receive() or send(): it speaks lifespan
        self._supported = True
        self._answered = asyncio.Event()  # set on each answer, and when the app's task ends
        self._failure: str | None = None  # the message of a *.failed answer
        self._error: BaseException | None = None  # what the app raised

    async def startup(self, timeout: float | None = None) -> None:
        """Run the app's startup; BootError if it fails, times out or (mode "on") is missing."""
        if self.mode == "off":
            return
        scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._queue.put({"type": "lifespan.startup"})
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        except TimeoutError:
            self._supported = False
            await self._cancel()
            raise BootError(f"ASGI lifespan startup did not complete within {timeout:g}s") from None
        if self._failure is not None:
            self._supported = False
            await self._cancel()
            summary = _summary(self._failure)
            detail = self._failure.strip() if self._failure.strip() != summary else ""
            raise BootError(
                f"ASGI lifespan startup failed{': ' if summary else ''}{summary}", detail
            )
        if self._error is not None:
            if not self._touched:
                self._supported = False
                if self.mode == "on":
                    err = self._error
                    raised = f"it raised {type(err).__name__}: {_summary(str(err))}"
                    raise BootError(_UNSUPPORTED.format(raised)) from err
                log.debug("ASGI lifespan unsupported by the app, carrying on", exc_info=self._error)
                return
            err = self._error
            self._supported = False
            raise BootError(
                f"ASGI lifespan startup failed: {type(err).__name__}: {_summary(str(err))}",
                "".join(traceback.format_exception(err)).rstrip(),
            ) from err
        if self._phase == "startup":  # the app returned without answering
            self._supported = False
            if self.mode == "on":
                raise BootError(_UNSUPPORTED.format("it returned without answering"))
            log.debug("ASGI lifespan unsupported by the app (it returned), carrying on")

    async def shutdown(self, timeout: float | None = None) -> None:
        """Run the app's shutdown; failures and timeouts are logged, never raised."""
        task = self._task
        if task is None or not self._supported or task.done():
            return
        self._answered.clear()
        self._phase = "shutdown"
        await self._queue.put({"type": "lifespan.shutdown"})
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        except TimeoutError:
            log.error("ASGI lifespan shutdown did not complete within %gs", timeout)
        else:
            if self._failure is not None:
                log.error("ASGI lifespan shutdown failed: %s", self._failure)
            elif self._error is not None:
                log.error("ASGI lifespan shutdown raised", exc_info=self._error)
        await self._cancel()

    async def _cancel(self) -> None:
        task = self._task
        if task is not None and not task.done():
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise  # we are being cancelled ourselves, not just the app task

    async def _run(self, scope: dict[str, Any]) -> None:
        try:
            await self.app(scope, self._receive, self._send)
        except Exception as exc:
            if self._phase == "failed":  # the app re-raises what it reported (Starlette)
                log.debug("ASGI lifespan task raised after reporting failure", exc_info=exc)
            elif self._phase == "running":
                log.error("ASGI lifespan task raised while serving", exc_info=exc)
            else:
                self._error = exc
        finally:
            self._answered.set()

    async def _receive(self) -> dict[str, Any]:
        self._touched = True
        return await self._queue.get()

    async def _send(self, message: dict[str, Any]) -> None:
        self._touched = True
        kind = message.get("type")
        expected = _STARTUP_ANSWERS if self._phase == "startup" else _SHUTDOWN_ANSWERS
        if self._phase not in ("startup", "shutdown") or kind not in expected:
            raise RuntimeError(f"unexpected ASGI lifespan message {kind!r} during {self._phase}")
        if kind.endswith(".failed"):
            self._failure = str(message.get("message", ""))
            self._phase = "failed"
        else:
            self._phase = "running" if self._phase == "startup" else "done"
        self._answered.set()
