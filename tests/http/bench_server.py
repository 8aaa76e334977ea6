"""Ad-hoc benchmark server (not a test): `python tests/http/bench_server.py PORT [module:app]`.

Serves the app with one WorkerServer on 127.0.0.1:PORT in this process (no master, no access
log), for wrk runs against uvicorn, e.g. `taskset -c 0 python tests/http/bench_server.py 8001`
and `taskset -c 1 wrk -t1 -c64 -d5s http://127.0.0.1:8001/`.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys
from pathlib import Path

import uvloop

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from aioprefork.config.model import HttpLimits
from aioprefork.worker.server import WorkerServer


async def main(port: int, target: str) -> None:
    module, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module), attr)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    server = WorkerServer(app, HttpLimits(access_log=False), sockets=[sock])
    await server.start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    uvloop.run(main(int(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "examples.hello:app"))
