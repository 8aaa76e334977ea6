"""master/scoreboard.py: slot lifecycle, snapshots, counters that never go backwards."""

from __future__ import annotations

import itertools
import json

import pytest

from aioprefork.channel.messages import Fatal, Ready, Retire, Status
from aioprefork.config.model import PoolPolicy
from aioprefork.master.exits import HUNG
from aioprefork.master.scoreboard import Scoreboard
from aioprefork.master.states import IllegalTransition, SlotState


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def board(clock: Clock | None = None) -> Scoreboard:
    return Scoreboard(
        pid=1,
        version="test",
        policy=PoolPolicy(
            workers=1,
            min_workers=1,
            max_workers=2,
            server_limit=4,
            worker_connections=10,
            min_spare_slots=5,
            max_spare_slots=21,
        ),
        clock=clock or Clock(),
        wall=lambda: 1_700_000_000.0,
    )


def status(**kw: object) -> Status:
    return Status(accepting=True, **kw)  # type: ignore[arg-type]


def test_lifecycle_and_views() -> None:
    clock = Clock()
    sb = board(clock)
    sb.generation = 1
    assert sb.free_index() == 0
    slot = sb.add(0, pid=501, gen=1, cause="start")
    assert sb.free_index() == 1
    assert sb.by_pid(501) is slot
    view = sb.snapshot().slots[0]
    assert (view.state, view.heartbeat_age, view.current) == ("starting", None, True)
    assert sb.snapshot().idle_slots == 10  # starting counts as C

    clock.t += 1
    sb.apply(slot, Ready(pid=501, slot=0, gen=1))
    assert slot.state is SlotState.READY
    clock.t += 0.5
    sb.apply(slot, status(active=3, keepalive=1, requests_total=7, rss=123))
    clock.t += 0.25
    snap = sb.snapshot()
    view = snap.slots[0]
    assert (view.state, view.open, view.requests_total, view.rss) == ("ready", 4, 7, 123)
    assert view.heartbeat_age == pytest.approx(0.25)
    assert snap.idle_slots == 6
    assert snap.scoreboard_line() == "A..."
    assert snap.spawned_total == {"start": 1}

    sb.apply(slot, Retire(reason="max_requests"))
    assert slot.retiring == "max_requests"
    sb.stop(slot, "graceful")
    assert (slot.state, slot.retiring) == (SlotState.STOPPING, "max_requests")  # first reason kept
    sb.stop(slot, HUNG)
    assert slot.retiring == HUNG  # hung overrides: it decides the exit cause
    sb.remove(slot, "hung")
    assert len(sb) == 0 and sb.by_pid(501) is None and sb.free_index() == 0
    assert sb.snapshot().exited_total == {"hung": 1}
    sb.apply(slot, status(requests_total=1000))  # late frame of a removed slot: ignored
    assert sb.snapshot().totals.requests == 7


def test_old_generation_is_not_current() -> None:
    sb = board()
    sb.generation = 2
    old = sb.add(1, pid=7, gen=1, cause="start")
    sb.apply(old, Ready(pid=7, slot=1, gen=1))
    sb.stop(old, "graceful")
    snap = sb.snapshot()
    assert not snap.slots[0].current
    assert snap.scoreboard_line() == ".O.."
    assert snap.idle_slots == 0


def test_slot_index_is_exclusive() -> None:
    sb = board()
    sb.add(0, pid=1, gen=0, cause="start")
    with pytest.raises(ValueError, match="held"):
        sb.add(0, pid=2, gen=0, cause="start")


def test_ready_while_stopping_keeps_stopping() -> None:
    sb = board()
    slot = sb.add(0, pid=1, gen=0, cause="start")
    sb.stop(slot, "shutdown")
    sb.apply(slot, Ready(pid=1, slot=0, gen=0))
    assert slot.state is SlotState.STOPPING
    assert slot.ready_at is not None


