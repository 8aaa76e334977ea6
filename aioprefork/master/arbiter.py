"""The master: one single-threaded asyncio loop supervising the worker pool (SPEC sections 3, 4).

The cycle reads as verbs: wait for an order or the next tick -> reap -> obey the orders -> once a
second snapshot() -> plan() -> execute() -> check progress. Orders land in one queue from two
places: signal handlers only enqueue (`loop.add_signal_handler(sig, queue.put_nowait,
SIGNALS[sig])`), and `ctl` requests enqueue a Job that streams progress back. Worker frames reach
`on_message` from the pool's channel readers; exits reach `on_exit` after reaping. Restarts run
as a task (master/restart.py), so reaping, heartbeats and `ctl status` go on meanwhile.

This module is the loop and the state it ties together; the parts live beside it:
master/orders.py (Job, the ctl request -> order translation), master/commands.py (what each
order does), master/services.py (control socket, metrics listener, app-metrics directory),
master/maintenance.py (plan), master/exits.py (exit causes, crash back-off), master/pool.py
(fork, signal, reap).

Invariants: the arbiter decides, master/pool.py acts (fork, signal, reap); a generation that
cannot boot never becomes a respawn loop (at start: HALTED, exit 3; on a graceful restart: rolled
back); a crashed worker is replaced at once, then with back-off (master/exits.py); the master
never runs application code and never touches a client connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Final

from aioprefork import __version__
from aioprefork.buildinfo import hot_path_build
from aioprefork.channel.messages import Fatal, Message, Ready, Retire
from aioprefork.config.load import Loaded
from aioprefork.config.model import Config, PoolPolicy
from aioprefork.errors import EXIT_BOOT, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, UserError
from aioprefork.master import commands, daemon, exits, fork, maintenance, orders
from aioprefork.master.listeners import Listener, bind_all, close_all
from aioprefork.master.orders import REAP, WAKE, Order
from aioprefork.master.orders import Job as Job  # re-exported: master/restart.py's type
from aioprefork.master.pool import WorkerPool
from aioprefork.master.scoreboard import Scoreboard, Slot
from aioprefork.master.services import Services
from aioprefork.master.signals import SIGNALS
from aioprefork.master.snapshot import Snapshot
from aioprefork.master.states import TERMINAL, MasterState, MasterTrigger, SlotState, advance

log = logging.getLogger("aioprefork.error")

TICK: Final = 1.0  # maintenance interval (Apache: once a second)


def run_master(loaded: Loaded, reload: Callable[[], Loaded]) -> int:
    """Serve `loaded.config` with a prefork pool until stopped; returns the exit code.

    `reload` re-reads the configuration the way the CLI first did (same flags, file, env); it is
    called on every restart. UserErrors in BOOTING (bind, pid file, control socket, privileges)
    propagate for the CLI to print as one line (exit 2).
    """
    config = loaded.config
    listeners = bind_all(config)
    startup: daemon.Startup | None = None
    try:
        if config.daemon:
            startup = daemon.daemonize()
        arbiter = Arbiter(loaded, reload, listeners, startup)
        with asyncio.Runner() as runner:  # a plain asyncio loop: the master never runs uvloop
            code = runner.run(arbiter.run())
        if startup is not None:  # (a no-op once it said "running")
            startup.failed(code, arbiter.halt_reason or f"the master exited (code {code})")
        return code
    except UserError as exc:
        if startup is not None:
            startup.failed(EXIT_USAGE, str(exc))
        raise
    finally:
        close_all([listener for listener in listeners if listener.sock.fileno() != -1])


class Arbiter:
    def __init__(
        self,
        loaded: Loaded,
        reload: Callable[[], Loaded],
        listeners: list[Listener],
        startup: daemon.Startup | None = None,
    ) -> None:
        self.loaded = loaded
        self._startup = startup  # told once the first generation is running (--daemon)
        self.halt_reason = ""
        self.config: Config = loaded.config
        self.policy = PoolPolicy.from_config(self.config)
        self._reload = reload
        self.listeners = listeners
        self.state = MasterState.BOOTING
        self.exit_code = EXIT_OK
        c = self.config
        self.scoreboard = Scoreboard(
            pid=os.getpid(),
            version=__version__,
            hot_path=hot_path_build(),
            server_limit=c.server_limit,
            worker_connections=c.worker_connections,
            min_workers=c.min_workers,
            max_workers=c.max_workers,
            min_spare_slots=c.min_spare_slots,
            max_spare_slots=c.max_spare_slots,
        )
        self.pool = WorkerPool(self.scoreboard, [lsn.sock for lsn in listeners], self)
        self._memo = maintenance.PoolMemo()
        self._crashes = exits.CrashRecord()
        self._last_gen = 0
        self._inbox: asyncio.Queue[Order] = asyncio.Queue()
        self._successor: dict[Slot, Slot] = {}  # replacement -> the recycled worker it replaces
        self.restart_task: asyncio.Task[None] | None = None  # a running master/restart.py
        self.tick_now = False  # run maintenance this cycle, not at the next tick
        self._change = asyncio.Event()
        self._last_fatal = ""
        self.services = Services()

    # -- the cycle -------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            await self._boot()
            next_tick = loop.time() + TICK
            while self.state not in TERMINAL:
                batch = await self._wait(next_tick - loop.time())
                self.pool.reap()
                for order in batch:
                    commands.obey(self, order)
                if self.tick_now or loop.time() >= next_tick:
                    self.tick_now = False
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
                self.set_state(MasterTrigger.HALT)
        finally:
            await self._shutdown()
        return self.exit_code

    async def _wait(self, delay: float) -> list[Order]:
        """Everything queued, after waiting up to `delay` seconds for the first order."""
        batch: list[Order] = []
        if self._inbox.empty() and delay > 0:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    batch.append(await self._inbox.get())
        while not self._inbox.empty():
            batch.append(self._inbox.get_nowait())
        return batch

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
        await self.services.open(config, owner, self.control, self.snapshot)
        fork.preload()
        daemon.drop_privileges(config.user, config.group)
        self.set_state(MasterTrigger.BOUND)
        self._last_gen = self.scoreboard.generation = 1
        for listener in self.listeners:
            log.info("listening on %s", listener.describe())
        count = max(config.workers, config.min_workers)
        log.info(
            "starting %d workers for %s (pid %d, hot path %s)",
            count,
            config.app,
            os.getpid(),
            self.scoreboard.hot_path,
        )
        for _ in range(count):
            self.pool.spawn(1, config, "start")

    async def _shutdown(self) -> None:
        """Leave nothing behind: kill and reap our children, close the master-only sockets."""
        self.cancel_restart()
        await self.pool.close()
        await self.services.close()
        daemon.remove_pid_file(self.config.pid_file)
        log.info("master exiting (%s, code %d)", self.state.value, self.exit_code)

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
        if self.state is MasterState.RUNNING:  # recycling whose replacement failed: try again
            for slot in list(self.scoreboard):
                if slot.state is SlotState.READY and slot.retiring in exits.RECYCLE_REASONS:
                    self._recycle(slot)

    def _execute(self, action: maintenance.Action, now: float) -> None:
        sb, pool = self.scoreboard, self.pool
        slot = sb.get(getattr(action, "slot", -1))
        if isinstance(action, maintenance.Spawn):
            for _ in range(action.count):
                pool.spawn(sb.generation, self.config, action.cause)
        elif isinstance(action, maintenance.Dismiss) and slot is not None:
            log.info("worker %d (pid %d): surplus, stopping it", slot.index, slot.pid)
            pool.stop_gracefully(slot, action.reason, now + self.config.graceful_timeout)
        elif isinstance(action, maintenance.Abort) and slot is not None:
            log.error(
                "worker %d (pid %d) silent for more than heartbeat_timeout (%gs): SIGABRT "
                "(its stacks follow), then SIGKILL",
                slot.index, slot.pid, self.policy.heartbeat_timeout,
            )  # fmt: skip
            sb.heartbeat_timeouts_total += 1
            pool.abort(slot, exits.HUNG)
        elif isinstance(action, maintenance.Kill) and slot is not None:
            log.error(
                "worker %d (pid %d) not ready after boot_timeout (%gs): killing it",
                slot.index, slot.pid, self.policy.boot_timeout,
            )  # fmt: skip
            pool.kill(slot, action.reason)
        elif isinstance(action, maintenance.MaxWorkersReached):
            sb.max_workers_reached_total += 1
            log.warning(
                "server reached max_workers (%d) and spare capacity is short: "
                "consider raising max_workers", action.active,
            )  # fmt: skip

    def _check_progress(self) -> None:
        """STARTING -> RUNNING once min_workers are READY, HALTED if none can boot;
        STOPPING -> EXITED once every worker is gone."""
        sb = self.scoreboard
        if self.state is MasterState.STARTING:
            current = [s for s in sb if s.gen == sb.generation]
            ready = sum(s.state is SlotState.READY for s in current)
            booting = any(s.state is SlotState.STARTING for s in current)
            if ready >= sb.min_workers or (ready and not booting):  # short: maintenance fills in
                self.set_state(MasterTrigger.MIN_READY)
                self._memo = maintenance.after_restart(self._memo)
                log.info("running: %d workers ready", ready)
                if self._startup is not None:
                    self._startup.running()
            elif not current:  # every worker of the first generation is gone, none was ready
                self.halt(f"no worker could boot: {self._last_fatal or 'workers exited'}")
        elif self.state is MasterState.STOPPING and not len(sb):
            self.set_state(MasterTrigger.ALL_EXITED)

    # -- what the workers tell us (PoolEvents) ---------------------------------------------------

    def on_message(self, slot: Slot, msg: Message) -> None:
        sb = self.scoreboard
        sb.apply(slot, msg)
        where = f"worker {slot.index} (pid {slot.pid}, gen {slot.gen})"
        if isinstance(msg, Ready):
            log.info("%s ready", where)
            old = self._successor.pop(slot, None)
            if old is not None and sb.holds(old) and old.state is SlotState.READY:
                deadline = time.time() + self.config.graceful_timeout
                self.pool.stop_gracefully(old, old.retiring or "recycle", deadline)
            self._notify()
        elif isinstance(msg, Retire):
            log.info("%s retiring (%s): starting its replacement", where, msg.reason)
            if self.state is MasterState.RUNNING and slot.gen == sb.generation:
                self._recycle(slot)
        elif isinstance(msg, Fatal):
            self._last_fatal = msg.message
            log.error("%s failed to boot: %s", where, msg.message)
            self._notify()

    def _recycle(self, slot: Slot) -> None:
        """Start `slot`'s replacement; `slot` drains once the replacement is READY."""
        if slot in self._successor.values() or time.time() < self._memo.not_before:
            return
        new = self.pool.spawn(self.scoreboard.generation, self.config, "recycle")
        if new is not None:
            self._successor[new] = slot

    def on_exit(self, slot: Slot, status: int) -> None:
        sb = self.scoreboard
        cause = exits.classify(status, slot)
        healthy_for = slot.healthy_for(sb.clock())
        self._successor.pop(slot, None)
        sb.remove(slot, cause.value)
        self.services.worker_exited(slot.pid)
        where, how = f"worker {slot.index} (pid {slot.pid}, gen {slot.gen})", exits.describe(status)
        if cause in (exits.ExitCause.STOPPED, exits.ExitCause.RETIRED):
            log.info("%s exited (%s, %s)", where, slot.retiring or cause.value, how)
        elif cause is exits.ExitCause.BOOT_FAILURE:
            log.error("%s failed to boot (%s)", where, how)
            if slot.retiring == exits.BOOT_TIMEOUT:
                how = f"not ready within boot_timeout ({self.policy.boot_timeout:g}s)"
            self._last_fatal = self._last_fatal or f"worker exited during boot ({how})"
        else:
            log.error(
                "%s %s (%s)", where, "was hung" if cause is exits.ExitCause.HUNG else "died", how
            )
        serving = self.state in (MasterState.STARTING, MasterState.RUNNING)
        crashed = serving and cause in (exits.ExitCause.CRASH, exits.ExitCause.HUNG)
        failed = self.state is MasterState.RUNNING and cause is exits.ExitCause.BOOT_FAILURE
        if slot.gen == sb.generation and (crashed or failed):
            self._crashed(replace=crashed, healthy_for=healthy_for)
        self._notify()

    def _crashed(self, *, replace: bool, healthy_for: float | None) -> None:
        """Owe a replacement (at once, or after the back-off of master/exits.py)."""
        self._crashes = exits.record_crash(self._crashes, time.time(), healthy_for)
        self._memo = dataclasses.replace(
            self._memo,
            not_before=self._crashes.not_before,
            owed=self._memo.owed + (1 if replace else 0),
        )
        delay = self._crashes.not_before - time.time()
        if delay > 0:
            log.warning(
                "%d crashes in a row: next replacement in %.0fs", self._crashes.consecutive, delay
            )
        self.tick_now = True

    def _notify(self) -> None:
        self._change.set()
        self._change = asyncio.Event()
        self._inbox.put_nowait(WAKE)

    # -- what master/commands.py and master/restart.py use -------------------------------------------------------------

    async def changed(self, timeout: float) -> None:
        """Wait until a worker becomes READY, fails or exits (or `timeout` passes)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, timeout)):
                await self._change.wait()

    def restarting(self) -> bool:
        return self.restart_task is not None and not self.restart_task.done()

    def cancel_restart(self) -> None:
        if self.restart_task is not None and not self.restart_task.done():
            self.restart_task.cancel()

    def set_state(self, trigger: MasterTrigger) -> None:
        self.state = advance(self.state, trigger)
        self.scoreboard.master_state = self.state.value

    def halt(self, message: str) -> None:
        log.error("%s", message)
        self.halt_reason = self.halt_reason or message
        self.exit_code = EXIT_BOOT
        self.set_state(MasterTrigger.HALT)
        for slot in list(self.scoreboard):
            self.pool.stop_now(slot, "halt")

    def next_generation(self) -> int:
        self._last_gen += 1
        return self._last_gen

    def reload_config(self) -> Config:
        config = self._reload().config
        if config.workers < 1:
            raise UserError("workers = 0 (in-process mode) cannot be applied by a restart")
        return config

    def commit(self, config: Config, gen: int) -> None:
        """Generation `gen`, running `config`, is now the current one."""
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

    def record(self, kind: str, ok: bool, text: str) -> None:
        result = "ok" if ok else "rolled_back" if kind == "graceful" else "failed"
        self.scoreboard.restarts_total[f"{kind}:{result}"] += 1
        self.scoreboard.last_restart = {
            "kind": kind, "result": result, "reason": text, "at": time.time(),
        }  # fmt: skip

    # -- the control socket ----------------------------------------------------------------------

    def control(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The `ctl` handler (master/orders.py): status at once; other orders join the queue."""
        return orders.answer(request, self._inbox.put_nowait, self.snapshot)
