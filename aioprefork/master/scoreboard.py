"""The scoreboard: the one owner of the live slot records and the server-wide counters.

Only this module changes a slot (`add`, `apply`, `stop`, `remove`); everyone else reads frozen
`Snapshot`s (`snapshot(now)`): plan(), the metrics collector, /server-status and `ctl status`.
Invariants: a slot index is held by at most one live pid; slot states move only through
states.advance_slot; `_total` counters never go backwards, because when a worker is removed its
last reported totals are folded into the retained accumulator (`Totals`) before it disappears.
Heartbeat ages use a monotonic clock (a wall-clock step must not make every worker look hung);
wall time is kept only for display (start times).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, assert_never

from aioprefork.channel.messages import (
    DURATION_BUCKETS,
    Fatal,
    Ready,
    Requests,
    Retire,
    Stacks,
    Status,
    ToMaster,
)
from aioprefork.config.model import PoolPolicy
from aioprefork.master import maintenance
from aioprefork.master.exits import BOOT_TIMEOUT, HUNG
from aioprefork.master.states import SlotState, SlotTrigger, advance_slot
from aioprefork.snapshot import ListenQueue, SlotView, Snapshot, Totals


@dataclass(slots=True, eq=False)
class Slot:
    """The live record of the worker process occupying one slot index."""

    index: int
    pid: int
    gen: int
    started_at: float  # unix time of fork (display)
    started_mono: float
    state: SlotState = SlotState.STARTING
    ready_at: float | None = None  # unix time (display)
    ready_mono: float | None = None
    heard_mono: float | None = None  # last frame of any kind
    status: Status | None = None  # latest Status frame
    retiring: str = ""  # why it is going: "max_requests", "surplus", "graceful", "hung", ...
    fatal: Fatal | None = None  # the worker's boot error, if it sent one
    served: int = 0  # responses it wrote on the shared board (read when it is reaped)

    def healthy_for(self, now_mono: float) -> float | None:
        """Seconds since READY, or None if it never was (exits.record_crash wants this)."""
        return None if self.ready_mono is None else now_mono - self.ready_mono


@dataclass(slots=True)
class _Accumulator:
    """What exited workers counted; never decreases."""

    accepted: int = 0
    requests: int = 0
    response_bytes: int = 0
    handed_back: int = 0
    h2_requests: int = 0
    by_method_class: collections.Counter[tuple[str, str]] = field(
        default_factory=collections.Counter
    )
    rejected: collections.Counter[str] = field(default_factory=collections.Counter)
    shed: collections.Counter[str] = field(default_factory=collections.Counter)
    duration_buckets: list[int] = field(default_factory=lambda: [0] * len(DURATION_BUCKETS))
    duration_sum: float = 0.0
    unreported: int = 0  # in `requests`, not in the histogram
    loop_stalls: int = 0
    request_timeouts: int = 0

    def add_unreported(self, count: int, label: tuple[str, str]) -> None:
        """Responses a SIGKILLed worker wrote on the board but never reported: counted under
        its most frequent label (their own labels died with it), outside the histogram."""
        self.requests += count
        self.unreported += count
        self.by_method_class[label] += count

    def add(self, status: Status) -> None:
        self.accepted += status.accepted_total
        self.handed_back += status.handed_back_total
        self.requests += status.requests_total
        self.h2_requests += status.h2_requests_total
        self.response_bytes += status.response_bytes_total
        for method, klass, count in status.requests:
            self.by_method_class[method, klass] += count
        for reason, count in status.rejected:
            self.rejected[reason] += count
        for reason, count in status.shed:
            self.shed[reason] += count
        for i, count in enumerate(status.duration_buckets[: len(self.duration_buckets)]):
            self.duration_buckets[i] += count
        self.duration_sum += status.duration_sum
        self.loop_stalls += status.loop_stalls
        self.request_timeouts += status.request_timeouts_total

    def copy(self) -> _Accumulator:
        return _Accumulator(
            self.accepted,
            self.requests,
            self.response_bytes,
            self.handed_back,
            self.h2_requests,
            collections.Counter(self.by_method_class),
            collections.Counter(self.rejected),
            collections.Counter(self.shed),
            list(self.duration_buckets),
            self.duration_sum,
            self.unreported,
            self.loop_stalls,
            self.request_timeouts,
        )


class Scoreboard:
    """Slot table + counters, and the one owner of the pool bounds (`policy`: `ctl scale` and a
    restart's commit replace it through the arbiter). The arbiter sets the published master
    fields (`master_state`, `generation`, `spawn_rate`, `last_restart`)."""

    def __init__(
        self,
        *,
        pid: int,
        version: str,
        policy: PoolPolicy,
        started_at: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        hot_path: str = "pure",
    ) -> None:
        self.pid, self.version = pid, version
        self.policy = policy
        self.hot_path = hot_path  # which build serves: aioprefork.buildinfo.hot_path_build()
        self.clock, self.wall = clock, wall
        self.started_at = wall() if started_at is None else started_at
        self.master_state = "booting"
        self.generation = 0
        self.spawn_rate = 1
        self.last_restart: dict[str, Any] = {}
        self.listen_queues: tuple[ListenQueue, ...] = ()  # set by the arbiter before snapshots
        self.spawned_total: collections.Counter[str] = collections.Counter()
        self.exited_total: collections.Counter[str] = collections.Counter()
        self.restarts_total: collections.Counter[str] = collections.Counter()
        self.heartbeat_timeouts_total = 0
        self.max_workers_reached_total = 0
        self._slots: dict[int, Slot] = {}
        self._by_pid: dict[int, Slot] = {}
        self._retired = _Accumulator()

    # -- reading -------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[Slot]:
        return iter(sorted(self._slots.values(), key=lambda s: s.index))

    def __len__(self) -> int:
        return len(self._slots)

    def get(self, index: int) -> Slot | None:
        return self._slots.get(index)

    def by_pid(self, pid: int) -> Slot | None:
        return self._by_pid.get(pid)

    def holds(self, slot: Slot) -> bool:
        """Is this record still the live occupant of its index (not removed, not replaced)?"""
        return self._slots.get(slot.index) is slot

    def free_index(self, reserved: frozenset[int] = frozenset()) -> int | None:
        """The lowest open slot index below server_limit that is not `reserved` (kept for a dead
        worker's own replacement), or None when the table is full."""
        for index in range(self.policy.server_limit):
            if index not in self._slots and index not in reserved:
                return index
        return None

    # -- changing ------------------------------------------------------------------------------

    def add(self, index: int, pid: int, gen: int, cause: str) -> Slot:
        if index in self._slots:
            raise ValueError(f"slot {index} is held by pid {self._slots[index].pid}")
        slot = Slot(index, pid, gen, started_at=self.wall(), started_mono=self.clock())
        self._slots[index] = slot
        self._by_pid[pid] = slot
        self.spawned_total[cause] += 1
        return slot

    def apply(self, slot: Slot, msg: ToMaster) -> None:
        """Fold one worker -> master message into its slot (ignored once the slot is gone)."""
        if not self.holds(slot):
            return
        now = self.clock()
        slot.heard_mono = now
        match msg:
            case Ready():
                slot.ready_at, slot.ready_mono = self.wall(), now
                if slot.state is SlotState.STARTING:
                    slot.state = advance_slot(slot.state, SlotTrigger.READY)
            case Status():
                slot.status = msg
            case Retire():
                slot.retiring = slot.retiring or msg.reason
            case Fatal():
                slot.fatal = msg
            case Stacks() | Requests():
                pass  # answers the arbiter takes (ctl dump, ctl status --requests)
            case _:
                assert_never(msg)

    def stop(self, slot: Slot, reason: str) -> None:
        """Mark a slot as told to stop. Hung / boot-timeout reasons override an earlier one
        (they decide the exit cause); otherwise the first reason given is kept."""
        if reason in (HUNG, BOOT_TIMEOUT) or not slot.retiring:
            slot.retiring = reason
        if slot.state is not SlotState.STOPPING:
            slot.state = advance_slot(slot.state, SlotTrigger.STOP)

    def remove(self, slot: Slot, cause: str) -> None:
        """The slot's process was reaped: keep what it counted, free the index."""
        if not self.holds(slot):
            return
        advance_slot(slot.state, SlotTrigger.EXIT)
        reported = 0
        label = ("GET", "2xx")
        if slot.status is not None:
            self._retired.add(slot.status)
            reported = slot.status.requests_total
            if slot.status.requests:
                method, klass, _ = max(slot.status.requests, key=lambda row: row[2])
                label = (method, klass)
        if slot.served > reported:
            self._retired.add_unreported(slot.served - reported, label)
        del self._slots[slot.index]
        self._by_pid.pop(slot.pid, None)
        self.exited_total[cause] += 1

    # -- snapshots -----------------------------------------------------------------------------

    def view(self, slot: Slot, now_mono: float) -> SlotView:
        status = slot.status
        heard = None if slot.heard_mono is None else max(0.0, now_mono - slot.heard_mono)
        common: dict[str, Any] = {
            "slot": slot.index,
            "pid": slot.pid,
            "gen": slot.gen,
            "state": slot.state.value,
            "current": slot.gen == self.generation,
            "started_at": slot.started_at,
            "ready_at": slot.ready_at,
            "heartbeat_age": heard,
            "retiring": slot.retiring,
        }
        if status is None:
            return SlotView(**common)
        return SlotView(
            **common,
            accepting=status.accepting,
            reading=status.reading,
            active=status.active,
            keepalive=status.keepalive,
            closing=status.closing,
            upgraded=status.upgraded,
            streams=status.streams,
            accepted_total=status.accepted_total,
            requests_total=status.requests_total,
            response_bytes_total=status.response_bytes_total,
            loop_lag=status.loop_lag,
            rss=status.rss,
            loop_stalls=status.loop_stalls,
            loop_stall_longest=status.loop_stall_longest,
        )

    def totals(self) -> Totals:
        acc = self._retired.copy()
        for slot in self._slots.values():
            if slot.status is not None:
                acc.add(slot.status)
        return Totals(
            accepted=acc.accepted,
            handed_back=acc.handed_back,
            requests=acc.requests,
            h2_requests=acc.h2_requests,
            response_bytes=acc.response_bytes,
            by_method_class=dict(acc.by_method_class),
            rejected=dict(acc.rejected),
            shed=dict(acc.shed),
            duration_buckets=tuple(acc.duration_buckets),
            duration_sum=acc.duration_sum,
            duration_count=acc.requests - acc.unreported,
            loop_stalls=acc.loop_stalls,
            request_timeouts=acc.request_timeouts,
        )

    def snapshot(self, now: float | None = None) -> Snapshot:
        """A frozen picture of everything; `now` is the unix time it is stamped with."""
        now = self.wall() if now is None else now
        now_mono = self.clock()
        views = tuple(self.view(s, now_mono) for s in self)
        policy = self.policy
        return Snapshot(
            now=now,
            pid=self.pid,
            master_state=self.master_state,
            generation=self.generation,
            started_at=self.started_at,
            version=self.version,
            slots=views,
            server_limit=policy.server_limit,
            worker_connections=policy.worker_connections,
            min_workers=policy.min_workers,
            max_workers=policy.max_workers,
            min_spare_slots=policy.min_spare_slots,
            max_spare_slots=policy.max_spare_slots,
            idle_slots=maintenance.idle_slots(views, policy.worker_connections),
            spawn_rate=self.spawn_rate,
            max_workers_reached_total=self.max_workers_reached_total,
            spawned_total=dict(self.spawned_total),
            exited_total=dict(self.exited_total),
            restarts_total=dict(self.restarts_total),
            heartbeat_timeouts_total=self.heartbeat_timeouts_total,
            totals=self.totals(),
            last_restart=dict(self.last_restart),
            listen_queues=self.listen_queues,
            hot_path=self.hot_path,
        )
