"""The master: one single-threaded asyncio loop supervising the worker pool (SPEC sections 3, 4).

The cycle reads as verbs: wait for an order or the next tick -> reap -> obey orders -> once a
second snapshot() -> plan() -> execute(). Orders come from two places and land in one queue:
signal handlers only enqueue (`loop.add_signal_handler(sig, queue.put_nowait, SIGNALS[sig])`)
and `ctl` requests enqueue a Job that streams progress back. Worker frames arrive on one reader
task per channel and go straight into the scoreboard. Restarts run as a task, so reaping, the
heartbeat check and `ctl status` keep working while a generation boots or drains.

Invariants: this is the only module that decides to fork or signal a worker (fork.py does the
forking); every pid it spawned is classified on exit, every other child is reaped silently (we
may be PID 1); a worker is never signalled after it was reaped (the pid could be reused); a
generation that cannot boot never turns into a respawn loop: at start it halts (exit 3), on a
graceful restart it is rolled back and the old generation keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aioprefork import __version__
from aioprefork.channel.endpoint import Endpoint, PeerGone
from aioprefork.channel.messages import (
    Fatal,
    GracefulStop,
    Message,
    Ready,
    ReopenLogs,
    Retire,
    Stop,
)
from aioprefork.config.load import Loaded
from aioprefork.config.model import Config, PoolPolicy
from aioprefork.errors import EXIT_BOOT, EXIT_FAILURE, EXIT_OK, ProtocolViolation, UserError
from aioprefork.logs import reopen_log_files
from aioprefork.master import daemon, exits, fork, maintenance
from aioprefork.master.listeners import Listener, bind_all, close_all
from aioprefork.master.scoreboard import Scoreboard, Slot
from aioprefork.master.signals import SIGNALS, Command
from aioprefork.master.snapshot import Snapshot
from aioprefork.master.states import (
    TERMINAL,
    MasterState,
    MasterTrigger,
    SlotState,
    advance,
)

log = logging.getLogger("aioprefork.error")

TICK: Final = 1.0  # maintenance interval (Apache: once a second)
STOP_GRACE: Final = 3.0  # after Stop (immediate): SIGKILL if the worker is still there
ABORT_GRACE: Final = 2.0  # after SIGABRT (stack dump): SIGKILL
KILL_GRACE: Final = 1.0  # after a graceful deadline: SIGKILL
REAP = "reap"  # queue marker from the SIGCHLD handler
WAKE = "wake"  # queue marker: a worker changed state, re-check progress now


@dataclass(eq=False)
class Job:
    """One `ctl` request in flight: progress lines and then exactly one final reply."""

    command: Command
    args: Mapping[str, Any] = field(default_factory=dict)
    replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    done: bool = False

    def progress(self, text: str) -> None:
        log.info("%s", text)
        if not self.done:
            self.replies.put_nowait({"progress": text})

    def finish(self, ok: bool, text: str) -> None:
        if not self.done:
            self.done = True
            self.replies.put_nowait(
                {"ok": True, "result": text} if ok else {"ok": False, "error": text}
            )


Order = Command | Job | str


def run_master(loaded: Loaded, reload: Callable[[], Loaded]) -> int:
    """Serve `loaded.config` with a prefork pool until stopped; returns the exit code.

    `reload` re-reads the configuration the way the CLI first did (same flags, file, env); it
    is called on every restart. UserErrors in BOOTING (bind, pid file, privileges) propagate
    as one line for the CLI (exit 2).
    """
    config = loaded.config
    listeners = bind_all(config)
    try:
        if config.daemon:
            daemon.daemonize()
        arbiter = Arbiter(loaded, reload, listeners)
        with asyncio.Runner() as runner:  # a plain asyncio loop: the master never runs uvloop
            return runner.run(arbiter.run())
    finally:
        close_all([listener for listener in listeners if listener.sock.fileno() != -1])


class Arbiter:
    def __init__(
        self, loaded: Loaded, reload: Callable[[], Loaded], listeners: list[Listener]
    ) -> None:
        self.loaded = loaded
        self.config: Config = loaded.config
        self.policy = PoolPolicy.from_config(self.config)
        self._reload = reload
        self.listeners = listeners
        self._sockets = [listener.sock for listener in listeners]
        self.state = MasterState.BOOTING
        self.exit_code = EXIT_OK
        self.scoreboard = Scoreboard(
            pid=os.getpid(),
            version=__version__,
            server_limit=self.config.server_limit,
            worker_connections=self.config.worker_connections,
            min_workers=self.config.min_workers,
            max_workers=self.config.max_workers,
            min_spare_slots=self.config.min_spare_slots,
            max_spare_slots=self.config.max_spare_slots,
        )
        self._memo = maintenance.PoolMemo()
        self._crashes = exits.CrashRecord()
        self._last_gen = 0
        self._inbox: asyncio.Queue[Order] = asyncio.Queue()
        self._endpoints: dict[Slot, Endpoint] = {}
        self._outbox: dict[Slot, list[Message]] = {}
        self._readers: dict[Slot, asyncio.Task[None]] = {}
        self._reaped: dict[Slot, int] = {}  # wait status, until the channel's last frames are read
        self._successor: dict[Slot, Slot] = {}  # replacement -> the recycled worker it replaces
        self._restart: asyncio.Task[None] | None = None
        self._restart_job: Job | None = None
        self._change = asyncio.Event()
        self._tick_now = False
        self._last_fatal = ""
        self._control: Any = None
        self._metrics: Any = None
        self._appmetrics = False

    # -- the cycle -------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            await self._boot()
            next_tick = loop.time() + TICK
            while self.state not in TERMINAL:
                orders = await self._wait(next_tick - loop.time())
                self._reap()
                for order in orders:
                    self._obey(order)
                if self._tick_now or loop.time() >= next_tick:
                    self._tick_now = False
                    self._maintain()
                    if loop.time() >= next_tick:
                        next_tick = max(next_tick + TICK, loop.time())
                self._check_progress()
        except UserError:
            self.exit_code = EXIT_FAILURE
            raise  # a BOOTING failure: one line from the CLI, after the cleanup below
        except Exception:
            log.exception("master: internal error; stopping every worker")
            self.exit_code = EXIT_FAILURE
            if self.state not in TERMINAL:
                self.state = MasterState.HALTED
        finally:
            await self._shutdown()
        return self.exit_code

    async def _wait(self, delay: float) -> list[Order]:
        """Everything queued, after waiting up to `delay` seconds for the first item."""
        orders: list[Order] = []
        if self._inbox.empty() and delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    orders.append(await self._inbox.get())
        while not self._inbox.empty():
            orders.append(self._inbox.get_nowait())
        return orders

    async def _boot(self) -> None:
        """BOOTING: signals, pid file, control socket, metrics, privileges; then fork."""
        loop = asyncio.get_running_loop()
        daemon.set_title("aioprefork: master")
        for sig, command in SIGNALS.items():
            if sig == signal.SIGWINCH and daemon.on_terminal():
                continue  # a terminal resize, not an order
            loop.add_signal_handler(sig, self._inbox.put_nowait, command)
        loop.add_signal_handler(signal.SIGCHLD, self._inbox.put_nowait, REAP)
        config = self.config
        if config.pid_file:
            daemon.write_pid_file(config.pid_file)
        owner = daemon.resolve_owner(config.user, config.group)
        await self._open_control(owner)
        await self._open_metrics(owner)
        fork.preload()
        daemon.drop_privileges(config.user, config.group)
        self._set_state(MasterTrigger.BOUND)
        self._last_gen = self.scoreboard.generation = 1
        for listener in self.listeners:
            log.info("listening on %s", listener.describe())
        count = max(config.workers, config.min_workers)
        log.info("starting %d workers for %s (pid %d)", count, config.app, os.getpid())
        for _ in range(count):
            self._spawn(1, config, "start")

    async def _open_control(self, owner: tuple[int, int] | None) -> None:
        from aioprefork.control.server import open_control_server

        path = daemon.ctl_socket_path(self.config)
        try:
            self._control = await open_control_server(path, self.control, owner=owner)
        except UserError as exc:
            if self.config.ctl_socket or self.config.pid_file:
                raise
            log.warning("no control socket (%s); signals still work", exc)

    async def _open_metrics(self, owner: tuple[int, int] | None) -> None:
        from aioprefork.metrics import appmetrics

        directory = appmetrics.prepare()
        self._appmetrics = True
        if owner is not None and os.geteuid() == 0:
            os.chown(directory, *owner)  # workers write their app metrics there as --user
        if self.config.metrics:
            from aioprefork.metrics.http import open_metrics_server

            self._metrics = await open_metrics_server(
                self.config.metrics_bind, self.snapshot, registry_extra=appmetrics.collector()
            )

    async def _shutdown(self) -> None:
        """Leave nothing behind: kill and reap our children, close the master-only sockets."""
        if self._restart is not None and not self._restart.done():
            self._restart.cancel()
        for slot in list(self.scoreboard):
            self._signal(slot, signal.SIGKILL)
        deadline = time.monotonic() + 5.0
        while len(self.scoreboard) and time.monotonic() < deadline:
            self._reap()
            await asyncio.sleep(0.02)
        for task in self._readers.values():
            task.cancel()
        for endpoint in self._endpoints.values():
            endpoint.abort()
        if self._control is not None:
            with contextlib.suppress(Exception):
                await self._control.close()
        if self._metrics is not None:
            with contextlib.suppress(Exception):
                await self._metrics.close()
        if self._appmetrics:
            from aioprefork.metrics import appmetrics

            appmetrics.cleanup()
        daemon.remove_pid_file(self.config.pid_file)
        if self._restart_job is not None:
            self._restart_job.finish(False, f"master {self.state.value}")
        self.scoreboard.master_state = self.state.value
        log.info("master exiting (%s, code %d)", self.state.value, self.exit_code)

    # -- orders ----------------------------------------------------------------------------------

    def _obey(self, order: Order) -> None:
        if order in (REAP, WAKE):
            return  # reaping and progress checks run every cycle
        job = order if isinstance(order, Job) else None
        command = order.command if isinstance(order, Job) else order
        assert isinstance(command, Command)
        if job is None:
            log.info("received %s", command.value)
        handlers: dict[Command, Callable[[Job], None]] = {
            Command.STOP: self._order_stop,
            Command.STOP_NOW: lambda j: self._begin_stop(j, immediate=True),
            Command.GRACEFUL_STOP: lambda j: self._begin_stop(j, timeout=math.inf),
            Command.RESTART: self._order_restart,
            Command.GRACEFUL: self._order_restart,
            Command.SCALE_UP: self._order_scale,
            Command.SCALE_DOWN: self._order_scale,
            Command.REOPEN_LOGS: self._order_reopen_logs,
        }
        handlers[command](job or Job(command, done=True))  # a signal: nobody reads the replies

    def _order_stop(self, job: Job) -> None:
        if self.state is MasterState.STOPPING:  # a second TERM/INT: stop now
            self._begin_stop(job, immediate=True)
            return
        now = bool(job.args.get("now"))
        timeout = job.args.get("timeout")
        self._begin_stop(job, immediate=now, timeout=timeout)

    def _begin_stop(
        self, job: Job, *, immediate: bool = False, timeout: float | None = None
    ) -> None:
        if self.state is MasterState.STOPPING and not immediate:
            job.finish(True, "already stopping")
            return
        if self._restart is not None and not self._restart.done():
            self._restart.cancel()
        if self.state is not MasterState.STOPPING:
            self._set_state(MasterTrigger.STOP)
            close_all([lsn for lsn in self.listeners if lsn.sock.fileno() != -1])
        grace = self.config.graceful_timeout if timeout is None else timeout
        deadline = time.time() + grace
        for slot in list(self.scoreboard):
            if immediate:
                self._stop_now(slot, "shutdown")
            else:
                self._stop_gracefully(slot, "shutdown", deadline)
        how = (
            "now"
            if immediate
            else ("with no timeout" if math.isinf(grace) else f"within {grace:g}s")
        )
        log.info("stopping %d workers %s", len(self.scoreboard), how)
        job.finish(True, f"stopping {len(self.scoreboard)} workers {how}")

    def _order_restart(self, job: Job) -> None:
        kind = "graceful" if job.command is Command.GRACEFUL else "restart"
        if self.state is not MasterState.RUNNING or (self._restart and not self._restart.done()):
            why = f"cannot {kind} while {self.state.value}"
            if self._restart is not None and not self._restart.done():
                why = f"cannot {kind}: a restart is already in progress"
            log.warning("%s", why)
            job.finish(False, why)
            return
        self._restart_job = job
        body = self._graceful(job) if kind == "graceful" else self._hard_restart(job)
        self._restart = asyncio.ensure_future(body)

    def _order_scale(self, job: Job) -> None:
        sb = self.scoreboard
        before = sb.min_workers
        n = str(job.args.get("n", "+1" if job.command is Command.SCALE_UP else "-1"))
        target = before + int(n) if n[0] in "+-" else int(n)
        sb.min_workers = max(1, min(target, self.policy.max_workers))
        self._tick_now = True
        log.info("min_workers %d -> %d", before, sb.min_workers)
        job.finish(True, f"min_workers {sb.min_workers} (was {before})")

    def _order_reopen_logs(self, job: Job) -> None:
        reopen_log_files()
        for slot in list(self.scoreboard):
            self._send(slot, ReopenLogs())
        job.finish(True, f"logs reopened by the master and {len(self.scoreboard)} workers")

    # -- maintenance -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        self.scoreboard.master_state = self.state.value
        self.scoreboard.spawn_rate = self._memo.spawn_rate
        return self.scoreboard.snapshot()

    def _maintain(self) -> None:
        now = time.time()
        actions, self._memo = maintenance.plan(self.snapshot(), self.policy, now, self._memo)
        self.scoreboard.spawn_rate = self._memo.spawn_rate
        for action in actions:
            self._execute(action, now)
        if self.state is MasterState.RUNNING and now >= self._memo.not_before:
            for slot in list(self.scoreboard):
                if (
                    slot.state is SlotState.READY
                    and slot.retiring in exits.RECYCLE_REASONS
                    and slot not in self._successor.values()
                ):
                    self._recycle(slot)

    def _execute(self, action: maintenance.Action, now: float) -> None:
        sb = self.scoreboard
        if isinstance(action, maintenance.Spawn):
            for _ in range(action.count):
                self._spawn(sb.generation, self.config, action.cause)
        elif isinstance(action, maintenance.Dismiss):
            slot = sb.get(action.slot)
            if slot is not None:
                log.info("worker %d (pid %d): surplus, stopping it", slot.index, slot.pid)
                self._stop_gracefully(slot, action.reason, now + self.config.graceful_timeout)
        elif isinstance(action, maintenance.Abort):
            slot = sb.get(action.slot)
            if slot is not None:
                log.error(
                    "worker %d (pid %d) silent for more than heartbeat_timeout (%gs): "
                    "SIGABRT (stack dump follows), then SIGKILL",
                    slot.index, slot.pid, self.policy.heartbeat_timeout,
                )  # fmt: skip
                sb.heartbeat_timeouts_total += 1
                sb.stop(slot, exits.HUNG)
                self._signal(slot, signal.SIGABRT)
                self._signal_later(slot, signal.SIGKILL, ABORT_GRACE)
        elif isinstance(action, maintenance.Kill):
            slot = sb.get(action.slot)
            if slot is not None:
                log.error(
                    "worker %d (pid %d) not ready after %gs: killing it",
                    slot.index, slot.pid, self.policy.boot_timeout,
                )  # fmt: skip
                sb.stop(slot, action.reason)
                self._signal(slot, signal.SIGKILL)
        elif isinstance(action, maintenance.MaxWorkersReached):
            sb.max_workers_reached_total += 1
            log.warning(
                "server reached max_workers (%d) and spare capacity is short: "
                "consider raising max_workers", action.active,
            )  # fmt: skip

    def _check_progress(self) -> None:
        """STARTING -> RUNNING once min_workers are READY; HALT if none can boot;
        STOPPING -> EXITED once every worker is gone."""
        sb = self.scoreboard
        if self.state is MasterState.STARTING:
            current = [s for s in sb if s.gen == sb.generation]
            ready = sum(s.state is SlotState.READY for s in current)
            if ready >= sb.min_workers:
                self._set_state(MasterTrigger.MIN_READY)
                self._memo = maintenance.after_restart(self._memo)
                log.info("running: %d workers ready", ready)
            elif not any(s.state is SlotState.STARTING for s in current) and not ready:
                self._halt(f"no worker could boot: {self._last_fatal or 'workers exited'}")
        elif self.state is MasterState.STOPPING and not len(sb):
            self._set_state(MasterTrigger.ALL_EXITED)

    def _halt(self, message: str) -> None:
        log.error("%s", message)
        self.exit_code = EXIT_BOOT
        self._set_state(MasterTrigger.HALT)
        for slot in list(self.scoreboard):
            self._stop_now(slot, "halt")

    # -- workers ---------------------------------------------------------------------------------

    def _spawn(self, gen: int, config: Config, cause: str) -> Slot | None:
        sb = self.scoreboard
        index = sb.free_index()
        if index is None:
            log.warning("server_limit (%d) reached: cannot start a worker", sb.server_limit)
            return None
        child = fork.spawn(index, gen, config=config, listeners=self._sockets)
        slot = sb.add(index, child.pid, gen, cause)
        task = asyncio.ensure_future(self._listen(slot, child.channel))
        self._readers[slot] = task
        log.debug("worker %d (pid %d, gen %d) started (%s)", index, child.pid, gen, cause)
        return slot

    async def _listen(self, slot: Slot, sock: Any) -> None:
        try:
            await self._read_channel(slot, sock)
        finally:
            self._readers.pop(slot, None)
            self._finish_exit(slot)

    async def _read_channel(self, slot: Slot, sock: Any) -> None:
        try:
            endpoint = await Endpoint.open(sock)
        except OSError:
            sock.close()
            return
        self._endpoints[slot] = endpoint
        for msg in self._outbox.pop(slot, []):
            self._send(slot, msg)
        try:
            async for msg in endpoint:
                self._on_message(slot, msg)
        except ProtocolViolation as exc:
            log.error(
                "worker %d (pid %d) broke the channel protocol (%s): killing it",
                slot.index,
                slot.pid,
                exc,
            )
            self._signal(slot, signal.SIGKILL)

    def _on_message(self, slot: Slot, msg: Message) -> None:
        sb = self.scoreboard
        sb.apply(slot, msg)
        if isinstance(msg, Ready):
            log.info("worker %d (pid %d, gen %d) ready", slot.index, slot.pid, slot.gen)
            old = self._successor.pop(slot, None)
            if old is not None and sb.holds(old) and old.state is SlotState.READY:
                deadline = time.time() + self.config.graceful_timeout
                self._stop_gracefully(old, old.retiring or "recycle", deadline)
            self._notify()
        elif isinstance(msg, Retire):
            log.info(
                "worker %d (pid %d) retiring (%s): starting its replacement",
                slot.index,
                slot.pid,
                msg.reason,
            )
            if self.state is MasterState.RUNNING and slot.gen == sb.generation:
                self._recycle(slot)
        elif isinstance(msg, Fatal):
            self._last_fatal = msg.message
            log.error(
                "worker %d (pid %d, gen %d) failed to boot: %s",
                slot.index,
                slot.pid,
                slot.gen,
                msg.message,
            )
            self._notify()

    def _recycle(self, slot: Slot) -> None:
        """Start `slot`'s replacement; `slot` stops once the replacement is READY."""
        if slot in self._successor.values() or time.time() < self._memo.not_before:
            return
        new = self._spawn(self.scoreboard.generation, self.config, "recycle")
        if new is not None:
            self._successor[new] = slot

    def _stop_gracefully(self, slot: Slot, reason: str, deadline: float) -> None:
        self.scoreboard.stop(slot, reason)
        self._send(slot, GracefulStop(deadline=deadline))
        if math.isfinite(deadline):
            self._signal_later(slot, signal.SIGKILL, max(0.0, deadline - time.time()) + KILL_GRACE)

    def _stop_now(self, slot: Slot, reason: str) -> None:
        self.scoreboard.stop(slot, reason)
        self._send(slot, Stop())
        self._signal_later(slot, signal.SIGKILL, STOP_GRACE)

    def _send(self, slot: Slot, msg: Message) -> None:
        endpoint = self._endpoints.get(slot)
        if endpoint is None:
            self._outbox.setdefault(slot, []).append(msg)  # channel still opening
            return
        with contextlib.suppress(PeerGone):
            endpoint.send(msg)

    def _signal(self, slot: Slot, sig: signal.Signals) -> None:
        """Signal a worker we still hold (never a reaped pid: it may belong to someone else now)."""
        if self.scoreboard.holds(slot) and slot not in self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, sig)

    def _signal_later(self, slot: Slot, sig: signal.Signals, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self._signal, slot, sig)

    # -- reaping ---------------------------------------------------------------------------------

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.scoreboard.by_pid(pid)
            if slot is None:  # an orphan we inherited as PID 1: reaped, silently
                continue
            self._reaped[slot] = status
            if slot in self._readers:  # its Fatal may still be unread: finish at the channel's EOF
                asyncio.get_running_loop().call_later(1.0, self._finish_exit, slot)
            else:
                self._finish_exit(slot)

    def _finish_exit(self, slot: Slot) -> None:
        if slot in self._reaped and self.scoreboard.holds(slot):
            self._on_exit(slot, self._reaped.pop(slot))

    def _on_exit(self, slot: Slot, status: int) -> None:
        sb = self.scoreboard
        task = self._readers.pop(slot, None)
        if task is not None:
            task.cancel()
        cause = exits.classify(status, slot)
        how = exits.describe(status)
        endpoint = self._endpoints.pop(slot, None)
        if endpoint is not None:
            endpoint.close()
        self._outbox.pop(slot, None)
        self._successor.pop(slot, None)
        healthy_for = slot.healthy_for(sb.clock())
        sb.remove(slot, cause.value)
        if self._appmetrics:
            from aioprefork.metrics import appmetrics

            appmetrics.mark_dead(slot.pid)
        where = f"worker {slot.index} (pid {slot.pid}, gen {slot.gen})"
        if cause in (exits.ExitCause.STOPPED, exits.ExitCause.RETIRED):
            log.info("%s exited (%s, %s)", where, slot.retiring or cause.value, how)
        elif cause is exits.ExitCause.BOOT_FAILURE:
            log.error("%s failed to boot (%s)", where, how)
            if not slot.fatal:
                self._last_fatal = self._last_fatal or f"worker exited during boot ({how})"
        else:
            log.error(
                "%s %s (%s)", where, "was hung" if cause is exits.ExitCause.HUNG else "died", how
            )
        serving = self.state in (MasterState.STARTING, MasterState.RUNNING)
        crashed = serving and cause in (exits.ExitCause.CRASH, exits.ExitCause.HUNG)
        failed = self.state is MasterState.RUNNING and cause is exits.ExitCause.BOOT_FAILURE
        if slot.gen == sb.generation and (crashed or failed):
            self._crashes = exits.record_crash(self._crashes, time.time(), healthy_for)
            self._memo = dataclasses.replace(self._memo, not_before=self._crashes.not_before)
            if cause is not exits.ExitCause.BOOT_FAILURE:
                self._memo = dataclasses.replace(self._memo, owed=self._memo.owed + 1)
            delay = self._crashes.not_before - time.time()
            if delay > 0:
                log.warning(
                    "%d crashes in a row: next replacement in %.0fs",
                    self._crashes.consecutive,
                    delay,
                )
            self._tick_now = True
        self._notify()

    # -- restarts --------------------------------------------------------------------------------

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()
        self._inbox.put_nowait(WAKE)

    async def _changed(self, timeout: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await self._change.wait()

    def _set_state(self, trigger: MasterTrigger) -> None:
        self.state = advance(self.state, trigger)
        self.scoreboard.master_state = self.state.value

    def _reload_config(self) -> Config:
        loaded = self._reload()
        if loaded.config.workers < 1:
            raise UserError("workers = 0 (in-process mode) cannot be applied by a restart")
        return loaded.config

    def _commit(self, config: Config, gen: int) -> None:
        self.config = config
        self.policy = PoolPolicy.from_config(config)
        sb = self.scoreboard
        sb.generation = gen
        sb.server_limit, sb.worker_connections = config.server_limit, config.worker_connections
        sb.min_workers, sb.max_workers = config.min_workers, config.max_workers
        sb.min_spare_slots, sb.max_spare_slots = config.min_spare_slots, config.max_spare_slots
        self._memo = maintenance.after_restart(dataclasses.replace(self._memo, owed=0))
        if config.binds() != self.loaded.config.binds():
            log.warning("bind addresses changed: listeners are kept; a full stop/start rebinds")

    def _record(self, kind: str, ok: bool, text: str) -> None:
        result = "ok" if ok else "rolled_back" if kind == "graceful" else "failed"
        self.scoreboard.restarts_total[f"{kind}:{result}"] += 1
        self.scoreboard.last_restart = {
            "kind": kind,
            "result": result,
            "reason": text,
            "at": time.time(),
        }

    async def _await_ready(self, gen: int, slots: list[Slot], timeout: float, job: Job) -> str:
        """'' once every slot is READY; else why not (a boot error, an exit, the timeout)."""
        sb = self.scoreboard
        deadline = time.monotonic() + timeout
        reported = -1
        while True:
            ready = sum(s.state is SlotState.READY and sb.holds(s) for s in slots)
            if ready != reported:
                job.progress(f"generation {gen}: {ready}/{len(slots)} workers ready")
                reported = ready
            failed = [s for s in slots if s.fatal is not None or not sb.holds(s)]
            if failed:
                fatal = next((s.fatal for s in failed if s.fatal is not None), None)
                return fatal.message if fatal else "a new worker exited during boot"
            if ready == len(slots):
                return ""
            if time.monotonic() >= deadline:
                return f"not ready within boot_timeout ({timeout:g}s)"
            await self._changed(deadline - time.monotonic())

    async def _graceful(self, job: Job) -> None:
        """USR1: new generation first; when READY, drain the old one. Failure rolls back."""
        self._set_state(MasterTrigger.RESTART)
        try:
            await self._graceful_steps(job)
        except asyncio.CancelledError:
            job.finish(False, "interrupted: the server is stopping")
            raise
        finally:
            self._restart_job = None

    async def _graceful_steps(self, job: Job) -> None:
        try:
            config = self._reload_config()
        except UserError as exc:
            return self._rolled_back(job, f"config: {exc}")
        self._last_gen += 1
        gen = self._last_gen
        sb = self.scoreboard
        old = [s for s in sb if s.gen != gen and s.state is not SlotState.STOPPING]
        count = max(config.workers, config.min_workers, min(len(old), config.max_workers))
        job.progress(f"graceful restart: starting generation {gen} ({count} workers)")
        new = [s for s in (self._spawn(gen, config, "graceful") for _ in range(count)) if s]
        if not new:
            return self._rolled_back(job, "no free slot for a new generation (server_limit)")
        why = await self._await_ready(gen, new, config.boot_timeout, job)
        if why:
            for slot in new:
                self._stop_now(slot, "rollback")
            return self._rolled_back(job, why)
        self._commit(config, gen)
        self._set_state(MasterTrigger.RESTARTED)
        reopen_log_files()
        deadline = time.time() + config.graceful_timeout
        for slot in old:
            if sb.holds(slot):
                self._stop_gracefully(slot, "graceful", deadline)
        job.progress(f"generation {gen} serving; {len(old)} old workers draining")
        await self._drained(old, config.graceful_timeout + KILL_GRACE + 1.0)
        text = f"graceful restart done: generation {gen} ({len(new)} workers)"
        self._record("graceful", True, text)
        log.info("%s", text)
        job.finish(True, text)

    def _rolled_back(self, job: Job, why: str) -> None:
        text = f"rolled back: {why}"
        log.error(
            "graceful restart %s; generation %d keeps serving", text, self.scoreboard.generation
        )
        self._record("graceful", False, text)
        self._set_state(MasterTrigger.RESTARTED)
        job.finish(False, text)

    async def _drained(self, slots: list[Slot], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(self.scoreboard.holds(s) for s in slots) and time.monotonic() < deadline:
            await self._changed(deadline - time.monotonic())

    async def _hard_restart(self, job: Job) -> None:
        """HUP: re-read config, stop every worker now, start a new generation (listeners stay)."""
        self._set_state(MasterTrigger.RESTART)
        try:
            await self._hard_restart_steps(job)
        except asyncio.CancelledError:
            job.finish(False, "interrupted: the server is stopping")
            raise
        finally:
            self._restart_job = None

    async def _hard_restart_steps(self, job: Job) -> None:
        try:
            config = self._reload_config()
        except UserError as exc:
            text = f"config: {exc}"
            log.error("restart refused (%s); workers keep serving", text)
            self._record("restart", False, text)
            self._set_state(MasterTrigger.RESTARTED)
            return job.finish(False, text)
        self._last_gen += 1
        gen = self._last_gen
        for slot in list(self.scoreboard):
            self._stop_now(slot, "restart")
        self._commit(config, gen)
        count = max(config.workers, config.min_workers)
        job.progress(
            f"restart: stopped the old workers, starting generation {gen} ({count} workers)"
        )
        new = [s for s in (self._spawn(gen, config, "restart") for _ in range(count)) if s]
        why = await self._await_ready(gen, new, config.boot_timeout, job)
        if why:
            self._record("restart", False, why)
            job.finish(False, f"generation {gen} failed to boot: {why}")
            self._last_fatal = why
            return self._halt(f"restart: no worker of generation {gen} could boot: {why}")
        self._set_state(MasterTrigger.RESTARTED)
        text = f"restart done: generation {gen} ({len(new)} workers)"
        self._record("restart", True, text)
        log.info("%s", text)
        job.finish(True, text)

    # -- control socket --------------------------------------------------------------------------

    async def control(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The `ctl` handler: status at once; pool changes stream progress, then one final reply."""
        cmd = request.get("cmd")
        if cmd == "status":
            yield {"ok": True, "snapshot": self.snapshot().to_json()}
            return
        commands = {
            "graceful": Command.GRACEFUL,
            "restart": Command.RESTART,
            "graceful-stop": Command.GRACEFUL_STOP,
            "reopen-logs": Command.REOPEN_LOGS,
        }
        if cmd == "stop":
            command = Command.STOP_NOW if request.get("now") else Command.STOP
        elif cmd == "scale":
            n = str(request.get("n", ""))
            if not (n.lstrip("+-").isdigit()):
                yield {"ok": False, "error": f"scale: bad n {n!r}: expected +1, -1 or a count"}
                return
            command = Command.SCALE_DOWN if n.startswith("-") else Command.SCALE_UP
        elif isinstance(cmd, str) and cmd in commands:
            command = commands[cmd]
        else:
            yield {"ok": False, "error": f"unknown command {cmd!r}"}
            return
        job = Job(command, args=dict(request))
        self._inbox.put_nowait(job)
        while True:
            reply = await job.replies.get()
            yield reply
            if "ok" in reply:
                return
