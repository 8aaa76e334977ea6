"""Generation changes: USR1 graceful restart (make-before-break, with rollback) and HUP restart.

Each runs as a task beside the master's cycle, which keeps reaping, ticking and answering
`ctl status` meanwhile; progress goes to the Job (a `ctl` client, or the log for a signal).

Both switch the master's logging first when its settings changed (log_level, log_config,
access_log, error_log, access_log_file): the new generation inherits it, and a bad log_config
fails the reload like any bad value.

graceful: re-read config -> fork generation g+1 (as many workers as are active now, within the
  new bounds) -> wait until all are READY (boot_timeout) -> commit: g+1 is current -> old
  workers drain (GracefulStop, graceful_timeout) -> done. A config that does not load, a new
  worker that sends Fatal or exits, or boot_timeout -> the new workers are stopped and the old
  generation, which never stopped accepting, keeps serving: "rolled back: <why>".
restart (HUP, Apache's): re-read config (a bad one changes nothing) -> stop every worker now ->
  fork generation g+1 into the still-open listeners -> READY. If it cannot boot the master halts
  (exit 3), as at start: the old workers are gone and there is nothing to roll back to.
"""

from __future__ import annotations

import contextlib
import time
from typing import TYPE_CHECKING

from aioprefork.config.model import Config
from aioprefork.errors import UserError
from aioprefork.hooks import Hooks
from aioprefork.logs import configure_logging, logging_settings, reopen_log_files
from aioprefork.master.pool import KILL_GRACE
from aioprefork.master.scoreboard import Slot
from aioprefork.master.states import MasterTrigger, SlotState
from aioprefork.master.verbs import MasterControl

if TYPE_CHECKING:
    from aioprefork.master.orders import Job


def _switch_logging(current: Config, new: Config) -> None:
    """Configure the master's logging for `new` (the next generation inherits it). UserError."""
    if logging_settings(new) != logging_settings(current):
        try:
            configure_logging(*logging_settings(new))
        except UserError:
            with contextlib.suppress(UserError):
                configure_logging(*logging_settings(current))  # as it was: that one loaded before
            raise


async def graceful(arbiter: MasterControl, job: Job) -> None:
    try:
        config = arbiter.reload_config()
        _switch_logging(arbiter.config, config)
    except UserError as exc:
        return _rolled_back(arbiter, job, f"config: {exc}")
    sb, pool = arbiter.scoreboard, arbiter.pool
    gen = arbiter.next_generation()
    Hooks.load(config, ("on_reload",)).run("on_reload", generation=gen)
    old = [s for s in sb if s.gen != gen and s.state is not SlotState.STOPPING]
    count = max(config.workers, config.min_workers, min(len(old), config.max_workers))
    job.progress(f"graceful restart: starting generation {gen} ({count} workers)")
    if config.preload:
        job.progress(
            "preload is on: the new workers run the code the master imported at start "
            "(config changes apply; `ctl upgrade` loads changed code)"
        )
    new = [s for s in (pool.spawn(gen, config, "graceful") for _ in range(count)) if s]
    if not new:
        return _rolled_back(arbiter, job, "no free slot for a new generation (server_limit)")
    why = await await_ready(arbiter, gen, new, config, job)
    if why:
        for slot in new:
            pool.stop_now(slot, "rollback")
        with contextlib.suppress(UserError):
            _switch_logging(config, arbiter.config)  # back to the serving generation's
        return _rolled_back(arbiter, job, why)
    arbiter.commit(config, gen)
    arbiter.set_state(MasterTrigger.RESTARTED)
    reopen_log_files()
    deadline = time.time() + config.graceful_timeout
    for slot in old:
        if sb.holds(slot):
            pool.stop_gracefully(slot, "graceful", deadline)
    job.progress(f"generation {gen} serving; {len(old)} old workers draining")
    await drained(arbiter, old, config.graceful_timeout + KILL_GRACE + 1.0)
    text = f"graceful restart done: generation {gen} ({len(new)} workers)"
    arbiter.record("graceful", True, text)
    job.finish(True, text)


def _rolled_back(arbiter: MasterControl, job: Job, why: str) -> None:
    text = f"rolled back: {why}"
    arbiter.record("graceful", False, text)
    arbiter.set_state(MasterTrigger.RESTARTED)
    job.finish(False, text)


async def hard_restart(arbiter: MasterControl, job: Job) -> None:
    try:
        config = arbiter.reload_config()
        _switch_logging(arbiter.config, config)
    except UserError as exc:
        text = f"config: {exc}"
        arbiter.record("restart", False, text)
        arbiter.set_state(MasterTrigger.RESTARTED)
        return job.finish(False, f"{text}; the workers keep serving")
    pool = arbiter.pool
    gen = arbiter.next_generation()
    Hooks.load(config, ("on_reload",)).run("on_reload", generation=gen)
    for slot in list(arbiter.scoreboard):
        pool.stop_now(slot, "restart")
    arbiter.commit(config, gen)
    count = max(config.workers, config.min_workers)
    job.progress(f"restart: old workers stopped, starting generation {gen} ({count} workers)")
    new = [s for s in (pool.spawn(gen, config, "restart") for _ in range(count)) if s]
    why = await await_ready(arbiter, gen, new, config, job)
    if why:
        arbiter.record("restart", False, why)
        job.finish(
            False,
            f"generation {gen} failed to boot: {why}; the server has stopped (a restart stops the "
            "old workers first; `ctl graceful` keeps them serving when the new ones fail)",
        )
        return arbiter.halt(f"restart: no worker of generation {gen} could boot: {why}")
    arbiter.set_state(MasterTrigger.RESTARTED)
    text = f"restart done: generation {gen} ({len(new)} workers)"
    arbiter.record("restart", True, text)
    job.finish(True, text)


async def await_ready(
    arbiter: MasterControl, gen: int, slots: list[Slot], config: Config, job: Job
) -> str:
    """'' once every slot is READY; else why not (the boot error, an exit, boot_timeout)."""
    sb = arbiter.scoreboard
    deadline = time.monotonic() + config.boot_timeout
    reported = -1
    while True:
        ready = sum(s.state is SlotState.READY and sb.holds(s) for s in slots)
        if ready != reported:
            job.progress(f"generation {gen}: {ready}/{len(slots)} workers ready")
            reported = ready
        fatal = next((s.fatal for s in slots if s.fatal is not None), None)
        if fatal is not None:
            return fatal.message
        if any(not sb.holds(s) for s in slots):
            return "a new worker exited during boot"
        if ready == len(slots):
            return ""
        if time.monotonic() >= deadline:
            return f"not ready within boot_timeout ({config.boot_timeout:g}s)"
        await arbiter.changed(deadline - time.monotonic())


async def drained(arbiter: MasterControl, slots: list[Slot], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while any(arbiter.scoreboard.holds(s) for s in slots) and time.monotonic() < deadline:
        await arbiter.changed(deadline - time.monotonic())
