"""Constructed Snapshots and small parsers shared by the metrics tests."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from aioprefork.channel.messages import DURATION_BUCKETS
from aioprefork.snapshot import (
    READY,
    STARTING,
    STOPPING,
    ListenQueue,
    SlotView,
    Snapshot,
    Totals,
)

NOW = 1_700_000_000.0
DASHBOARD = (
    Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "dashboards" / "aioprefork.json"
)

# 10 responses: 1 per bucket up to 0.5 s, 2 between 0.5 and 1 s... written cumulatively.
BUCKETS = (1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 10, 10, 10, 10)
assert len(BUCKETS) == len(DURATION_BUCKETS)


def slot(**kw: Any) -> SlotView:
    base: dict[str, Any] = {
        "slot": 0,
        "pid": 4100,
        "gen": 2,
        "state": READY,
        "current": True,
        "accepting": True,
        "started_at": NOW - 100,
        "ready_at": NOW - 99,
        "heartbeat_age": 0.5,
    }
    base.update(kw)
    return SlotView(**base)


def snapshot(**kw: Any) -> Snapshot:
    """A busy pool: 2 ready workers, one starting, one old-generation stopping; slot 3 open."""
    base: dict[str, Any] = {
        "now": NOW,
        "pid": 4000,
        "master_state": "running",
        "generation": 2,
        "started_at": NOW - 3725,
        "version": "0.1.0",
        "slots": (
            slot(
                slot=0,
                pid=4100,
                active=2,
                keepalive=3,
                reading=1,
                requests_total=700,
                accepted_total=40,
                loop_lag=0.002,
                rss=50 * 2**20,
            ),
            slot(
                slot=1,
                pid=4101,
                active=0,
                keepalive=1,
                requests_total=300,
                accepted_total=20,
                loop_lag=0.001,
                rss=48 * 2**20,
                heartbeat_age=0.25,
            ),
            slot(
                slot=2,
                pid=4102,
                state=STARTING,
                accepting=False,
                heartbeat_age=None,
                started_at=NOW - 1,
                ready_at=None,
            ),
            slot(
                slot=4,
                pid=3900,
                gen=1,
                state=STOPPING,
                current=False,
                accepting=False,
                closing=2,
                upgraded=1,
                requests_total=9000,
                rss=60 * 2**20,
                retiring="graceful",
            ),
        ),
        "server_limit": 6,
        "worker_connections": 100,
        "min_workers": 2,
        "max_workers": 3,
        "min_spare_slots": 50,
        "max_spare_slots": 251,
        "idle_slots": 193,
        "spawn_rate": 2,
        "max_workers_reached_total": 1,
        "spawned_total": {"boot": 2, "spare": 1, "restart": 2},
        "exited_total": {"graceful": 1, "crash": 1},
        "restarts_total": {"graceful:ok": 1, "graceful:rolled_back": 1},
        "heartbeat_timeouts_total": 3,
        "totals": Totals(
            accepted=123,
            handed_back=7,
            requests=1000,
            response_bytes=131072,
            by_method_class={("GET", "2xx"): 900, ("POST", "5xx"): 60, ("GET", "4xx"): 40},
            rejected={"framing": 2, "headers_too_large": 1},
            shed={"slow_head": 5, "idle": 1},
            duration_buckets=BUCKETS,
            duration_sum=2.5,
            duration_count=10,
        ),
        "listen_queues": (ListenQueue(listener="0.0.0.0:8000", queued=2, limit=2048),),
    }
    base.update(kw)
    return Snapshot(**base)


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Prometheus text -> {(sample name, labels): value}."""
    out: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            key = (s.name, frozenset(s.labels.items()))
            assert key not in out, f"duplicate series {key}"
            out[key] = s.value
    return out


def value(
    table: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return table[(name, frozenset(labels.items()))]


def promtool(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    assert exe, "promtool missing: run `make system-deps` (Debian package prometheus)"
    return subprocess.run(
        [exe, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False
    )


def expressions(node: Any) -> list[str]:
    """Every `expr` in a dashboard node (panels, targets, annotations)."""
    found: list[str] = []
    if isinstance(node, dict):
        for key, item in node.items():
            if key == "expr" and isinstance(item, str):
                found.append(item)
            else:
                found.extend(expressions(item))
    elif isinstance(node, list):
        for item in node:
            found.extend(expressions(item))
    return found


def dashboard_promql(rate_interval: str) -> list[str]:
    """The dashboard's expressions with Grafana's variables replaced as Grafana would ("All")."""
    out = []
    variables = {"$__rate_interval": rate_interval, "$__interval": "15s", "$instance": ".+"}
    for expr in expressions(json.loads(DASHBOARD.read_text())):
        for name, val in variables.items():
            expr = expr.replace(name, val)
        assert "$" not in expr, expr
        out.append(expr)
    return out
