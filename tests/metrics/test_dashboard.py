"""deploy/grafana: every dashboard PromQL expression parses (promtool) and names real series."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from aioprefork.metrics.collector import SnapshotCollector

from .helpers import DASHBOARD, dashboard_promql, promtool, samples, snapshot

ROOT = DASHBOARD.parents[1]


def promql() -> list[str]:
    return dashboard_promql("1m")


def test_every_expression_parses_with_promtool(tmp_path: Path) -> None:
    exprs = promql()
    assert len(exprs) >= 25
    rules = {
        "groups": [
            {
                "name": "aioprefork-dashboard",
                "rules": [
                    {"record": f"dashboard:expr_{i}", "expr": e} for i, e in enumerate(exprs)
                ],
            }
        ]
    }
    path = tmp_path / "rules.yml"
    path.write_text(json.dumps(rules))  # JSON is YAML
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in result.stdout


def test_every_metric_the_dashboard_names_is_exported() -> None:
    registry = CollectorRegistry()
    registry.register(SnapshotCollector(snapshot))
    exported = {name for name, _ in samples(generate_latest(registry).decode())}
    for expr in promql():
        for name in re.findall(r"\baioprefork_[a-z_]+", expr):
            assert name in exported, f"{name} in {expr!r}"


def test_dashboard_covers_the_issue() -> None:
    text = DASHBOARD.read_text()
    dash = json.loads(text)
    assert dash["uid"] == "aioprefork" and dash["title"]
    titles = " | ".join(p["title"].lower() for p in dash["panels"])
    for topic in (
        "request rate",
        "latency",
        "status class",
        "workers by state",
        "connection slots",
        "spare slots",
        "spawns",
        "exits",
        "rss",
        "loop lag",
        "restarts",
    ):
        assert topic in titles, topic
    for quantile in ("0.5", "0.9", "0.99"):
        assert f"histogram_quantile({quantile}, sum by (le)" in text
    grid = [p["gridPos"] for p in dash["panels"]]
    assert all(g["x"] + g["w"] <= 24 for g in grid)
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])


def test_provisioning_files_point_at_each_other() -> None:
    datasource = (ROOT / "provisioning" / "datasources" / "prometheus.yaml").read_text()
    provider = (ROOT / "provisioning" / "dashboards" / "aioprefork.yaml").read_text()
    assert "apiVersion: 1" in datasource and "type: prometheus" in datasource
    assert "apiVersion: 1" in provider and "type: file" in provider
    assert "path: /var/lib/grafana/dashboards/aioprefork" in provider
    assert "\t" not in datasource + provider  # YAML forbids tabs
