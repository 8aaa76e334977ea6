"""WebSocket test fixtures: the HTTP core's in-process server (tests/support/serving.py).

`serve(app, **limits)` runs a real WorkerServer on its own uvloop loop in a thread, on a
127.0.0.1:0 socket; we reuse it rather than keep a second server harness.
"""

from __future__ import annotations

from support.serving import ServerThread, serve

__all__ = ["ServerThread", "serve"]
