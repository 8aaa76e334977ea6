"""Per-worker request counts from aioprefork's scoreboard, read around a measurement.

Load must spread evenly over workers (issue 8), and only aioprefork reports per-worker counts, so
this is best effort and tolerates their absence (an older build, metrics off): every reader returns
None rather than raising. Sources, first that answers wins:

1. `aioprefork ctl status --json` (the Snapshot.to_json() shape: `slots[].slot/pid/requests_total`),
   pointed at the run's control socket;
2. the master's Prometheus listener, `GET /metrics`: the first `*requests*` metric labelled by slot.

Counts are cumulative per worker, so the harness reads them before and after measuring and keeps
the difference (`delta`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import urllib.request
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

_SAMPLE: Final = re.compile(r"^([A-Za-z_:][\w:]*)\{([^}]*)\}\s+([0-9.eE+-]+)", re.M)
_LABEL: Final = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

Counts = dict[str, int]  # worker key ("slot/pid" or "slot") -> requests so far


def from_snapshot(data: Mapping[str, Any]) -> Counts | None:
    """`ctl status --json` output -> per-worker counts (None if it has no slots)."""
    slots = data.get("slots")
    if not isinstance(slots, list) or not slots:
        return None
    counts: Counts = {}
    for slot in slots:
        if isinstance(slot, dict) and "requests_total" in slot:
            counts[f"{slot.get('slot')}/{slot.get('pid')}"] = int(slot["requests_total"])
    return counts or None


def from_prometheus(text: str) -> Counts | None:
    """Prometheus text -> per-slot counts of the first requests metric labelled by slot."""
    by_metric: dict[str, Counts] = {}
    for name, labels, value in _SAMPLE.findall(text):
        if "request" not in name or name.endswith(("_bucket", "_sum", "_created")):
            continue
        label = dict(_LABEL.findall(labels))
        if "slot" not in label:
            continue
        key = f"{label['slot']}/{label.get('pid', '')}".rstrip("/")
        per_slot = by_metric.setdefault(name, {})
        per_slot[key] = per_slot.get(key, 0) + int(float(value))
    return next(iter(by_metric.values()), None)


def read(bin_dir: Path, ctl_socket: str, host: str, metrics_port: int) -> Counts | None:
    """Per-worker request counts of the aioprefork master behind these addresses, or None."""
    env = {**os.environ, "AIOPREFORK_CTL_SOCKET": ctl_socket}
    base = [str(bin_dir / "aioprefork"), "ctl"]
    for argv in (
        [*base, "status", "--json", "--ctl-socket", ctl_socket],
        [*base, "--ctl-socket", ctl_socket, "status", "--json"],
        [*base, "status", "--json"],
    ):
        with contextlib.suppress(OSError, subprocess.SubprocessError, ValueError):
            done = subprocess.run(argv, capture_output=True, text=True, timeout=5, env=env)
            if done.returncode == 0:
                counts = from_snapshot(json.loads(done.stdout))
                if counts is not None:
                    return counts
    with contextlib.suppress(OSError, ValueError):
        url = f"http://{host}:{metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            return from_prometheus(response.read().decode(errors="replace"))
    return None


def delta(before: Counts | None, after: Counts | None) -> tuple[int, ...] | None:
    """Requests each worker served between two reads (workers present in both), by key order."""
    if before is None or after is None:
        return None
    common = sorted(set(before) & set(after))
    return tuple(after[k] - before[k] for k in common) if common else None
