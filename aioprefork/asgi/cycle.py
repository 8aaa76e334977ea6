"""AppCycle: what asgi/host.AppHost needs from one request's ASGI cycle, for every protocol.

Internal. HTTP/1.1 (http/cycle.RequestCycle) and HTTP/2 (http/h2/stream.H2Stream) cycles both derive
from it, so the host (compiled with mypyc) calls them natively, through one vtable, and one host
runs either protocol's apps eagerly.
"""

from __future__ import annotations

from aioprefork.asgi.types import Message, Scope

__all__ = ["AppCycle"]


class AppCycle:
    """One request: its scope, its receive/send, and the host's hooks around each app step."""

    corked = False  # set by AppHost for the length of one synchronous step of the app
    scope: Scope

    async def receive(self) -> Message:
        raise NotImplementedError

    async def send(self, message: Message) -> None:
        raise NotImplementedError

    def uncork(self) -> None:
        """The step ended (the app waits or returned): write what it held."""
        self.corked = False

    def app_done(self, exc: BaseException | None) -> None:
        """The app finished (`exc` = what it raised)."""
        raise NotImplementedError
