"""The master: one single-threaded asyncio loop supervising the worker pool (docs/architecture.md#master).

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
back); a worker that served is replaced at once, only boot loops back off, per slot, and never
to an empty pool (master/exits.py, master/maintenance.py); queued orders are obeyed before exits
are reaped; the master never runs application code and never touches a client connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Final

from aioprefork import __version__, fdlimit
from aioprefork.buildinfo import hot_path_build
from aioprefork.channel.messages import (
    Apply,
    Dump,
    Fatal,
    ListRequests,
    Ready,
    Requests,
    Retire,
    Stacks,
    ToMaster,
)
from aioprefork.config import live
from aioprefork.config.load import AUTO, DEFAULT, Loaded
from aioprefork.config.model import Config, PoolPolicy
from aioprefork.errors import EXIT_BOOT, EXIT_FAILURE, EXIT_OK, EXIT_USAGE, BootError, UserError
from aioprefork.hooks import MASTER_HOOKS, Hooks
from aioprefork.listeners import Listener, bind_all, close_all
from aioprefork.master import commands, daemon, exits, fork, maintenance, orders, sdnotify, upgrade
from aioprefork.master.orders import REAP, WAKE, Order
from aioprefork.master.orders import Job as Job  # re-exported: master/restart.py's type
from aioprefork.master.pool import WorkerPool
from aioprefork.master.scoreboard import Scoreboard, Slot
from aioprefork.master.services import Services
from aioprefork.master.signals import SIGNALS, Command
from aioprefork.master.states import TERMINAL, MasterState, MasterTrigger, SlotState, advance
from aioprefork.ratelimit import RateLimit
from aioprefork.snapshot import InFlight, ListenQueue, RequestView, Snapshot

if TYPE_CHECKING:
    from aioprefork.master.reloader import Reloader

log = logging.getLogger("aioprefork.server")

TICK: Final = 1.0  # maintenance interval (Apache: once a second)
CRASH_LOGS: Final = 10  # worker death lines at ERROR per CRASH_LOG_WINDOW; the rest are counted
CRASH_LOG_WINDOW: Final = 60.0
DUMP_TIMEOUT: Final = 5.0  # a worker's loop answers a Dump at once unless it is blocked
REQUESTS_TIMEOUT: Final = 1.0  # ctl status --requests waits this long for each worker


def run_master(loaded: Loaded, reload: Callable[[], Loaded]) -> int:
    """Serve `loaded.config` with a prefork pool until stopped; returns the exit code.

    `reload` re-reads the configuration the way the CLI first did (same flags, file, env); it is
    called on every restart. UserErrors in BOOTING (bind, pid file, control socket, privileges)
    propagate for the CLI to print as one line (exit 2).
    """
    config = loaded.config
    inheritance = upgrade.take_over(os.environ)  # exec'd by `ctl upgrade` of an older master
    hooks = Hooks.load(config, MASTER_HOOKS)
    hooks.run("on_starting", generation=0, strict=True)  # HookError: exit 3, nothing bound
    listeners = bind_all(config, inherited=inheritance.listeners if inheritance else None)
    startup: daemon.Startup | None = None
    try:
        if inheritance is not None:
            startup = daemon.Startup(inheritance.pipe)  # the old master waits for this word
            log.info("taking over from master pid %d (ctl upgrade)", inheritance.old_pid)
        elif config.daemon:
            startup = daemon.daemonize(config.error_log)
        arbiter = Arbiter(loaded, reload, listeners, startup, hooks)
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


def size_line(ready: int, booting: bool, announced: int) -> str:
    """The log's word on how many workers serve: nothing while some still boot or when nothing
    changed; "running: N workers ready" once the first generation is all up (not when the first
    of them is), then one line per change of size (ctl scale, maintenance, a restart)."""
    if booting or not ready or ready == announced:
        return ""
    if not announced:
        return f"running: {ready} workers ready"
    return f"workers: {ready} ready (was {announced})"


def _row(row: tuple[str, str, str, str, str, str, float]) -> dict[str, Any]:
    client, peer, protocol, method, target, phase, age = row
    return {
        "client": client, "peer": peer, "protocol": protocol, "method": method,
        "target": target, "phase": phase, "age": age,
    }  # fmt: skip


class Arbiter:
    def __init__(
        self,
        loaded: Loaded,
        reload: Callable[[], Loaded],
        listeners: list[Listener],
        startup: daemon.Startup | None = None,
        hooks: Hooks | None = None,
    ) -> None:
        self.loaded = loaded
        self._below = loaded  # the configuration under `ctl set` overrides (the last one loaded)
        self.live: dict[str, live.Override] = {}  # ctl set, kept across graceful restarts
        self.hooks = hooks or Hooks(loaded.config)
        self._startup = startup  # told once the first generation is running (--daemon)
        self.halt_reason = ""
        self.config: Config = loaded.config
        self._reload = reload
        self.listeners = listeners
        self.state = MasterState.BOOTING
        self.exit_code = EXIT_OK
        self.scoreboard = Scoreboard(
            pid=os.getpid(),
            version=__version__,
            policy=PoolPolicy.from_config(self.config),
            hot_path=hot_path_build(),
        )
        self.pool = WorkerPool(self.scoreboard, [lsn.sock for lsn in listeners], self)
        self._memo = maintenance.PoolMemo()
        self._crashes: dict[int, exits.CrashRecord] = {}  # boot-loop deaths per slot index
        self._crash_log = RateLimit(CRASH_LOGS, CRASH_LOG_WINDOW)
        self._backoff_log = RateLimit(CRASH_LOGS, CRASH_LOG_WINDOW)
        self._last_gen = 0
        self._announced = 0  # READY workers the log last reported (size_line)
        self._inbox: asyncio.Queue[Order] = asyncio.Queue()
        self._successor: dict[Slot, Slot] = {}  # replacement -> the recycled worker it replaces
        self.restart_task: asyncio.Task[None] | None = None  # a running master/restart.py
        self.tick_now = False  # run maintenance this cycle, not at the next tick
        self._change = asyncio.Event()
        self._last_fatal = ""
        self._boot_errors: dict[int, set[str]] = {}  # generation -> boot errors already logged
        self.services = Services()
        self.reloader: Reloader | None = None  # serve --reload's file watcher
        self.reload_pending = False  # files changed: a graceful restart is due
        self.services.in_flight = self.in_flight
        self.successor = 0  # pid of the master that took over (ctl upgrade); 0: none
        self._oldbin = ""  # our pid file, moved aside for the successor
        self._dumps: dict[int, Job] = {}  # Dump request number -> the `ctl dump` waiting for it
        self._dump_number = 0
        self._listings: dict[int, asyncio.Future[Requests]] = {}  # ListRequests in flight
        self.notifier = sdnotify.Notifier.from_environ()  # None unless systemd's Type=notify

    # -- the cycle -------------------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        try:
            await self._boot()
            next_tick = loop.time() + TICK
            while self.state not in TERMINAL:
                batch = await self._wait(next_tick - loop.time())
                # Orders first: a SIGTERM to the whole process group reaches us and the workers
                # together; their exits must be read as the stop it is, not as crashes.
                for order in batch:
                    commands.obey(self, order)
                self.pool.reap()
                if self.tick_now or loop.time() >= next_tick:
                    self.tick_now = False
                    self._maintain()
                    if self.notifier is not None:
                        self.notifier.tick(self.snapshot(), time.monotonic())
                    if loop.time() >= next_tick:
                        next_tick = max(next_tick + TICK, loop.time())
                self._check_progress()
        except UserError as exc:
            self.exit_code = exc.exit_code  # what the CLI exits with, so the log says the same
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
        soft, hard = fdlimit.raise_soft_limit(fdlimit.needed(config.worker_connections))
        if warning := fdlimit.shortfall_warning(config.worker_connections, soft, hard):
            log.warning("%s", warning)
        owner = daemon.resolve_owner(config.user, config.group)
        chosen = self.loaded.sources.get("metrics_bind", DEFAULT) not in (DEFAULT, AUTO)
        await self.services.open(
            config, owner, self.control, self.snapshot, metrics_bind_given=chosen
        )
        fork.preload()
        daemon.hand_over_log_files([config.error_log, config.access_log_file], owner)
        if config.preload:
            try:
                fork.preload_app(config)
            except BootError as exc:
                return self.halt(str(exc))
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
        if config.reload:
            self._start_reloader(config)

    # -- serve --reload --------------------------------------------------------------------------

    def _start_reloader(self, config: Config) -> None:
        from aioprefork.master.reloader import Reloader

        sys.dont_write_bytecode = True  # no .pyc of a file saved twice within a second goes stale
        self.reloader = Reloader(config, self._files_changed)

    def _files_changed(self, paths: list[str]) -> None:
        more = f" and {len(paths) - 1} more" if len(paths) > 1 else ""
        log.info("reload: %s%s changed", paths[0], more)
        self.reload_pending = True
        self._reload_if_due()

    def _reload_if_due(self) -> None:
        """A graceful restart for the changes seen, once no other restart is running (changes
        saved during one are picked up by the next)."""
        if self.reload_pending and self.state is MasterState.RUNNING and not self.restarting():
            self.reload_pending = False
            self._inbox.put_nowait(Command.GRACEFUL)

    async def _shutdown(self) -> None:
        """Leave nothing behind: kill and reap our children, close the master-only sockets."""
        self.cancel_restart()
        if self.reloader is not None:
            self.reloader.close()
        await self.pool.close()
        await self.services.close()
        daemon.remove_pid_file(self.config.pid_file)
        daemon.remove_pid_file(self._oldbin)
        log.info("master exiting (%s, code %d)", self.state.value, self.exit_code)
        self.hooks.run("on_exit", generation=self.scoreboard.generation)
        if self.notifier is not None:
            self.notifier.close()

    # -- maintenance -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        self.scoreboard.master_state = self.state.value
        self.scoreboard.spawn_rate = self._memo.spawn_rate
        self.scoreboard.listen_queues = self._listen_queues()
        return self.scoreboard.snapshot()

    def _listen_queues(self) -> tuple[ListenQueue, ...]:
        queues = []
        for listener in self.listeners:
            if listener.sock.fileno() == -1:
                continue  # closed: stopping
            depth = listener.queue()
            if depth is not None:
                queues.append(
                    ListenQueue(listener=listener.describe(), queued=depth[0], limit=depth[1])
                )
        return tuple(queues)

    def _maintain(self) -> None:
        now = time.time()
        actions, self._memo = maintenance.plan(self.snapshot(), self.policy, now, self._memo)
        self.pool.reserved = self._memo.reserved
        self.scoreboard.spawn_rate = self._memo.spawn_rate
        for action in actions:
            self._execute(action, now)
        self._reload_if_due()
        if self.state is MasterState.RUNNING:  # recycling whose replacement failed: try again
            for slot in list(self.scoreboard):
                if slot.state is SlotState.READY and slot.retiring in exits.RECYCLE_REASONS:
                    self._recycle(slot)

    def _execute(self, action: maintenance.Action, now: float) -> None:
        sb, pool = self.scoreboard, self.pool
        slot = sb.get(getattr(action, "slot", -1))
        if isinstance(action, maintenance.Spawn):
            for n in range(action.count):
                index = action.slots[n] if n < len(action.slots) else None
                pool.spawn(sb.generation, self.config, action.cause, index)
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
            if ready >= sb.policy.min_workers or (
                ready and not booting
            ):  # short: maintenance fills in
                self.set_state(MasterTrigger.MIN_READY)
                self._memo = maintenance.after_restart(self._memo)
                if self._startup is not None:
                    self._startup.running()
                self.hooks.run("when_ready", generation=sb.generation)
            elif not current:  # every worker of the first generation is gone, none was ready
                self.halt(
                    f"no worker could boot: {self._last_fatal or 'workers exited'}",
                    logged="no worker could boot (the error is above): stopping"
                    if self._last_fatal in self._boot_errors.get(sb.generation, ())
                    else "",
                )
        elif self.state is MasterState.STOPPING and not len(sb):
            self.set_state(MasterTrigger.ALL_EXITED)
        if self.state is MasterState.RUNNING:
            current = [s for s in sb if s.gen == sb.generation]
            ready = sum(s.state is SlotState.READY for s in current)
            booting = any(s.state is SlotState.STARTING for s in current)
            line = size_line(ready, booting, self._announced)
            if line:
                log.info("%s", line)
                self._announced = ready

    # -- what the workers tell us (PoolEvents) ---------------------------------------------------

    def on_message(self, slot: Slot, msg: ToMaster) -> None:
        sb = self.scoreboard
        sb.apply(slot, msg)
        where = f"worker {slot.index} (pid {slot.pid}, gen {slot.gen})"
        match msg:
            case Ready():
                log.info("%s ready", where)
                old = self._successor.pop(slot, None)
                if old is not None and sb.holds(old) and old.state is SlotState.READY:
                    deadline = time.time() + self.config.graceful_timeout
                    self.pool.stop_gracefully(old, old.retiring or "recycle", deadline)
                self._notify()
            case Retire():
                log.info("%s retiring (%s): starting its replacement", where, msg.reason)
                if self.state is MasterState.RUNNING and slot.gen == sb.generation:
                    self._recycle(slot)
            case Requests():
                listing = self._listings.pop(msg.request, None)
                if listing is not None and not listing.done():
                    listing.set_result(msg)
            case Stacks():
                job = self._dumps.pop(msg.request, None)
                if job is not None:
                    job.finish(True, f"{where}:\n{msg.text}")
            case Fatal():
                self._last_fatal = msg.message
                self._report_boot_error(slot.gen, where, msg)
                self._notify()
            case _:
                pass  # only recorded: Scoreboard.apply (above) matches every ToMaster

    def _report_boot_error(self, gen: int, where: str, msg: Fatal) -> None:
        """Each distinct boot error once per generation, its traceback with it; the workers and
        retries that fail the same way after it are only counted at debug level."""
        if gen not in self._boot_errors:  # keep the last few generations' (--reload makes many)
            self._boot_errors = {g: e for g, e in self._boot_errors.items() if g > gen - 4}
        seen = self._boot_errors.setdefault(gen, set())
        if msg.message in seen:
            log.debug("%s failed to boot: %s (as reported above)", where, msg.message)
            return
        seen.add(msg.message)
        detail = f"\n{msg.detail}" if msg.detail else ""
        log.error("%s failed to boot: %s%s", where, msg.message, detail)

    def hand_over(self, pid: int, oldbin: str) -> None:
        """ctl upgrade succeeded: master `pid` serves now. Nothing it owns is ours to remove
        (Unix sockets, control socket, pid file), and systemd follows it (MAINPID)."""
        self.successor, self._oldbin = pid, oldbin
        if self.notifier is not None:
            self.notifier.hand_over(pid, f"upgraded: master pid {pid} took over")
            self.notifier.close()
            self.notifier = None  # our STOPPING=1 must not stop the service

    async def in_flight(self, limit: int | None = None) -> InFlight:
        """Every worker's requests in flight, oldest first (ExtendedStatus), asked for now: the
        workers record nothing per request for it. A worker that does not answer within
        REQUESTS_TIMEOUT (its loop is busy) is named, not waited for."""
        config = self.config
        per_worker = config.status_requests_limit if limit is None else limit
        asked: dict[Slot, asyncio.Future[Requests]] = {}
        loop = asyncio.get_running_loop()
        for slot in list(self.scoreboard):
            if slot.state is SlotState.STARTING:
                continue
            self._dump_number += 1
            future: asyncio.Future[Requests] = loop.create_future()
            self._listings[self._dump_number] = future
            asked[slot] = future
            message = ListRequests(
                request=self._dump_number,
                limit=per_worker,
                target_length=config.status_target_length,
            )
            self.pool.send(slot, message)
        if asked:
            await asyncio.wait(asked.values(), timeout=REQUESTS_TIMEOUT)
        views: list[RequestView] = []
        total, unanswered = 0, []
        for slot, future in asked.items():
            if not future.done():
                future.cancel()
                unanswered.append(slot.index)
                continue
            reply = future.result()
            total += reply.total
            views += [RequestView(slot=slot.index, pid=slot.pid, **_row(row)) for row in reply.rows]
        for number in [n for n, f in self._listings.items() if f.done()]:
            del self._listings[number]
        views.sort(key=lambda v: v.age, reverse=True)
        return InFlight(requests=tuple(views), total=total, unanswered=tuple(unanswered))

    def ask_stacks(self, slot: Slot, job: Job) -> None:
        """`ctl dump`: ask `slot` for its live stacks; `job` finishes with them or a timeout."""
        self._dump_number += 1
        number = self._dump_number
        self._dumps[number] = job
        self.pool.send(slot, Dump(request=number))
        asyncio.get_running_loop().call_later(DUMP_TIMEOUT, self._dump_unanswered, number, slot)

    def _dump_unanswered(self, number: int, slot: Slot) -> None:
        job = self._dumps.pop(number, None)
        if job is not None:
            job.finish(
                False,
                f"worker {slot.index} (pid {slot.pid}) did not answer within {DUMP_TIMEOUT:g}s: "
                "its event loop is blocked; the log has the stack that holds it (stall_threshold)",
            )

    def _recycle(self, slot: Slot) -> None:
        """Start `slot`'s replacement; `slot` drains once the replacement is READY."""
        if slot in self._successor.values() or self._memo.backing_off(time.time()):
            return  # (a replacement that cannot boot waits out its slot's back-off)
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
            if slot.retiring == exits.BOOT_TIMEOUT:
                how = f"not ready within boot_timeout ({self.policy.boot_timeout:g}s)"
            if slot.fatal is None:  # no Fatal said why: this line is all the operator gets
                self._log_death("%s failed to boot (%s)", where, how)
            else:
                log.info("%s exited after its boot error (%s)", where, how)
            self._last_fatal = self._last_fatal or f"worker exited during boot ({how})"
        else:
            hung = cause is exits.ExitCause.HUNG
            self._log_death("%s %s (%s)", where, "was hung" if hung else "died", how)
        serving = self.state in (MasterState.STARTING, MasterState.RUNNING)
        crashed = serving and cause in (exits.ExitCause.CRASH, exits.ExitCause.HUNG)
        failed = self.state is MasterState.RUNNING and cause is exits.ExitCause.BOOT_FAILURE
        if slot.gen == sb.generation and (crashed or failed):
            self._crashed(slot.index, healthy_for=healthy_for)
        self._notify()

    def _log_death(self, text: str, *args: object) -> None:
        """One ERROR line per death, at most CRASH_LOGS a minute; then how many went unlogged."""
        allowed, missed = self._crash_log.take(time.monotonic())
        if missed:
            log.error(
                "%d more worker deaths were not logged in the last %gs", missed, CRASH_LOG_WINDOW
            )
        if allowed:
            log.error(text, *args)

    def _crashed(self, index: int, *, healthy_for: float | None) -> None:
        """Owe slot `index` a replacement: at once, or after its boot-loop back-off."""
        now = time.time()
        record = exits.record_crash(self._crashes.get(index, exits.CrashRecord()), now, healthy_for)
        self._crashes[index] = record
        owed = maintenance.Owed(index, now, record.not_before)
        others = tuple(o for o in self._memo.owed if o.slot != index)
        self._memo = dataclasses.replace(self._memo, owed=(*others, owed))
        self.pool.reserved = self._memo.reserved
        delay = record.not_before - now
        if delay > 0 and self._backoff_log.take(time.monotonic())[0]:
            log.warning(
                "worker slot %d: %d boot failures in a row: next try in %.0fs",
                index, record.consecutive, delay,
            )  # fmt: skip
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

    @property
    def policy(self) -> PoolPolicy:
        """The pool bounds now in force (owned by the scoreboard, which publishes them)."""
        return self.scoreboard.policy

    def scale(self, target: int) -> tuple[int, int]:
        """Set min_workers to `target`, clamped to 1..max_workers; (before, after).
        Maintenance runs this cycle, so the pool grows or shrinks at once."""
        policy = self.scoreboard.policy
        after = max(1, min(target, policy.max_workers))
        self.scoreboard.policy = dataclasses.replace(policy, min_workers=after)
        self.wake_maintenance()
        return policy.min_workers, after

    def wake_maintenance(self) -> None:
        """Run the maintenance decision this cycle, not at the next tick."""
        self.tick_now = True

    def start_restart(self, steps: Coroutine[Any, Any, None]) -> None:
        """RUNNING -> RESTARTING, with `steps` (master/restart.py) running as a task."""
        self.set_state(MasterTrigger.RESTART)
        self.restart_task = asyncio.ensure_future(steps)

    def restarting(self) -> bool:
        return self.restart_task is not None and not self.restart_task.done()

    def cancel_restart(self) -> None:
        if self.restart_task is not None and not self.restart_task.done():
            self.restart_task.cancel()

    def set_state(self, trigger: MasterTrigger) -> None:
        self.state = advance(self.state, trigger)
        self.scoreboard.master_state = self.state.value
        if self.notifier is not None:
            self._tell_systemd(trigger)

    def _tell_systemd(self, trigger: MasterTrigger) -> None:
        """READY=1 whenever the pool serves again, RELOADING=1 / STOPPING=1 as they begin."""
        assert self.notifier is not None
        if self.state is MasterState.RUNNING:
            self.notifier.ready(self.snapshot())
        elif self.state is MasterState.RESTARTING:
            self.notifier.reloading(f"reloading: generation {self.scoreboard.generation} serving")
        elif self.state is MasterState.STOPPING:
            self.notifier.stopping(f"stopping {len(self.scoreboard)} workers")
        elif self.state is MasterState.HALTED:
            self.notifier.send(f"STATUS=halted: {self.halt_reason or trigger.value}")

    def halt(self, message: str, logged: str = "") -> None:
        """Stop every worker now and exit EXIT_BOOT; `message` is the reason (for --daemon's
        parent too), `logged` the log line when the reason was logged already."""
        log.error("%s", logged or message)
        self.halt_reason = self.halt_reason or message
        self.exit_code = EXIT_BOOT
        self.set_state(MasterTrigger.HALT)
        for slot in list(self.scoreboard):
            self.pool.stop_now(slot, "halt")

    def next_generation(self) -> int:
        self._last_gen += 1
        return self._last_gen

    def reload_config(self) -> Config:
        """The configuration re-read as at start, with the `ctl set` overrides the layers below
        did not change since on top (those they changed are dropped: the file decides again)."""
        below = self._reload()
        if below.config.workers < 1:
            raise UserError("workers = 0 (in-process mode) cannot be applied by a restart")
        kept, dropped = live.still_wanted(below.config, self.live)
        for key, value in dropped:
            log.info("ctl set %s: dropped, the configuration now says %r", key, value)
        config, _ = live.apply(below.config, below.sources, kept)
        self._below, self.live = below, kept
        return config

    def set_live(self, key: str, raw: str) -> str:
        """`ctl set KEY VALUE`: validated as the config file would be (ConfigError), in force
        at once in the master and every worker, kept across graceful restarts."""
        below = self._below
        overrides = {**self.live, key: live.Override(raw, getattr(below.config, key))}
        config, _ = live.apply(below.config, below.sources, overrides)
        before, after = getattr(self.config, key), getattr(config, key)
        self.live, self.config = overrides, config
        if key in live.MASTER_SIDE:
            self.scoreboard.policy = PoolPolicy.from_config(config)
            self.wake_maintenance()
        else:
            if key == "log_level" and not config.log_config:
                logging.getLogger("aioprefork").setLevel(config.log_level.upper())
            for slot in list(self.scoreboard):
                self.pool.send(slot, Apply(settings=((key, raw),)))
        text = f"{key} = {after!r} (was {before!r}), from ctl until the configuration changes it"
        log.info("ctl set %s", text)
        return text

    def live_settings(self) -> dict[str, str]:
        """The `ctl set` overrides in force, as typed (check-config labels them "ctl")."""
        return {key: override.raw for key, override in self.live.items()}

    def commit(self, config: Config, gen: int) -> None:
        """Generation `gen`, running `config`, is now the current one."""
        self.config = config
        sb = self.scoreboard
        sb.generation = gen
        sb.policy = PoolPolicy.from_config(config)
        self.hooks = Hooks.load(config, MASTER_HOOKS)  # load_checked resolved them already
        self._memo = maintenance.after_restart(dataclasses.replace(self._memo, owed=()))
        self.pool.reserved = frozenset()
        self._crashes.clear()
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
        return orders.answer(
            request, self._inbox.put_nowait, self.snapshot, self.in_flight, self.live_settings
        )