def test_fatal_is_kept_for_the_log() -> None:
    sb = board()
    slot = sb.add(0, pid=1, gen=0, cause="start")
    sb.apply(slot, Fatal(code=3, message="boom"))
    assert slot.fatal == Fatal(code=3, message="boom")


def test_totals_never_go_backwards_across_exits() -> None:
    sb = board()
    seen = []
    for n, pid in enumerate([10, 11, 12]):
        slot = sb.add(0, pid=pid, gen=0, cause="start")
        sb.apply(slot, Ready(pid=pid, slot=0, gen=0))
        for k in range(1, 4):
            sb.apply(
                slot,
                status(
                    accepted_total=k,
                    handed_back_total=k,
                    requests_total=2 * k,
                    response_bytes_total=100 * k,
                    requests=(("GET", "2xx", 2 * k),),
                    rejected=(("framing", k),),
                    shed=(("slow_head", k),),
                    duration_buckets=(k,) * 14,
                    duration_sum=0.5 * k,
                ),
            )
            seen.append(sb.snapshot().totals)
        sb.stop(slot, "surplus")
        sb.remove(slot, "stopped")
        seen.append(sb.snapshot().totals)
        assert sb.snapshot().totals.requests == 6 * (n + 1)
    for before, after in itertools.pairwise(seen):
        assert after.requests >= before.requests
        assert after.accepted >= before.accepted
        assert after.handed_back >= before.handed_back
        assert after.response_bytes >= before.response_bytes
        assert after.duration_sum >= before.duration_sum
        assert all(
            a >= b for a, b in zip(after.duration_buckets, before.duration_buckets, strict=True)
        )
    final = seen[-1]
    assert final.by_method_class == {("GET", "2xx"): 18}
    assert final.handed_back == final.accepted == 9
    assert final.rejected == {"framing": 9}
    assert final.shed == {"slow_head": 9}
    assert final.duration_buckets == (9,) * 14
    assert final.duration_count == 18


def test_a_sigkilled_worker_counts_what_it_wrote_on_the_board() -> None:
    """Its last Status said 5 (3 POST 2xx the most frequent); the board says 12: 7 more, under
    its most frequent label, outside the duration histogram."""
    sb = board()
    slot = sb.add(0, pid=10, gen=0, cause="start")
    sb.apply(slot, Ready(pid=10, slot=0, gen=0))
    rows = (("GET", "2xx", 2), ("POST", "2xx", 3))
    sb.apply(slot, status(requests_total=5, requests=rows, duration_buckets=(5,) * 14))
    slot.served = 12
    sb.remove(slot, "crash")
    totals = sb.snapshot().totals
    assert totals.requests == 12
    assert totals.by_method_class == {("GET", "2xx"): 2, ("POST", "2xx"): 10}
    assert totals.duration_count == 5
    killed_at_once = sb.add(1, pid=11, gen=0, cause="crash")  # never sent a Status at all
    killed_at_once.served = 4
    sb.remove(killed_at_once, "crash")
    assert sb.snapshot().totals.requests == 16


def test_snapshot_is_json_ready() -> None:
    sb = board()
    slot = sb.add(0, pid=1, gen=0, cause="start")
    sb.apply(slot, Ready(pid=1, slot=0, gen=0))
    sb.apply(slot, status(requests=(("GET", "2xx", 1),)))
    sb.restarts_total["graceful:ok"] += 1
    sb.last_restart = {"kind": "graceful", "result": "ok"}
    data = json.loads(json.dumps(sb.snapshot().to_json()))
    assert data["scoreboard"] == "_..."
    assert data["restarts_total"] == {"graceful:ok": 1}


def test_remove_of_a_slot_already_exited_is_a_bug() -> None:
    sb = board()
    slot = sb.add(0, pid=1, gen=0, cause="start")
    slot.state = SlotState.EXITED
    with pytest.raises(IllegalTransition):
        sb.remove(slot, "crash")
