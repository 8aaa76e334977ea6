"""deploy/grafana: every dashboard PromQL expression parses (promtool) and names real series."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from aioprefork.metrics.collector import SnapshotCollector

from .helpers import promtool, samples, snapshot

ROOT = Path(__file__).resolve().parents[2] / "deploy" / "grafana"
DASHBOARD = ROOT / "dashboards" / "aioprefork.json"

# Grafana variables, replaced by what Grafana would send: a range and an "All" regex.
VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$instance": ".+"}


def expressions(node: Any) -> list[str]:
    """Every `expr` in the dashboard (panels, targets, annotations)."""
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


def promql() -> list[str]:
    out = []
    for expr in expressions(json.loads(DASHBOARD.read_text())):
        for name, val in VARIABLES.items():
            expr = expr.replace(name, val)
        assert "$" not in expr, expr
        out.append(expr)
    return out


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
