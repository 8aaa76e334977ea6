"""The scoreboard collector on constructed Snapshots: exact series, exact values, promtool-clean."""

from __future__ import annotations

import dataclasses
import platform
import re

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om

from aioprefork.channel.messages import DURATION_BUCKETS
from aioprefork.metrics.collector import (
    MASTER_STATES,
    WORKER_STATES,
    SnapshotCollector,
    metric_families,
)
from aioprefork.snapshot import Snapshot, Totals

from .helpers import BUCKETS, NOW, promtool, samples, snapshot, value


def render(snap: Snapshot) -> str:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(lambda: snap))
    return generate_latest(registry).decode()


def test_identity_state_and_generation() -> None:
    t = samples(render(snapshot()))
    assert value(t, "aioprefork_info", version="0.1.0", pid="4000") == 1
    for state in MASTER_STATES:
        assert value(t, "aioprefork_master_state", state=state) == (state == "running")
    assert value(t, "aioprefork_generation") == 2
    assert value(t, "aioprefork_master_start_time_seconds") == NOW - 3725


def test_build_info_says_which_hot_path_serves() -> None:
    """aioprefork_build_info{hot_path="compiled|pure"}: which build a dashboard is looking at."""
    python = platform.python_version()
    for build in ("compiled", "pure"):
        t = samples(render(snapshot(hot_path=build)))
        assert value(t, "aioprefork_build_info", hot_path=build, version="0.1.0", python=python)


def test_workers_by_scoreboard_state() -> None:
    t = samples(render(snapshot()))
    expected = {"starting": 1, "idle": 1, "serving": 1, "full": 0, "stopping": 0, "old": 1}
    assert {s: value(t, "aioprefork_workers", state=s) for s in WORKER_STATES} == expected
    assert value(t, "aioprefork_workers_active") == 3  # slots 0, 1, 2 (starting counts)
    assert value(t, "aioprefork_workers_min") == 2
    assert value(t, "aioprefork_workers_max") == 3
    assert value(t, "aioprefork_server_limit") == 6
    assert value(t, "aioprefork_worker_connections") == 100


def test_full_worker_is_counted_full() -> None:
    busy = snapshot().slots[0]
    t = samples(render(snapshot(slots=(dataclasses.replace(busy, accepting=False),))))
    assert value(t, "aioprefork_workers", state="full") == 1
    assert value(t, "aioprefork_workers", state="serving") == 0


def test_connection_slots_and_spare_pool() -> None:
    t = samples(render(snapshot()))
    phases = {"reading": 1, "active": 2, "keepalive": 4, "closing": 2, "upgraded": 1}
    for phase, n in phases.items():
        assert value(t, "aioprefork_connection_slots", state=phase) == n
    assert value(t, "aioprefork_spare_slots") == 193
    assert value(t, "aioprefork_spare_slots_min") == 50
    assert value(t, "aioprefork_spare_slots_max") == 251
    assert value(t, "aioprefork_spawn_rate") == 2


def test_lifecycle_counters() -> None:
    t = samples(render(snapshot()))
    assert value(t, "aioprefork_workers_spawned_total", cause="boot") == 2
    assert value(t, "aioprefork_workers_spawned_total", cause="spare") == 1
    assert value(t, "aioprefork_workers_spawned_total", cause="restart") == 2
    assert value(t, "aioprefork_workers_exited_total", cause="graceful") == 1
    assert value(t, "aioprefork_workers_exited_total", cause="crash") == 1
    assert value(t, "aioprefork_max_workers_reached_total") == 1
    assert value(t, "aioprefork_restarts_total", kind="graceful", result="ok") == 1
    assert value(t, "aioprefork_restarts_total", kind="graceful", result="rolled_back") == 1
    assert value(t, "aioprefork_heartbeat_timeouts_total") == 3


def test_traffic_counters() -> None:
    t = samples(render(snapshot()))
    assert value(t, "aioprefork_connections_accepted_total") == 123
    assert value(t, "aioprefork_connections_handed_back_total") == 7
    assert value(t, "aioprefork_requests_total", method="GET", status_class="2xx") == 900
    assert value(t, "aioprefork_requests_total", method="GET", status_class="4xx") == 40
    assert value(t, "aioprefork_requests_total", method="POST", status_class="5xx") == 60
    assert value(t, "aioprefork_response_bytes_total") == 131072
    assert value(t, "aioprefork_requests_rejected_total", reason="framing") == 2
    assert value(t, "aioprefork_requests_rejected_total", reason="headers_too_large") == 1
    # Every declared reason is present from the start (0), so rate() sees the first rejection.
    for reason in ("uri_too_long", "body_too_large", "host", "bad_request"):
        assert value(t, "aioprefork_requests_rejected_total", reason=reason) == 0
    assert value(t, "aioprefork_connections_shed_total", reason="slow_head") == 5
    assert value(t, "aioprefork_connections_shed_total", reason="idle") == 1
    for reason in ("slow_body", "slow_reader", "send_rate", "stalled_budget"):
        assert value(t, "aioprefork_connections_shed_total", reason=reason) == 0


def test_duration_histogram_is_cumulative_with_inf_equal_to_count() -> None:
    t = samples(render(snapshot()))
    name = "aioprefork_request_duration_seconds"
    for bound, n in zip(DURATION_BUCKETS, BUCKETS, strict=True):
        assert value(t, name + "_bucket", le=str(float(bound))) == n
    assert value(t, name + "_bucket", le="+Inf") == 10
    assert value(t, name + "_count") == 10
    assert value(t, name + "_sum") == 2.5


