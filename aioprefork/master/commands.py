"""What each administrator Command does to a running master (docs/architecture.md#signals-and-ctl).

`obey(arbiter, order)` carries out one order from the arbiter's queue, between reaping and
maintenance in the master's cycle: stop (graceful, immediate, or with no timeout), restart and
graceful (started as a task running master/restart.py), scale (min_workers), reopen-logs.

Invariants: every Job gets exactly one final reply, refusals included; a second stop while
STOPPING stops at once; a restart never overlaps another, and a stop cancels one in progress;
the listeners close the moment the master starts stopping, so no new connection is accepted.
This module acts only through the arbiter's verbs and its pool (master/verbs.py MasterControl):
it never forks, signals or reaps, and never assigns the arbiter's fields.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Coroutine
from typing import Any

from aioprefork.channel.messages import ReopenLogs
from aioprefork.errors import ConfigError
from aioprefork.listeners import close_all
from aioprefork.logs import reopen_log_files
from aioprefork.master import restart, upgrade
from aioprefork.master.orders import Job, Order
from aioprefork.master.signals import Command
from aioprefork.master.states import MasterState, MasterTrigger, SlotState
from aioprefork.master.verbs import MasterControl

log = logging.getLogger("aioprefork.server")


def obey(arbiter: MasterControl, order: Order) -> None:
    if isinstance(order, str):
        return  # REAP, WAKE: reaping and progress checks run every cycle anyway
    if isinstance(order, Command):
        log.info("received %s", order.value)
        order = Job(order, done=True)  # a signal: nobody reads the replies
    handlers: dict[Command, Callable[[MasterControl, Job], None]] = {
        Command.STOP: _order_stop,
        Command.STOP_NOW: lambda arbiter, job: stop(arbiter, job, immediate=True),
        Command.GRACEFUL_STOP: lambda arbiter, job: stop(arbiter, job, timeout=math.inf),
        Command.RESTART: _order_restart,
        Command.GRACEFUL: _order_restart,
        Command.SCALE_UP: _order_scale,
        Command.SCALE_DOWN: _order_scale,
        Command.REOPEN_LOGS: _order_reopen_logs,
        Command.DUMP: _order_dump,
        Command.UPGRADE: _order_restart,
        Command.SET: _order_set,
    }
    handlers[order.command](arbiter, order)


def _order_stop(arbiter: MasterControl, job: Job) -> None:
    if arbiter.state is MasterState.STOPPING:  # a second TERM/INT: stop now
        return stop(arbiter, job, immediate=True)
    stop(arbiter, job, immediate=bool(job.args.get("now")), timeout=job.args.get("timeout"))


def stop(
    arbiter: MasterControl, job: Job, *, immediate: bool = False, timeout: float | None = None
) -> None:
    """STOPPING: close the listeners, then stop every worker now or by a deadline."""
    if arbiter.state is MasterState.STOPPING and not immediate:
        return job.finish(True, "already stopping")
    arbiter.cancel_restart()
    if arbiter.state is not MasterState.STOPPING:
        arbiter.set_state(MasterTrigger.STOP)
        open_ = [lsn for lsn in arbiter.listeners if lsn.sock.fileno() != -1]
        close_all(open_, unlink=not arbiter.successor)  # after ctl upgrade the paths are its
    grace = arbiter.config.graceful_timeout if timeout is None else timeout
    deadline = time.time() + grace
    sb, pool = arbiter.scoreboard, arbiter.pool
    for slot in list(sb):
        if immediate:
            pool.stop_now(slot, "shutdown")
        else:
            pool.stop_gracefully(slot, "shutdown", deadline)
    how = "now" if immediate else "with no timeout" if math.isinf(grace) else f"within {grace:g}s"
    job.finish(True, f"stopping {len(sb)} workers {how}")


def _order_restart(arbiter: MasterControl, job: Job) -> None:
    kind = job.command.value  # graceful | restart | upgrade
    if arbiter.restarting():
        return job.finish(False, f"cannot {kind}: a restart is already in progress")
    if arbiter.state is not MasterState.RUNNING:
        return job.finish(False, f"cannot {kind} while {arbiter.state.value}")
    steps = {
        Command.GRACEFUL: restart.graceful,
        Command.RESTART: restart.hard_restart,
        Command.UPGRADE: upgrade.upgrade,
    }[job.command]
    arbiter.start_restart(_restarting(steps(arbiter, job), arbiter, job, kind))


async def _restarting(
    steps: Coroutine[Any, Any, None], arbiter: MasterControl, job: Job, kind: str
) -> None:
    try:
        await steps
    except asyncio.CancelledError:
        job.finish(False, "interrupted: the server is stopping")
        raise
    except Exception as exc:
        # A bug, not a bad config (those are rolled back inside the steps): say so, and never
        # leave the master RESTARTING, where every later reload would be refused.
        log.exception("%s failed unexpectedly", kind)
        text = f"{kind} failed: {type(exc).__name__}: {exc}"
        arbiter.record(kind, False, text)
        if arbiter.state is MasterState.RESTARTING:
            arbiter.set_state(MasterTrigger.RESTARTED)
        job.finish(False, f"{text} (see the master's log)")


def _order_scale(arbiter: MasterControl, job: Job) -> None:
    current = arbiter.policy.min_workers
    n = str(job.args.get("n", "+1" if job.command is Command.SCALE_UP else "-1"))
    target = current + int(n) if n[0] in "+-" else int(n)
    before, after = arbiter.scale(target)
    ceiling = arbiter.policy.max_workers
    clamped = ""
    if target > ceiling:
        clamped = f" (clamped to max_workers={ceiling})"
    elif target < 1:
        clamped = " (clamped to 1: a pool has at least one worker)"
    log.info("min_workers %d -> %d%s", before, after, clamped)
    job.finish(True, f"min_workers {after} (was {before}){clamped}")


def _order_set(arbiter: MasterControl, job: Job) -> None:
    try:
        text = arbiter.set_live(str(job.args["key"]), str(job.args["value"]))
    except ConfigError as exc:
        return job.finish(False, str(exc))
    job.finish(True, text)


def _order_dump(arbiter: MasterControl, job: Job) -> None:
    index = job.args.get("slot")
    slot = next((s for s in arbiter.scoreboard if s.index == index), None)
    if slot is None or slot.state is not SlotState.READY:
        serving = sorted(s.index for s in arbiter.scoreboard if s.state is SlotState.READY)
        return job.finish(False, f"no serving worker in slot {index} (serving: {serving})")
    arbiter.ask_stacks(slot, job)


def _order_reopen_logs(arbiter: MasterControl, job: Job) -> None:
    reopen_log_files()
    for slot in list(arbiter.scoreboard):
        arbiter.pool.send(slot, ReopenLogs())
    job.finish(True, f"logs reopened by the master and {len(arbiter.scoreboard)} workers")
