"""Pure: why did a worker exit, and how soon may a crashed one be replaced (docs/architecture.md#master).

`classify()` reads only what the master already knew about the slot when it was reaped (its
state and the reason it was told to go) plus the wait status, so the same exit is always
labelled the same way in logs and in `exited_total{cause}`. The crash schedule follows the
docs/architecture.md#master: the first 3 consecutive crashes are respawned at once, later ones wait 1, 2, 4 ... up to
30 s (so a crash loop costs little CPU and log volume), and a worker that was healthy for 10 s
before it crashed starts the count afresh. Nothing here forks, kills or reads the clock.
"""

from __future__ import annotations

import enum
import os
import signal
from dataclasses import dataclass
from typing import Final, Protocol

from aioprefork.master.states import SlotState

IMMEDIATE_RESPAWNS: Final = 3
MAX_BACKOFF: Final = 30.0  # seconds
HEALTHY_RESET: Final = 10.0  # a worker READY this long before crashing resets the count

# `retiring` reasons the arbiter records on a slot before it stops it.
HUNG: Final = "hung"  # heartbeat_timeout passed: SIGABRT, then SIGKILL
BOOT_TIMEOUT: Final = "boot_timeout"  # not READY within boot_timeout: SIGKILL
RECYCLE_REASONS: Final = frozenset({"max_requests", "max_memory"})


class ExitCause(enum.Enum):
    """The `cause` label of exited_total; also what the arbiter does next."""

    BOOT_FAILURE = "boot_failure"  # died before READY: halt at start, back off when running
    CRASH = "crash"  # died after READY without being asked: respawn (with backoff)
    HUNG = "hung"  # killed by us after a heartbeat timeout: respawn (counts as a crash)
    RETIRED = "retired"  # recycled (max_requests / max_memory); replacement already started
    STOPPED = "stopped"  # told to stop (surplus, restart, shutdown): nothing to do


class ReapedSlot(Protocol):
    """What classify() needs from the slot record of the reaped pid."""

    @property
    def state(self) -> SlotState: ...

    @property
    def retiring(self) -> str: ...


def classify(wait_status: int, slot: ReapedSlot) -> ExitCause:
    """The cause of one exit. The wait status only matters for the log line (`describe`):
    a worker we did not ask to stop crashed even when it exited 0."""
    del wait_status  # the decision rests on what we asked, not on how it ended
    if slot.retiring == HUNG:
        return ExitCause.HUNG
    if slot.retiring == BOOT_TIMEOUT:
        return ExitCause.BOOT_FAILURE
    if slot.retiring in RECYCLE_REASONS:
        return ExitCause.RETIRED
    if slot.state is SlotState.STOPPING:
        return ExitCause.STOPPED
    if slot.state is SlotState.STARTING:
        return ExitCause.BOOT_FAILURE
    return ExitCause.CRASH


def describe(wait_status: int) -> str:
    """'exit code 3', 'killed by SIGKILL': for the one log line per unexpected exit."""
    code = os.waitstatus_to_exitcode(wait_status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"killed by {signal.Signals(-code).name}"
    except ValueError:
        return f"killed by signal {-code}"


@dataclass(frozen=True, slots=True)
class CrashRecord:
    """Consecutive crashes so far and the earliest time a replacement may be forked."""

    consecutive: int = 0
    not_before: float = 0.0


def respawn_delay(consecutive: int) -> float:
    """Seconds to wait before replacing the `consecutive`-th crashed worker in a row."""
    if consecutive <= IMMEDIATE_RESPAWNS:
        return 0.0
    return min(MAX_BACKOFF, float(2 ** (consecutive - IMMEDIATE_RESPAWNS - 1)))


def record_crash(record: CrashRecord, now: float, healthy_for: float | None) -> CrashRecord:
    """The record after one more crash at `now`; `healthy_for` is how long the worker had been
    READY (None if it never was)."""
    healthy = healthy_for is not None and healthy_for >= HEALTHY_RESET
    consecutive = 1 if healthy else record.consecutive + 1
    return CrashRecord(consecutive, now + respawn_delay(consecutive))
