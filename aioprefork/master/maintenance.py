"""Pure: the once-a-second pool decision (Apache `perform_idle_server_maintenance`, docs/architecture.md#spare-pool).

`plan(snapshot, policy, now, memo)` returns the actions for this tick and the next `PoolMemo`
(spawn rate, restart hold-off, max_workers episode, crash back-off), so the arbiter only
executes and the whole policy is testable with tables. Rules, first match wins:

  health (starting/running/restarting): a READY worker silent > heartbeat_timeout -> Abort;
         a worker still STARTING after boot_timeout -> Kill.
  sizing (running only):
  0. replacements owed for dead workers        -> Spawn each into its own slot once that slot's
                                                  boot-loop back-off is over (master/exits.py);
                                                  with no worker left at all, the soonest one
                                                  after at most FLOOR_RETRY: never an empty pool
  1. active + owed < min_workers               -> Spawn the shortfall
  2. idle > max_spare_slots, active > min_workers, nothing starting, no listen queue
                                               -> Dismiss ONE worker (fewest open), rate = 1
  3. idle < min_spare_slots or clients waiting in a listen queue, nothing owed
                                               -> Spawn `rate` (<= max_workers, <= server_limit),
                                                  then rate *= 2 up to 32 unless in hold-off;
                                                  at max_workers: MaxWorkersReached once per episode
  4. otherwise                                 -> rate = 1

Hysteresis: config guarantees max_spare >= min_spare + C + 1, so one spawn (+C idle) cannot push
idle above max_spare and one dismissal (-C at most) cannot push it below min_spare; and nothing
is dismissed while a worker is still starting. Steady load therefore settles with no flapping.

The listen queue (connections the kernel completed that no worker has accepted yet) is the early
signal: the idle count says capacity is free, but a queue says no slot is taking it (every
accepting worker is at worker_connections, or stalled). It spawns like a spare shortage and
blocks dismissals.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

from aioprefork.config.model import PoolPolicy
from aioprefork.master.exits import BOOT_TIMEOUT
from aioprefork.snapshot import READY, STARTING, STOPPING, SlotView, Snapshot

MAX_SPAWN_RATE: Final = 32  # Apache MAX_SPAWN_RATE
HOLD_OFF_TICKS: Final = 10  # Apache hold_off_on_exponential_spawning after a restart
STALE_AFTER: Final = 3.0  # seconds: 3 missed 1 s status frames -> the worker offers no capacity
FLOOR_RETRY: Final = 1.0  # seconds: with no worker left, a backed-off slot retries this soon


@dataclass(frozen=True, slots=True)
class Spawn:
    count: int
    cause: str  # "crash" | "min_workers" | "spare"
    slots: tuple[int, ...] = ()  # the slot indexes to fork into (a crash replacement's own)


@dataclass(frozen=True, slots=True)
class Owed:
    """A worker died unasked: its slot is owed a replacement, not before `not_before`."""

    slot: int
    died_at: float
    not_before: float


@dataclass(frozen=True, slots=True)
class Dismiss:
    """Graceful-stop one surplus worker."""

    slot: int
    reason: str = "surplus"


@dataclass(frozen=True, slots=True)
class Abort:
    """Heartbeat timeout: SIGABRT (the worker's faulthandler dumps its stacks), SIGKILL later."""

    slot: int


@dataclass(frozen=True, slots=True)
class Kill:
    slot: int
    reason: str = BOOT_TIMEOUT


@dataclass(frozen=True, slots=True)
class MaxWorkersReached:
    """Spare capacity is short and the pool is at max_workers: count once, warn once."""

    active: int


Action = Spawn | Dismiss | Abort | Kill | MaxWorkersReached


@dataclass(frozen=True, slots=True)
class PoolMemo:
    """What plan() carries from one tick to the next, as plain data."""

    spawn_rate: int = 1
    hold_off: int = 0  # ticks left during which the spawn rate may not double
    at_max: bool = False  # inside a max_workers episode (already counted and warned)
    owed: tuple[Owed, ...] = ()  # dead workers' slots awaiting their replacement

    @property
    def reserved(self) -> frozenset[int]:
        """Slots kept for their owed replacement: no other spawn takes them."""
        return frozenset(o.slot for o in self.owed)

    def backing_off(self, now: float) -> bool:
        return any(o.not_before > now for o in self.owed)


def after_restart(memo: PoolMemo) -> PoolMemo:
    """Memo for the first tick of a new generation: rate 1, hold-off, fresh episode."""
    return dataclasses.replace(memo, spawn_rate=1, hold_off=HOLD_OFF_TICKS, at_max=False)


def free_capacity(view: SlotView, worker_connections: int, stale_after: float = STALE_AFTER) -> int:
    """One slot's share of `idle` (docs/architecture.md#spare-pool)."""
    if not view.current or view.state == STOPPING:
        return 0
    if view.state == STARTING:
        return worker_connections
    if not view.accepting:
        return 0
    if view.heartbeat_age is not None and view.heartbeat_age > stale_after:
        return 0
    return max(0, worker_connections - view.open)


def idle_slots(
    views: Iterable[SlotView], worker_connections: int, stale_after: float = STALE_AFTER
) -> int:
    return sum(free_capacity(v, worker_connections, stale_after) for v in views)


def plan(
    snapshot: Snapshot, policy: PoolPolicy, now: float, memo: PoolMemo
) -> tuple[list[Action], PoolMemo]:
    """This tick's actions and the memo for the next tick."""
    if snapshot.master_state not in ("starting", "running", "restarting"):
        return [], memo
    actions: list[Action] = list(_health(snapshot, policy, now))
    if snapshot.master_state != "running":
        return actions, memo
    memo = dataclasses.replace(memo, hold_off=max(0, memo.hold_off - 1))
    sizing, memo = _size(snapshot, policy, now, memo)
    return actions + sizing, memo


def _health(snapshot: Snapshot, policy: PoolPolicy, now: float) -> Iterable[Action]:
    for view in snapshot.slots:
        if view.state == READY:
            if view.heartbeat_age is not None and view.heartbeat_age > policy.heartbeat_timeout:
                yield Abort(view.slot)
        elif view.state == STARTING and now - view.started_at > policy.boot_timeout:
            yield Kill(view.slot)


def _size(
    snapshot: Snapshot, policy: PoolPolicy, now: float, memo: PoolMemo
) -> tuple[list[Action], PoolMemo]:
    current = [v for v in snapshot.slots if v.current and v.state != STOPPING]
    active = len(current)
    room = max(0, policy.server_limit - len(snapshot.slots))
    floor = snapshot.min_workers
    idle = snapshot.idle_slots

    if memo.owed:
        due = [o for o in memo.owed if o.not_before <= now]
        waiting = [o for o in memo.owed if o.not_before > now]
        if not due and active == 0:  # back-off must never leave the pool empty
            soonest = min(waiting, key=lambda o: o.not_before)
            if now - soonest.died_at >= FLOOR_RETRY:
                due, waiting = [soonest], [o for o in waiting if o is not soonest]
        if due:
            count = min(len(due), room, max(0, policy.max_workers - active))
            chosen = tuple(o.slot for o in due[:count])
            memo = dataclasses.replace(memo, owed=tuple(waiting))  # the rest: forgiven
            return ([Spawn(count, "crash", chosen)] if count else []), memo

    if active + len(memo.owed) < floor:
        count = min(floor - active - len(memo.owed), room)
        return ([Spawn(count, "min_workers")] if count > 0 else []), memo

    queued = snapshot.queued > 0
    if idle > policy.max_spare_slots and active > floor and not queued:
        victim = _fewest_open(current)
        if victim is None or any(v.state == STARTING for v in current):
            return [], memo
        return [Dismiss(victim.slot)], dataclasses.replace(memo, spawn_rate=1, at_max=False)

    if idle < policy.min_spare_slots or queued:
        if active >= policy.max_workers:
            memo_at_max = dataclasses.replace(memo, spawn_rate=1, at_max=True)
            return ([] if memo.at_max else [MaxWorkersReached(active)]), memo_at_max
        count = min(memo.spawn_rate, policy.max_workers - active, room)
        if count <= 0 or memo.owed:  # short because workers die: replacements come first
            return [], dataclasses.replace(memo, spawn_rate=1)
        rate = memo.spawn_rate
        if memo.hold_off == 0:
            rate = min(MAX_SPAWN_RATE, rate * 2)
        return [Spawn(count, "spare")], dataclasses.replace(memo, spawn_rate=rate)

    return [], dataclasses.replace(memo, spawn_rate=1, at_max=False)


def _fewest_open(current: list[SlotView]) -> SlotView | None:
    """The dismissal candidate: a READY worker, one already retiring first, then fewest open
    connections, then the highest slot (low slots stay stable, like Apache's scoreboard)."""
    ready = [v for v in current if v.state == READY]
    if not ready:
        return None
    return min(ready, key=lambda v: (not v.retiring, v.open, -v.slot))
