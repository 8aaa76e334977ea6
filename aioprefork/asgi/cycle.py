"""AppCycle: what asgi/host.AppHost needs from one request's ASGI cycle, for every protocol.

Internal. HTTP/1.1 (http/cycle.RequestCycle) and HTTP/2 (http/h2/stream.H2Stream) cycles both derive
from it, so the host (compiled with mypyc) calls them natively, through one vtable, and one host
runs either protocol's apps eagerly.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aioprefork.asgi.types import Message, Scope

__all__ = ["AppCycle"]


class AppCycle:
    """One request: its scope, its receive/send, and the host's hooks around each app step."""

    corked = False  # set by AppHost for the length of one synchronous step of the app
    scope: Scope
    method: str
    target: bytes  # as the request line carried it
    # request_timeout: the timer armed when the app started (only when the setting is on), and
    # whether the app has returned (an app that swallows its cancellation never does).
    timer: asyncio.TimerHandle | None = None
    finished = False
    # The request body as the connection feeds it, until receive() hands it to the app.
    buffered = 0  # body bytes received and not yet given to the app
    disconnected = False  # the client is gone (or the request refused): receive -> disconnect
    _pieces: list[bytes] | tuple[()] = ()
    _delivered = False  # the app has had the final http.request event
    _waiter: asyncio.Future[None] | None = None  # what receive() waits on
    # The response's state both protocols keep alike.
    head_sent = False
    complete = False
    _head: tuple[int, Any, bool] | None = None  # (status, headers, trailers) of the start message
    _trailers = False  # trailer fields will follow the body (until they are written)
    _dropping_trailers = False  # promised trailers this response cannot carry: dropped
    _trailer_fields: list[Any] | None = None  # fields of more_trailers messages, so far

    async def receive(self) -> Message:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        raise NotImplementedError

    def stop_timer(self) -> None:
        """The response is done, or the request gone: its request_timeout no longer applies."""
        timer = self.timer
        if timer is not None:
            self.timer = None
            timer.cancel()

    def feed_body(self, data: bytes) -> None:
        """Body bytes from the client, for the app's next receive()."""
        if self._pieces:
            self._pieces.append(data)
        else:
            self._pieces = [data]
        self.buffered += len(data)
        self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def uncork(self) -> None:
        """The step ended (the app waits or returned): write what it held."""
        self.corked = False

    def app_done(self, exc: BaseException | None) -> None:
        """The app finished (`exc` = what it raised)."""
        raise NotImplementedError

    def _take_trailers(self, event: Message) -> list[Any] | None:
        """An http.response.trailers message, after the last body message of a response that
        promised them: the fields of every such message once the final one (more_trailers
        false) arrives, else None (more are to come, or this response drops them: it cannot
        carry trailers, or the client did not ask for them). One out of place raises."""
        head = self._head
        if head is None or not head[2] or not self.head_sent:
            raise RuntimeError("unexpected http.response.trailers")
        more = event.get("more_trailers", False)
        if not self._trailers:
            if self._dropping_trailers:
                self._dropping_trailers = bool(more)
                return None
            raise RuntimeError("unexpected http.response.trailers")
        fields = self._trailer_fields
        if fields is None:
            fields = self._trailer_fields = []
        fields.extend(event.get("headers", ()))
        if more:
            return None
        self._trailers = False
        self._trailer_fields = None
        return fields
