"""master/maintenance.py: the pool decision as tables of snapshot -> actions, plus a simulated
steady load that must settle without spawn/dismiss flapping."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from aioprefork.config.model import PoolPolicy
from aioprefork.master.maintenance import (
    FLOOR_RETRY,
    HOLD_OFF_TICKS,
    MAX_SPAWN_RATE,
    Abort,
    Action,
    Dismiss,
    Kill,
    MaxWorkersReached,
    Owed,
    PoolMemo,
    Spawn,
    after_restart,
    free_capacity,
    idle_slots,
    plan,
)
from aioprefork.snapshot import READY, STARTING, STOPPING, ListenQueue, SlotView, Snapshot

NOW = 10_000.0
C = 10
POLICY = PoolPolicy(
    workers=2,
    min_workers=2,
    max_workers=6,
    server_limit=10,
    worker_connections=C,
    min_spare_slots=5,
    max_spare_slots=25,  # C/2 + 2C, >= min + C + 1
    heartbeat_timeout=5.0,
    boot_timeout=20.0,
)


def w(
    slot: int,
    open: int = 0,
    *,
    state: str = READY,
    current: bool = True,
    accepting: bool = True,
    age: float | None = 0.5,
    started: float | None = None,
    retiring: str = "",
) -> SlotView:
    if started is None:
        started = NOW if state == STARTING else NOW - 60
    return SlotView(
        slot=slot,
        pid=1000 + slot,
        gen=1 if current else 0,
        state=state,
        current=current,
        accepting=accepting,
        active=open,
        started_at=started,
        heartbeat_age=None if state == STARTING else age,
        retiring=retiring,
    )


def snap(*views: SlotView, state: str = "running", min_workers: int = 2) -> Snapshot:
    return Snapshot(
        now=NOW,
        pid=1,
        master_state=state,
        generation=1,
        started_at=NOW - 100,
        version="test",
        slots=tuple(views),
        server_limit=POLICY.server_limit,
        worker_connections=C,
        min_workers=min_workers,
        max_workers=POLICY.max_workers,
        min_spare_slots=POLICY.min_spare_slots,
        max_spare_slots=POLICY.max_spare_slots,
        idle_slots=idle_slots(views, C),
        spawn_rate=1,
    )


def run(s: Snapshot, memo: PoolMemo | None = None) -> tuple[list[Action], PoolMemo]:
    return plan(s, POLICY, NOW, memo or PoolMemo())


# --- idle accounting (docs/architecture.md#spare-pool: starting = C, not accepting = 0, stale = 0, stopping/old = 0) -----

IDLE_CASES: list[tuple[str, SlotView, int]] = [
    ("ready, 3 open", w(0, 3), C - 3),
    ("ready, full", w(0, C), 0),
    ("ready, over C (should not happen)", w(0, C + 2), 0),
    ("starting", w(0, state=STARTING), C),
    ("not accepting", w(0, 1, accepting=False), 0),
    ("stale heartbeat", w(0, 1, age=3.5), 0),
    ("fresh heartbeat", w(0, 1, age=2.9), C - 1),
    ("no frame yet", w(0, 1, age=None), C - 1),
    ("stopping", w(0, 1, state=STOPPING), 0),
    ("old generation", w(0, 1, current=False), 0),
]


@pytest.mark.parametrize(
    ("view", "free"), [c[1:] for c in IDLE_CASES], ids=[c[0] for c in IDLE_CASES]
)
def test_free_capacity(view: SlotView, free: int) -> None:
    assert free_capacity(view, C) == free


# --- the rules, one table row each --------------------------------------------------------------

Row = tuple[str, Snapshot, PoolMemo, list[Action], dict[str, Any]]
ROWS: list[Row] = [
    # rule 0: replace dead workers, each in its own slot, per-slot back-off
    (
        "a crash is replaced at once, in its own slot",
        snap(w(0), w(2)),
        PoolMemo(owed=(Owed(1, NOW, NOW),)),
        [Spawn(1, "crash", (1,))],
        {"owed": ()},
    ),
    (
        "a boot loop waits out its slot's back-off",
        snap(w(0), w(2)),
        PoolMemo(owed=(Owed(1, NOW - 1, NOW + 4),)),
        [],
        {},
    ),
    (
        "one slot backing off does not hold back another slot's replacement",
        snap(w(0)),
        PoolMemo(owed=(Owed(1, NOW - 1, NOW + 4), Owed(2, NOW, NOW))),
        [Spawn(1, "crash", (2,))],
        {"owed": (Owed(1, NOW - 1, NOW + 4),)},
    ),
    (
        "no worker left: the soonest backed-off slot retries after FLOOR_RETRY",
        snap(w(5, state=STOPPING, current=False)),
        PoolMemo(owed=(Owed(1, NOW - FLOOR_RETRY, NOW + 16), Owed(0, NOW - 3, NOW + 8))),
        [Spawn(1, "crash", (0,))],
        {"owed": (Owed(1, NOW - FLOOR_RETRY, NOW + 16),)},
    ),
    (
        "no worker left, but the last death was just now: wait FLOOR_RETRY, not the back-off",
        snap(min_workers=1),
        PoolMemo(owed=(Owed(0, NOW - 0.5, NOW + 8),)),
        [],
        {},
    ),
    (
        "a worker still starting is a worker: the back-off holds",
        snap(w(0, state=STARTING)),
        PoolMemo(owed=(Owed(1, NOW - 5, NOW + 8),)),
        [],
        {},
    ),
    (
        "crash replacement bounded by max_workers, the rest forgiven",
        snap(*[w(i) for i in range(5)]),
        PoolMemo(owed=(Owed(5, NOW, NOW), Owed(6, NOW, NOW), Owed(7, NOW, NOW))),
        [Spawn(1, "crash", (5,))],
        {"owed": ()},
    ),
    (
        "crash replacement bounded by server_limit",
        snap(w(0), *[w(i, state=STOPPING) for i in range(1, 10)]),
        PoolMemo(owed=(Owed(10, NOW, NOW), Owed(11, NOW, NOW))),
        [],
        {"owed": ()},
    ),
    # rule 1: below the floor
    ("empty pool spawns the floor", snap(), PoolMemo(), [Spawn(2, "min_workers")], {}),
    ("one short", snap(w(0)), PoolMemo(), [Spawn(1, "min_workers")], {}),
    (
        "floor moved by TTIN",
        snap(w(0), w(1), min_workers=4),
        PoolMemo(),
        [Spawn(2, "min_workers")],
        {},
    ),
    (
        "floor spawn bounded by server_limit",
        snap(*[w(i, state=STOPPING) for i in range(9)]),
        PoolMemo(),
        [Spawn(1, "min_workers")],  # short by 2, one slot left
        {},
    ),
    (
        "no room at all",
        snap(w(0), *[w(i, state=STOPPING) for i in range(1, 10)]),
        PoolMemo(),
        [],
        {},
    ),
    (
        "a slot owed its replacement counts toward the floor (no bypass of its back-off)",
        snap(w(0)),
        PoolMemo(owed=(Owed(1, NOW - 1, NOW + 2),)),
        [],
        {},
    ),
    (
        "the floor is filled beside a backed-off slot",
        snap(w(0), min_workers=3),
        PoolMemo(owed=(Owed(1, NOW - 1, NOW + 2),)),
        [Spawn(1, "min_workers")],
        {},
    ),
    # rule 4: inside the band
    ("idle inside the band", snap(w(0, 5), w(1, 5)), PoolMemo(spawn_rate=8), [], {"spawn_rate": 1}),
    ("idle exactly min_spare", snap(w(0, 10), w(1, 5)), PoolMemo(), [], {}),
    ("idle exactly max_spare", snap(w(0, 0), w(1, 0), w(2, 5)), PoolMemo(), [], {}),
    (
        "episode ends with relief",
        snap(w(0, 5), w(1, 5)),
        PoolMemo(at_max=True),
        [],
        {"at_max": False},
    ),
    # rule 3: short of spare capacity
    (
        "short: spawn rate 1, double",
        snap(w(0, 8), w(1, 8)),
        PoolMemo(),
        [Spawn(1, "spare")],
        {"spawn_rate": 2},
    ),
    (
        "short: spawn rate 4, double",
        snap(w(0, 8), w(1, 8)),
        PoolMemo(spawn_rate=4),
        [Spawn(4, "spare")],
        {"spawn_rate": 8},
    ),
    (
        "rate capped at 32",
        snap(w(0, 10), w(1, 10)),
        PoolMemo(spawn_rate=MAX_SPAWN_RATE),
        [Spawn(4, "spare")],
        {"spawn_rate": MAX_SPAWN_RATE},
    ),
    (
        "hold-off after restart: no doubling, count down",
        snap(w(0, 8), w(1, 8)),
        PoolMemo(spawn_rate=1, hold_off=5),
        [Spawn(1, "spare")],
        {"spawn_rate": 1, "hold_off": 4},
    ),
    (
        "last hold-off tick allows doubling again",
        snap(w(0, 8), w(1, 8)),
        PoolMemo(spawn_rate=1, hold_off=1),
        [Spawn(1, "spare")],
        {"spawn_rate": 2, "hold_off": 0},
    ),
    (
        "spawn bounded by max_workers",
        snap(*[w(i, C) for i in range(5)]),
        PoolMemo(spawn_rate=16),
        [Spawn(1, "spare")],
        {"spawn_rate": 32},
    ),
    (
        "spawn bounded by server_limit (stopping ones hold slots)",
        snap(w(0, 9), w(1, 9), *[w(i, state=STOPPING, current=False) for i in range(2, 9)]),
        PoolMemo(spawn_rate=4),
        [Spawn(1, "spare")],
        {"spawn_rate": 8},
    ),
    (
        "no room at all: rate resets",
        snap(w(0, 9), w(1, 9), *[w(i, state=STOPPING, current=False) for i in range(2, 10)]),
        PoolMemo(spawn_rate=4),
        [],
        {"spawn_rate": 1},
    ),
    (
        "short during crash back-off: wait",
        snap(w(0, 9), w(1, 9)),
        PoolMemo(spawn_rate=4, owed=(Owed(2, NOW - 1, NOW + 1),)),
        [],
        {"spawn_rate": 1},
    ),
    (
        "at max_workers: count and warn once",
        snap(*[w(i, C) for i in range(6)]),
        PoolMemo(spawn_rate=4),
        [MaxWorkersReached(6)],
        {"at_max": True, "spawn_rate": 1},
    ),
    (
        "at max_workers again, same episode: silent",
        snap(*[w(i, C) for i in range(6)]),
        PoolMemo(at_max=True),
        [],
        {"at_max": True},
    ),
    (
        "full workers that stopped accepting count no capacity",
        snap(w(0, 3, accepting=False), w(1, 8)),
        PoolMemo(),
        [Spawn(1, "spare")],
        {"spawn_rate": 2},
    ),
    (
        "a stale worker counts no capacity",
        snap(w(0, 0, age=4.0), w(1, 8)),
        PoolMemo(),
        [Spawn(1, "spare")],
        {"spawn_rate": 2},
    ),
    ("starting workers count as C", snap(w(0, 9), w(1, state=STARTING)), PoolMemo(), [], {}),
    # rule 2: too much spare capacity
    (
        "surplus: dismiss the one with fewest open",
        snap(w(0, 2), w(1, 1), w(2, 3), w(3, 4)),
        PoolMemo(spawn_rate=8),
        [Dismiss(1)],
        {"spawn_rate": 1},
    ),
    ("surplus tie: the highest slot goes", snap(w(0), w(1), w(2)), PoolMemo(), [Dismiss(2)], {}),
    (
        "surplus: a worker already retiring goes first",
        snap(w(0), w(1, 4, retiring="max_requests"), w(2)),
        PoolMemo(),
        [Dismiss(1)],
        {},
    ),
    ("surplus but at the floor", snap(w(0), w(1), w(2), min_workers=3), PoolMemo(), [], {}),
    (
        "surplus while a worker starts: wait (no kill while spawning)",
        snap(w(0), w(1), w(2), w(3, state=STARTING)),
        PoolMemo(),
        [],
        {},
    ),
    (
        "old generation and stopping ones are not counted as active",
        snap(w(0), w(1), w(2, current=False), w(3, state=STOPPING)),
        PoolMemo(),
        [],
        {},
    ),
    # health
    ("hung worker is aborted", snap(w(0, 5, age=5.5), w(1, 5)), PoolMemo(), [Abort(0)], {}),
    (
        "boot timeout kills a starting worker",
        snap(w(0, 5), w(1, 5), w(2, state=STARTING, started=NOW - 21)),
        PoolMemo(),
        [Kill(2)],
        {},
    ),
    (
        "hung old-generation worker is aborted too",
        snap(w(0, 5), w(1, 5), w(2, current=False, age=6)),
        PoolMemo(),
        [Abort(2)],
        {},
    ),
    (
        "stopping workers are left to their deadline",
        snap(w(0, 5), w(1, 5), w(2, state=STOPPING, age=60)),
        PoolMemo(),
        [],
        {},
    ),
    # master state gates
    ("restarting: health only", snap(w(0, age=9), state="restarting"), PoolMemo(), [Abort(0)], {}),
    ("starting: health only", snap(state="starting"), PoolMemo(), [], {}),
    ("stopping: nothing", snap(w(0, age=9), state="stopping"), PoolMemo(), [], {}),
    ("halted: nothing", snap(state="halted"), PoolMemo(), [], {}),
]


@pytest.mark.parametrize(
    ("s", "memo", "actions", "changes"), [r[1:] for r in ROWS], ids=[r[0] for r in ROWS]
)
def test_plan(s: Snapshot, memo: PoolMemo, actions: list[Action], changes: dict[str, Any]) -> None:
    got, new_memo = plan(s, POLICY, NOW, memo)
    assert got == actions
    expected = dataclasses.replace(memo, **changes)
    if s.master_state == "running" and "hold_off" not in changes:
        expected = dataclasses.replace(expected, hold_off=max(0, memo.hold_off - 1))
    assert new_memo == expected


def test_after_restart() -> None:
    owed = (Owed(1, 4.0, 5.0),)
    memo = after_restart(PoolMemo(spawn_rate=16, at_max=True, owed=owed))
    assert memo == PoolMemo(spawn_rate=1, hold_off=HOLD_OFF_TICKS, at_max=False, owed=owed)


def test_hold_off_counts_down_every_running_tick() -> None:
    memo = after_restart(PoolMemo())
    for _ in range(HOLD_OFF_TICKS):
        _, memo = run(snap(w(0, 5), w(1, 5)), memo)
    assert memo.hold_off == 0


# --- simulation: the pool under a fixed load ---------------------------------------------------


def simulate(
    load: int, start_workers: int, ticks: int = 40, boot_ticks: int = 0
) -> list[list[Action]]:
    """Each tick: spread `load` connections over accepting READY workers (at most C each), plan,
    execute. A spawned worker is STARTING for `boot_ticks` ticks, then READY; a dismissed one is
    gone by the next tick."""
    workers: dict[int, str] = {i: READY for i in range(start_workers)}
    booting: dict[int, int] = {}
    memo = PoolMemo()
    history: list[list[Action]] = []
    for _ in range(ticks):
        ready = sorted(i for i, st in workers.items() if st == READY)
        share = {i: 0 for i in ready}
        left = load
        while left and any(share[i] < C for i in ready):
            for i in ready:
                if left and share[i] < C:
                    share[i] += 1
                    left -= 1
        views = [
            w(i, share[i]) if st == READY else w(i, state=STARTING, started=NOW)
            for i, st in sorted(workers.items())
        ]
        actions, memo = plan(snap(*views), POLICY, NOW, memo)
        history.append(actions)
        for i in list(booting):
            booting[i] -= 1
            if booting[i] < 0:
                workers[i] = READY
                del booting[i]
        for action in actions:
            if isinstance(action, Spawn):
                for _ in range(action.count):
                    free = min(set(range(POLICY.server_limit)) - workers.keys())
                    workers[free] = STARTING if boot_ticks else READY
                    if boot_ticks:
                        booting[free] = boot_ticks - 1
            elif isinstance(action, Dismiss):
                del workers[action.slot]
    return history


@pytest.mark.parametrize("boot_ticks", [0, 2])
@pytest.mark.parametrize("start", [2, 4, 6])
@pytest.mark.parametrize("load", range(0, 6 * C + 8, 3))
def test_steady_load_settles_without_flapping(load: int, start: int, boot_ticks: int) -> None:
    history = simulate(load, start, boot_ticks=boot_ticks)
    kinds = [type(a) for tick in history for a in tick if isinstance(a, Spawn | Dismiss)]
    assert not (Spawn in kinds and Dismiss in kinds), f"flapping: {history}"
    assert all(not tick for tick in history[-10:]), f"never settled: {history}"
    assert sum(isinstance(a, MaxWorkersReached) for tick in history for a in tick) <= 1


def test_load_step_grows_exponentially_and_shrinks_one_per_tick() -> None:
    grow = simulate(load=6 * C, start_workers=2)
    spawned = [a.count for tick in grow for a in tick if isinstance(a, Spawn)]
    assert spawned == [1, 2, 1]  # rate doubles: 1, 2, then bounded by max_workers
    assert any(isinstance(a, MaxWorkersReached) for a in grow[3])
    assert sum(spawned) == POLICY.max_workers - 2
    shrink = simulate(load=0, start_workers=6)
    dismissals = [tick for tick in shrink if any(isinstance(a, Dismiss) for a in tick)]
    assert all(len(tick) == 1 for tick in dismissals)  # ONE per tick
    assert len(dismissals) == 4  # down to min_workers = 2 (idle 20 <= max_spare 25)


QUEUED = (ListenQueue(listener="127.0.0.1:8000", queued=4, limit=2048),)


def test_a_listen_queue_spawns_although_idle_slots_look_plentiful() -> None:
    """Two workers with free capacity on paper (15 idle >= min_spare 5) but clients waiting in
    the accept queue: no slot is taking them (stalled, or a gate shut) -> grow."""
    s = dataclasses.replace(snap(w(0, 2), w(1, 3)), listen_queues=QUEUED)
    assert s.idle_slots >= POLICY.min_spare_slots
    actions, memo = run(s)
    assert actions == [Spawn(1, "spare")]
    assert memo.spawn_rate == 2
    assert run(snap(w(0, 2), w(1, 3)))[0] == []  # the same pool with no queue: nothing


def test_a_listen_queue_blocks_dismissal() -> None:
    surplus = snap(w(0), w(1), w(2))  # idle 30 > max_spare 25, above the floor of 2
    assert run(surplus)[0] == [Dismiss(2)]
    actions, _ = run(dataclasses.replace(surplus, listen_queues=QUEUED))
    assert not any(isinstance(a, Dismiss) for a in actions), actions


def test_a_listen_queue_at_max_workers_is_reported_once() -> None:
    full = dataclasses.replace(
        snap(*(w(i, 1) for i in range(POLICY.max_workers))), listen_queues=QUEUED
    )
    actions, memo = run(full)
    assert actions == [MaxWorkersReached(POLICY.max_workers)]
    assert run(full, memo)[0] == []
