"""ASGI 3 type aliases: the application callable, its scope and its messages (asgiref spec 2.4).

Internal. This is the one place `Any` is allowed in: the ASGI boundary, where an app may put any
extra key in a scope or message. The aliases stay loose mappings because apps and middleware read
and write keys a server does not declare. The shapes the server builds are the spec's; where they
are built and checked: http/cycle.py (http), http/ws_session.py (websocket), asgi/lifespan.py.
(Per-message TypedDicts were declared here once and used nowhere: the scope is copied from a
per-connection template dict on the hot path, and the messages an app sends are validated field by
field where they are read, so a TypedDict would only have restated those checks untested.)
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["ASGIApp", "Message", "Receive", "Scope", "Send"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
