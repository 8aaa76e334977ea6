"""The connection: one client connection from bytes in to ASGI and back (internal).

protocol.py (HttpProtocol: httptools callbacks, per-connection state, one timer, pipelining),
connstate.py (its legal states), cycle.py (RequestCycle: one request's receive/send), host.py and
runner.py (running the app), pathsend.py (sendfile), coalesce.py (write coalescing), websocket.py
and ws_session.py (RFC 6455 and the ASGI websocket side), stats.py (the worker's counters).
It builds on the pure wire helpers (aioprefork/wire) and imports nothing of the master, worker,
control, metrics or CLI (tests/unit/test_layers.py).
"""
