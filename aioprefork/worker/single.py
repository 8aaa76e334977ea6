"""`--workers 0`: serve in this process, no master — for debugging with pdb, profilers and tracebacks.

The same serving code as a forked worker (WorkerServer, Lifespan, load_app); only the process
around it differs: this process binds its own listeners and handles signals itself.
TERM/INT: graceful stop within graceful_timeout (a second INT stops at once); QUIT: stop at once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import time

import uvloop

from aioprefork.asgi.lifespan import Lifespan
from aioprefork.asgi.loader import load_app
from aioprefork.buildinfo import hot_path_build
from aioprefork.config.model import Config, HttpLimits
from aioprefork.errors import EXIT_OK
from aioprefork.listeners import Listener, bind_all, close_all
from aioprefork.tls import make_ssl_context
from aioprefork.worker.server import WorkerServer

log = logging.getLogger("aioprefork.server")


def run_single(config: Config) -> int:
    listeners = bind_all(config)
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(_serve(config, listeners))
    finally:
        close_all(listeners)


async def _serve(config: Config, listeners: list[Listener]) -> int:
    app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
    lifespan = Lifespan(app, config.lifespan)
    await lifespan.startup()
    server = WorkerServer(
        app,
        HttpLimits.from_config(config),
        sockets=[listener.sock for listener in listeners],
        worker_connections=config.worker_connections,
        backlog=config.backlog,
        state=lifespan.state,
        ssl_context=make_ssl_context(config),
    )
    await server.start()
    for listener in listeners:
        log.info(
            "serving %s on %s (in-process, pid %d, hot path %s)",
            config.app,
            listener.describe(),
            os.getpid(),
            hot_path_build(),
        )

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    immediate = asyncio.Event()

    def on_stop(sig: signal.Signals) -> None:
        if stop.is_set() and sig == signal.SIGINT:
            immediate.set()
        stop.set()

    def on_quit() -> None:
        immediate.set()
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_stop, sig)
    loop.add_signal_handler(signal.SIGQUIT, on_quit)

    await stop.wait()
    if immediate.is_set():
        server.abort()
    else:
        log.info("shutting down: finishing in-flight requests (up to %gs)", config.graceful_timeout)
        drain = asyncio.ensure_future(server.shutdown(time.time() + config.graceful_timeout))
        done = asyncio.ensure_future(immediate.wait())
        await asyncio.wait({drain, done}, return_when=asyncio.FIRST_COMPLETED)
        if not drain.done():
            server.abort()
            drain.cancel()
        done.cancel()
    await lifespan.shutdown()
    return EXIT_OK
