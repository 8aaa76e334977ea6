"""Pure: why did a worker exit, and how soon may a crashed one be replaced (docs/architecture.md#master, README "Reliability").

`classify()` reads only what the master already knew about the slot when it was reaped (its
state and the reason it was told to go) plus the wait status, so the same exit is always
labelled the same way in logs and in `exited_total{cause}`.

The back-off is against boot loops only, counted per slot: a worker that dies before READY (or
within EARLY_EXIT of it) adds one to its slot's count; the first 3 in a row are replaced at once,
later ones wait 1, 2, 4 ... up to 30 s, so an app that cannot boot costs little CPU and log
volume. A worker that served (READY for EARLY_EXIT or more) is replaced at once whatever killed
it, and clears its slot's count: one request that crashes its worker (a segfaulting C extension,
an OOM-prone endpoint) must cost a replacement boot, never an outage. Nothing here forks, kills
or reads the clock.
"""

from __future__ import annotations

import enum
import os
import signal
from dataclasses import dataclass
from typing import Final, Protocol

from aioprefork.channel.messages import TERMINATED as TERMINATED  # (the Retire reason)
from aioprefork.master.states import SlotState

IMMEDIATE_RESPAWNS: Final = 3
MAX_BACKOFF: Final = 30.0  # seconds
EARLY_EXIT: Final = 1.0  # dying this soon after READY still counts as a boot loop

# `retiring` reasons the arbiter records on a slot before it stops it.
HUNG: Final = "hung"  # heartbeat_timeout passed: SIGABRT, then SIGKILL
BOOT_TIMEOUT: Final = "boot_timeout"  # not READY within boot_timeout: SIGKILL
# Exits whose replacement was started before the worker went (worker/reporter.py's Retire).
RECYCLE_REASONS: Final = frozenset({"max_requests", "max_memory", TERMINATED})


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
    """One slot's boot-loop deaths in a row and the earliest time its replacement may be forked."""

    consecutive: int = 0
    not_before: float = 0.0


def respawn_delay(consecutive: int) -> float:
    """Seconds to wait before replacing the `consecutive`-th boot-loop death in a row."""
    if consecutive <= IMMEDIATE_RESPAWNS:
        return 0.0
    return min(MAX_BACKOFF, float(2 ** (consecutive - IMMEDIATE_RESPAWNS - 1)))


def died_booting(healthy_for: float | None) -> bool:
    """Never READY, or READY for less than EARLY_EXIT: the app's boot is what fails."""
    return healthy_for is None or healthy_for < EARLY_EXIT


def record_crash(record: CrashRecord, now: float, healthy_for: float | None) -> CrashRecord:
    """The slot's record after its worker died unasked at `now`; `healthy_for` is how long the
    worker had been READY (None if it never was). A worker that served resets the count."""
    if not died_booting(healthy_for):
        return CrashRecord(0, now)
    consecutive = record.consecutive + 1
    return CrashRecord(consecutive, now + respawn_delay(consecutive))
