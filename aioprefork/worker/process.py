"""The worker process after fork: init -> serve until told to stop (or the master dies) -> drain -> exit.

`main()` runs in the child that master/fork.py made, on a fresh uvloop loop (never the master's).
Boot = load the app, run lifespan startup, start serving; only then is Ready sent, so Ready means
"accepting". Any exception before Ready is a boot failure: the worker sends Fatal(code, message)
with the operator-facing text and exits EXIT_BOOT (3); the master halts instead of respawning.

After Ready, the worker reacts to the channel: GracefulStop(deadline) drains in-flight requests
until the deadline, Stop aborts them, ReopenLogs reopens log files, and EOF (the pipe of death:
the master is gone, even by SIGKILL) drains within graceful_timeout, so no orphan keeps serving.
SIGTERM sent straight to a worker also drains (systemd may signal the whole cgroup), SIGQUIT
aborts, SIGINT is ignored (^C reaches the whole process group; the master decides).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import faulthandler
import logging
import math
import os
import resource
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from typing import Any, Final, assert_never

import uvloop

from aioprefork import fdlimit
from aioprefork.asgi.lifespan import Lifespan
from aioprefork.asgi.loader import load_app, preload_app
from aioprefork.channel.board import LoadBoard
from aioprefork.channel.codec import MAX_FRAME
from aioprefork.channel.endpoint import PeerGone, WorkerEnd, open_worker_end
from aioprefork.channel.messages import (
    TERMINATED,
    Apply,
    Dump,
    Fatal,
    GracefulStop,
    ListRequests,
    Ready,
    ReopenLogs,
    Requests,
    Retire,
    Stacks,
    Stop,
    ToMaster,
)
from aioprefork.config.model import BY_NAME, Config, HttpLimits
from aioprefork.errors import (
    EXIT_BOOT,
    EXIT_OK,
    AiopreforkError,
    AppLoadError,
    BootError,
    ProtocolViolation,
)
from aioprefork.hooks import WORKER_HOOKS, HookError, Hooks
from aioprefork.http.stats import WorkerStats
from aioprefork.logs import reopen_log_files
from aioprefork.tls import make_ssl_context
from aioprefork.worker import inflight
from aioprefork.worker.balance import Balance
from aioprefork.worker.reporter import Reporter
from aioprefork.worker.server import ACCEPT_FAN, WorkerServer
from aioprefork.worker.stacks import hosted_by, live_stacks
from aioprefork.worker.stalls import StallWatch

log = logging.getLogger("aioprefork.server")

FATAL_LIMIT: Final = MAX_FRAME // 4  # characters of a boot error we send; the rest is cut
LIFESPAN_SHUTDOWN_MIN: Final = 1.0  # lifespan shutdown gets at least this, even past the deadline


def main(
    *,
    slot: int,
    gen: int,
    channel: socket.socket,
    listeners: Sequence[socket.socket],
    config: Config,
    board: LoadBoard | None = None,
) -> int:
    """Serve as worker `slot` of generation `gen`; returns the process exit code."""
    faulthandler.enable(all_threads=True)  # SIGABRT on heartbeat timeout dumps every stack
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_IGN)  # a vanished client is an EPIPE, not a death
    for sig in (
        signal.SIGHUP,
        signal.SIGUSR1,
        signal.SIGUSR2,
        signal.SIGWINCH,
        signal.SIGTTIN,
        signal.SIGTTOU,
    ):
        signal.signal(sig, signal.SIG_IGN)  # master-only meanings; TTIN/TTOU would stop us
    worker = Worker(slot, gen, channel, listeners, config, board)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(worker.run())


class Worker:
    def __init__(
        self,
        slot: int,
        gen: int,
        channel: socket.socket,
        listeners: Sequence[socket.socket],
        config: Config,
        board: LoadBoard | None = None,
    ) -> None:
        self.slot, self.gen, self.config = slot, gen, config
        self._board = board
        self._channel_sock = channel
        self._listeners = listeners
        self._stats = WorkerStats()
        self.hooks = Hooks(config)  # the worker hooks, once _boot has loaded them
        self._server: WorkerServer | None = None  # once booted (ctl set reaches it)
        self._stop_requested: asyncio.Future[float | None] | None = None
        self._abort = asyncio.Event()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self._stop_requested = loop.create_future()
        endpoint = self._endpoint = await open_worker_end(self._channel_sock)
        reader = asyncio.ensure_future(self._read_channel(endpoint))
        loop.add_signal_handler(signal.SIGTERM, self._on_sigterm)
        loop.add_signal_handler(signal.SIGQUIT, self._on_sigquit)
        booted: tuple[Any, Any] | None = None
        try:
            booted = await self._boot_or_stop(endpoint)
            if booted is None:
                return EXIT_OK  # told to stop (or master gone) before we were ready
            server, lifespan = booted
            await self._serve(endpoint, server, lifespan)
            return EXIT_OK
        except _BootFailed as failed:
            _send_fatal(endpoint, failed)
            return EXIT_BOOT
        finally:
            self.hooks.run("worker_exit", generation=self.gen, slot=self.slot)
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
            endpoint.close()

    # -- boot ----------------------------------------------------------------------------------

    async def _boot_or_stop(self, endpoint: WorkerEnd) -> tuple[Any, Any] | None:
        assert self._stop_requested is not None
        boot = asyncio.ensure_future(self._boot())
        race: set[asyncio.Future[Any]] = {boot, self._stop_requested}
        await asyncio.wait(race, return_when=asyncio.FIRST_COMPLETED)
        if not boot.done():
            boot.cancel()
            with contextlib.suppress(BaseException):
                await boot
            return None
        try:
            return boot.result()
        except BaseException as exc:
            raise _BootFailed(*_describe(exc)) from exc

    async def _boot(self) -> tuple[Any, Any]:
        config = self.config
        hooks = self.hooks = Hooks.load(config, WORKER_HOOKS)
        hooks.run("post_fork", generation=self.gen, slot=self.slot, strict=True)
        app = load_app(config.app, factory=config.factory, app_dir=config.app_dir)
        lifespan = Lifespan(app, config.lifespan)
        await lifespan.startup()
        try:
            hooks.run("post_worker_init", generation=self.gen, slot=self.slot, strict=True)
        except HookError:
            await lifespan.shutdown()
            raise
        self._reporter = Reporter(
            self._send_quietly,
            self._stats,
            lambda: bool(server.accepting),
            max_requests=config.max_requests_per_worker,
            max_requests_jitter=config.max_requests_jitter,
            max_memory=config.max_worker_memory,
            publish=self._publisher(),
            on_retire=lambda reason: server.retire(),
        )
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        listening = fdlimit.fds_in_use() + ACCEPT_FAN * len(self._listeners)  # the gate's dups
        capacity = fdlimit.budget(config.worker_connections, soft, listening)
        server = WorkerServer(
            app,
            HttpLimits.from_config(config),
            sockets=self._listeners,
            worker_connections=capacity,
            fd_capped=capacity < config.worker_connections,
            backlog=config.backlog,
            stats=self._stats,
            state=lifespan.state,
            ssl_context=make_ssl_context(config),
            on_accepting_change=self._reporter.poke,
            balance=self._balance(),
        )
        try:
            await server.start()
        except BaseException:
            await lifespan.shutdown()
            raise
        self._server = server
        return server, lifespan

    def _publisher(self) -> Callable[[int], None] | None:
        """Writes the served count into this slot of the shared board (read after a SIGKILL)."""
        board, slot = self._board, self.slot
        if board is None or not board.holds(slot):
            return None
        served = board.served

        def publish(count: int) -> None:
            served[slot] = count

        return publish

    def _balance(self) -> Balance | None:
        board = self._board
        if board is None or not board.holds(self.slot) or not self.config.balance_connections:
            return None
        return Balance(board, self.slot, self.config.server_limit)

    # -- serve and drain -----------------------------------------------------------------------

    async def _serve(self, endpoint: WorkerEnd, server: Any, lifespan: Any) -> None:
        assert self._stop_requested is not None
        try:
            endpoint.send(Ready(pid=os.getpid(), slot=self.slot, gen=self.gen))
        except PeerGone:
            self._request_stop(time.time() + self.config.graceful_timeout)
        stalls = None
        if self.config.stall_threshold > 0:
            stalls = StallWatch(self.config.stall_threshold, slot=self.slot)
            stalls.start(asyncio.get_running_loop())
            self._reporter.stalls = stalls
        self._reporter.report()
        heartbeat = asyncio.ensure_future(self._reporter.run())
        memory = asyncio.ensure_future(self._reporter.watch_memory())
        try:
            deadline = await self._stop_requested
            await self._drain(server, deadline)
            remaining = LIFESPAN_SHUTDOWN_MIN
            if deadline is not None:
                remaining = max(LIFESPAN_SHUTDOWN_MIN, deadline - time.time())
            await lifespan.shutdown(timeout=min(remaining, self.config.graceful_timeout))
        finally:
            for task in (heartbeat, memory):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            if stalls is not None:
                stalls.stop()
        self._reporter.report()  # final totals, so the master's counters include our last requests
        with contextlib.suppress(PeerGone):
            await endpoint.drain()

    async def _drain(self, server: Any, deadline: float | None) -> None:
        if self._abort.is_set():
            server.abort()
            return
        drain = asyncio.ensure_future(server.shutdown(deadline))
        abort = asyncio.ensure_future(self._abort.wait())
        await asyncio.wait({drain, abort}, return_when=asyncio.FIRST_COMPLETED)
        abort.cancel()
        if not drain.done():
            server.abort()
            drain.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await drain

    # -- the channel and signals ---------------------------------------------------------------

    async def _read_channel(self, endpoint: WorkerEnd) -> None:
        try:
            async for msg in endpoint:
                match msg:
                    case GracefulStop():
                        self._request_stop(None if math.isinf(msg.deadline) else msg.deadline)
                    case Stop():
                        self._abort.set()
                        self._request_stop(time.time())
                    case ReopenLogs():
                        reopen_log_files()
                    case ListRequests():
                        total, rows = inflight.collect(
                            self._stats.connections, msg.limit, msg.target_length
                        )
                        with contextlib.suppress(PeerGone):
                            endpoint.send(Requests(request=msg.request, total=total, rows=rows))
                    case Apply():
                        self._apply(msg.settings)
                    case Dump():
                        text = live_stacks(FATAL_LIMIT, hosted_by(self._stats.connections))
                        with contextlib.suppress(PeerGone):
                            endpoint.send(Stacks(request=msg.request, text=text))
                    case _:
                        assert_never(msg)
        except ProtocolViolation as exc:
            log.error("worker %d: the master sent a bad frame (%s); stopping", self.slot, exc)
        # EOF: the pipe of death. The master is gone; finish what we have and leave.
        if self._stop_requested is not None and not self._stop_requested.done():
            log.warning("worker %d: master gone, draining and exiting", self.slot)
        self._request_stop(time.time() + self.config.graceful_timeout)

    def _apply(self, settings: tuple[tuple[str, str], ...]) -> None:
        """`ctl set` (config/live.py): the master validated these; take them from now on."""
        for key, raw in settings:
            value = BY_NAME[key].parse(raw)
            self.config = dataclasses.replace(self.config, **{key: value})
            if key == "log_level" and not self.config.log_config:
                logging.getLogger("aioprefork").setLevel(str(value).upper())
            elif key == "max_requests_per_worker":
                self._reporter.set_request_limit(int(value))
            elif self._server is not None:
                self._server.set_live(key, value)

    def _request_stop(self, deadline: float | None) -> None:
        if self._stop_requested is not None and not self._stop_requested.done():
            self._stop_requested.set_result(deadline)

    def _on_sigterm(self) -> None:
        """Someone else (systemd, `tini -g`, an operator) told this worker to stop: say so, so
        the master replaces it without calling it a crash, then drain."""
        if self._stop_requested is not None and not self._stop_requested.done():
            with contextlib.suppress(PeerGone, AttributeError):
                self._endpoint.send(Retire(reason=TERMINATED))
        self._request_stop(time.time() + self.config.graceful_timeout)

    def _on_sigquit(self) -> None:
        self._abort.set()
        self._request_stop(time.time())

    def _send_quietly(self, msg: ToMaster) -> None:
        self._endpoint.send(msg)


def import_app(path: str, *, app_dir: str = ".") -> None:
    """`preload`: the app's module imported ahead of the fork (master/fork.preload_app), so
    `load_app` in each worker finds it in sys.modules. AppLoadError."""
    preload_app(path, app_dir=app_dir)


class _BootFailed(Exception):
    def __init__(self, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


def _describe(exc: BaseException) -> tuple[str, str]:
    """(the operator's one line, the traceback or ""). Our own errors are already one line, with
    the app's traceback beside it when the app's code raised; anything else is a bug in the app,
    and its traceback is the useful part."""
    if isinstance(exc, AppLoadError | BootError):
        return str(exc)[:FATAL_LIMIT], exc.detail[-FATAL_LIMIT:]
    if isinstance(exc, AiopreforkError):
        return str(exc)[:FATAL_LIMIT], ""
    text = " ".join(str(exc).split())
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    detail = "".join(traceback.format_exception(exc)).rstrip()
    return line[:FATAL_LIMIT], detail[-FATAL_LIMIT:]


def _send_fatal(endpoint: WorkerEnd, failed: _BootFailed) -> None:
    try:
        endpoint.send(Fatal(code=EXIT_BOOT, message=failed.message, detail=failed.detail))
    except PeerGone:  # nobody to tell: say it where an operator may look
        text = f"{failed.detail}\n" if failed.detail else ""
        print(f"{text}aioprefork worker boot failed: {failed.message}", flush=True, file=sys.stderr)
