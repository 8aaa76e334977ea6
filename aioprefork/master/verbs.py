"""MasterControl: what master/commands.py and master/restart.py may do to the running master.

A Protocol, so those modules depend on this list and not on the Arbiter class (no import cycle,
and a reviewer sees their whole reach at a glance). They read the master's state and act through
its verbs; the arbiter owns every change of its own fields (state, pool bounds, restart task,
maintenance wake-up). Only master/pool.py forks, signals and reaps.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Coroutine, Mapping, Sequence
from typing import Any, Protocol

from aioprefork.config.model import Config, PoolPolicy
from aioprefork.listeners import Listener
from aioprefork.master.orders import Job
from aioprefork.master.pool import WorkerPool
from aioprefork.master.scoreboard import Scoreboard, Slot
from aioprefork.master.sdnotify import Notifier
from aioprefork.master.services import Services
from aioprefork.master.states import MasterState, MasterTrigger
from aioprefork.snapshot import Snapshot


class MasterControl(Protocol):
    # -- what they read
    @property
    def state(self) -> MasterState: ...
    @property
    def config(self) -> Config: ...
    @property
    def policy(self) -> PoolPolicy: ...
    @property
    def scoreboard(self) -> Scoreboard: ...
    @property
    def pool(self) -> WorkerPool: ...
    @property
    def listeners(self) -> Sequence[Listener]: ...
    @property
    def services(self) -> Services: ...
    @property
    def notifier(self) -> Notifier | None: ...
    @property
    def successor(self) -> int:
        """The pid of the master that took over (ctl upgrade); 0: none."""

    def snapshot(self) -> Snapshot: ...
    def control(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """The control socket's handler (re-opened after a failed upgrade)."""

    # -- the verbs
    def set_state(self, trigger: MasterTrigger) -> None:
        """Advance the master's state table (master/states.py)."""

    def scale(self, target: int) -> tuple[int, int]:
        """min_workers := target, clamped; (before, after)."""

    def wake_maintenance(self) -> None:
        """Run the pool decision this cycle."""

    def start_restart(self, steps: Coroutine[Any, Any, None]) -> None:
        """RUNNING -> RESTARTING, and run `steps` as the restart task."""

    def restarting(self) -> bool: ...
    def cancel_restart(self) -> None: ...
    def reload_config(self) -> Config:
        """The configuration re-read as at start; UserError when it does not load."""

    def next_generation(self) -> int: ...
    def commit(self, config: Config, gen: int) -> None:
        """Generation `gen`, running `config`, is now the current one (new pool bounds too)."""

    def record(self, kind: str, ok: bool, text: str) -> None:
        """Count a restart's result and publish it as the last one."""

    def halt(self, message: str) -> None: ...
    async def changed(self, timeout: float) -> None:
        """Wait until a worker becomes READY, fails or exits (or `timeout` passes)."""

    def ask_stacks(self, slot: Slot, job: Job) -> None:
        """`ctl dump`: ask `slot` for its live stacks; `job` finishes with them."""

    def set_live(self, key: str, raw: str) -> str:
        """`ctl set`: validate (ConfigError) and apply a live setting; what changed."""

    def hand_over(self, pid: int, oldbin: str) -> None:
        """ctl upgrade succeeded: master `pid` serves now (master/upgrade.py)."""
