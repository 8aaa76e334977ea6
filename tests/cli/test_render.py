"""cli/render.py: the mod_status view from constructed Snapshots (and their JSON round trip)."""

from __future__ import annotations

import dataclasses
import json

import pytest

from aioprefork.cli import render
from aioprefork.snapshot import SlotView, Snapshot, Totals

NOW = 1_700_000_000.0


def _snapshot() -> Snapshot:
    slots = (
        SlotView(
            slot=0, pid=1201, gen=3, state="ready", current=True, accepting=True, reading=1,
            active=2, keepalive=0, requests_total=1234, started_at=NOW - 7384,
            heartbeat_age=0.4, loop_lag=0.0003, rss=47_400_000,
        ),
        SlotView(slot=1, pid=1202, gen=3, state="ready", current=True, accepting=True,
                 started_at=NOW - 30, heartbeat_age=0.2),
        SlotView(slot=2, pid=1203, gen=3, state="starting", current=True, started_at=NOW - 1),
        SlotView(slot=3, pid=1100, gen=2, state="stopping", current=False, active=1,
                 started_at=NOW - 90000, heartbeat_age=12.0, retiring="graceful", rss=1024),
        SlotView(slot=5, pid=1204, gen=3, state="ready", current=True, accepting=False,
                 keepalive=4, started_at=NOW - 5, heartbeat_age=1.5, loop_lag=1.25,
                 loop_stalls=2, loop_stall_longest=3.1),
    )  # fmt: skip
    return Snapshot(
        now=NOW,
        pid=1200,
        master_state="running",
        generation=3,
        started_at=NOW - 3 * 86400 - 3600,
        version="0.1.0",
        slots=slots,
        server_limit=8,
        worker_connections=4,
        min_workers=2,
        max_workers=4,
        min_spare_slots=2,
        max_spare_slots=11,
        idle_slots=5,
        spawn_rate=1,
        exited_total={"crash": 1, "graceful": 2},
        restarts_total={"graceful:ok": 1},
        totals=Totals(
            accepted=99,
            requests=5000,
            response_bytes=3 * 1024 * 1024,
            by_method_class={("GET", "2xx"): 4990, ("POST", "5xx"): 10},
            duration_buckets=(1, 2, 3),
            duration_sum=1.5,
            duration_count=3,
        ),
        last_restart={"kind": "graceful", "result": "ok", "reason": "", "at": NOW - 300},
    )


def test_json_round_trip_rebuilds_the_snapshot() -> None:
    snap = _snapshot()
    wire = json.loads(json.dumps(snap.to_json()))
    assert Snapshot.from_json(wire) == snap


def test_unknown_keys_from_a_newer_master_are_ignored() -> None:
    wire = _snapshot().to_json()
    wire["brand_new"] = 1
    wire["slots"][0]["also_new"] = "x"
    assert Snapshot.from_json(wire).slots[0].pid == 1201


@pytest.mark.parametrize("wire", [{}, {"pid": 1}, {"slots": [{"nope": 1}]}, {"slots": 3}])
def test_a_non_snapshot_is_a_value_error(wire: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="not a status snapshot"):
        Snapshot.from_json(wire)


def test_summary_names_state_generation_uptime_and_targets() -> None:
    text = render.render_summary(_snapshot())
    assert "master pid 1200, running, generation 3, up 3d01h" in text
    assert "4 active (1 starting), 1 stopping" in text
    assert "min 2, max 4, server limit 8" in text
    assert "idle slots:  5 (spare targets 2..11, 4 connections per worker)" in text
    assert "5000 served, 3.0M sent" in text
    assert "99 accepted" in text
    assert "exits:       crash 1, graceful 2" in text
    assert "last restart: graceful ok, 5m00s ago" in text


def test_one_row_per_slot_with_every_column() -> None:
    text = render.render_status(_snapshot())
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("SLOT"))
    for column in render.COLUMNS:
        assert column in header
    rows = {
        line.split()[0]: line.split() for line in lines if line[:1] == " " or line[:1].isdigit()
    }
    assert rows["0"][:9] == ["0", "1201", "3", "ready", "yes", "3", "2", "0", "1234"]
    assert rows["0"][9:] == ["2h03m", "0.4s", "0.3ms", "0", "45.2M"]
    assert rows["3"][3:5] == ["stopping", "(graceful)"]
    assert rows["5"][-5:] == ["1.25s", "2", "(max", "3.10s)", "-"]  # two stalls, longest 3.1 s
    assert rows["2"][-4] == "-"  # no heartbeat yet
    assert "4" not in rows  # open slots have no row


def test_scoreboard_line_and_key() -> None:
    text = render.render_scoreboard(_snapshot())
    lines = text.splitlines()
    assert lines[0] == "Scoreboard:"
    # slot 0 serving, 1 idle, 2 starting, 3 old generation stopping, 4 open, 5 not accepting
    assert lines[1] == "A_SO.F.."
    key = lines[-1]
    for letter in "S_AFGO.":
        assert f'"{letter}"' in key


def test_long_scoreboards_wrap_like_mod_status() -> None:
    snap = _snapshot()
    wide = dataclasses.replace(snap, server_limit=150)
    lines = render.render_scoreboard(wide).splitlines()
    assert [len(line) for line in lines[1:4]] == [64, 64, 22]


def test_no_workers_is_said_plainly() -> None:
    snap = _snapshot()
    empty = dataclasses.replace(snap, slots=())
    text = render.render_status(empty)
    assert "(no worker processes)" in text
    assert "........" in text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (-1, "0.0s"), (0.25, "0.2s"), (9.96, "10.0s"), (42, "42s"), (725, "12m05s"),
     (11220, "3h07m"), (187200, "2d04h")],
)  # fmt: skip
def test_format_age(seconds: float | None, text: str) -> None:
    assert render.format_age(seconds) == text


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0B"), (1023, "1023B"), (1536, "1.5K"), (47_400_000, "45.2M"), (3 * 1024**4, "3072.0G")],
)
def test_format_bytes(n: int, text: str) -> None:
    assert render.format_bytes(n) == text


def test_format_lag() -> None:
    assert render.format_lag(0.0012) == "1.2ms"
    assert render.format_lag(2.5) == "2.50s"