def test_per_slot_gauges_are_labelled_slot_and_generation() -> None:
    t = samples(render(snapshot()))
    assert value(t, "aioprefork_slot_connections", slot="0", generation="2") == 6
    assert value(t, "aioprefork_slot_connections", slot="4", generation="1") == 3
    assert value(t, "aioprefork_slot_requests", slot="0", generation="2") == 700
    assert value(t, "aioprefork_slot_loop_lag_seconds", slot="0", generation="2") == 0.002
    assert value(t, "aioprefork_slot_rss_bytes", slot="1", generation="2") == 48 * 2**20
    assert value(t, "aioprefork_slot_start_time_seconds", slot="2", generation="2") == NOW - 1
    assert value(t, "aioprefork_slot_heartbeat_age_seconds", slot="1", generation="2") == 0.25
    assert value(t, "aioprefork_slot_accepting", slot="2", generation="2") == 0
    assert value(t, "aioprefork_slot_ready", slot="0", generation="2") == 1
    assert value(t, "aioprefork_slot_ready", slot="2", generation="2") == 0
    # No heartbeat yet: no sample rather than a made-up 0.
    assert (
        "aioprefork_slot_heartbeat_age_seconds",
        frozenset({("slot", "2"), ("generation", "2")}),
    ) not in t


def test_no_unbounded_labels() -> None:
    allowed = {
        "state",
        "cause",
        "kind",
        "result",
        "method",
        "status_class",
        "reason",
        "le",
        "slot",
        "generation",
        "listener",  # one per configured listener: bounded by the config
        "protocol",
    }
    for name, labels in samples(render(snapshot())):
        assert name.startswith("aioprefork_")
        names = {k for k, _ in labels}
        if name == "aioprefork_info":
            assert names == {"version", "pid"}
        elif name == "aioprefork_build_info":  # constant for the process's life
            assert names == {"hot_path", "version", "python"}
        else:
            assert names <= allowed, (name, names)


def test_empty_snapshot_renders_zeros() -> None:
    empty = snapshot(
        slots=(),
        totals=Totals(),
        spawned_total={},
        exited_total={},
        restarts_total={},
        master_state="booting",
        idle_slots=0,
    )
    t = samples(render(empty))
    assert value(t, "aioprefork_master_state", state="booting") == 1
    assert sum(value(t, "aioprefork_workers", state=s) for s in WORKER_STATES) == 0
    assert value(t, "aioprefork_request_duration_seconds_bucket", le="+Inf") == 0
    assert value(t, "aioprefork_request_duration_seconds_bucket", le="0.005") == 0
    assert not [k for k in t if k[0] == "aioprefork_slot_rss_bytes"]


def test_unknown_master_state_still_exported() -> None:
    t = samples(render(snapshot(master_state="draining")))
    assert value(t, "aioprefork_master_state", state="draining") == 1
    assert value(t, "aioprefork_master_state", state="running") == 0


def test_collector_takes_one_snapshot_per_scrape_and_none_at_registration() -> None:
    calls = []

    def snap() -> Snapshot:
        calls.append(1)
        return snapshot()

    registry = CollectorRegistry(auto_describe=True)
    registry.register(SnapshotCollector(snap))
    assert calls == []
    generate_latest(registry)
    assert len(calls) == 1


def test_metric_families_is_stable() -> None:
    a = [m.name for m in metric_families(snapshot())]
    b = [m.name for m in metric_families(snapshot(slots=()))]
    assert a == b and len(a) == len(set(a))


def test_openmetrics_rendering_parses() -> None:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot))
    text = generate_openmetrics(registry).decode()  # type: ignore[no-untyped-call]
    assert text.endswith("# EOF\n")
    names = {f.name for f in parse_om(text)}  # type: ignore[no-untyped-call]
    assert {"aioprefork", "aioprefork_requests", "aioprefork_request_duration_seconds"} <= names


def test_promtool_check_metrics_finds_nothing() -> None:
    text = render(snapshot())
    result = promtool("check", "metrics", stdin=text)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == ""
    assert re.search(r"^# TYPE aioprefork_requests_total counter$", text, re.M)


def test_loop_stalls_counter_and_longest_stall_per_slot() -> None:
    snap = snapshot()
    stalled = dataclasses.replace(snap.slots[0], loop_stalls=3, loop_stall_longest=2.5)
    snap = dataclasses.replace(
        snap,
        slots=(stalled, *snap.slots[1:]),
        totals=dataclasses.replace(snap.totals, loop_stalls=5),  # 2 of them by exited workers
    )
    t = samples(render(snap))
    assert value(t, "aioprefork_loop_stalls_total") == 5
    assert value(t, "aioprefork_slot_loop_stall_longest_seconds", slot="0", generation="2") == 2.5
    assert value(t, "aioprefork_slot_loop_stall_longest_seconds", slot="1", generation="2") == 0


def test_request_timeouts_counter() -> None:
    snap = snapshot()
    snap = dataclasses.replace(snap, totals=dataclasses.replace(snap.totals, request_timeouts=4))
    assert value(samples(render(snap)), "aioprefork_request_timeouts_total") == 4


def test_http2_streams_and_requests_by_protocol() -> None:
    base = snapshot()
    busy = dataclasses.replace(base.slots[0], streams=7)
    totals = dataclasses.replace(base.totals, requests=1000, h2_requests=400)
    t = samples(render(dataclasses.replace(base, slots=(busy, *base.slots[1:]), totals=totals)))
    assert value(t, "aioprefork_http2_streams") == 7
    assert value(t, "aioprefork_requests_by_protocol_total", protocol="2") == 400
    assert value(t, "aioprefork_requests_by_protocol_total", protocol="1.1") == 600
    assert value(t, "aioprefork_requests_rejected_total", reason="h2_rapid_reset") == 0
