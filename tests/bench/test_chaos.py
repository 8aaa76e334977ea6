"""The chaos suite's quick subset (bench/chaos/run.py --quick), as `make chaos` runs it but short:
the scenarios that are fast and robust on 2 busy cores. Each must print its row and PASS."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
QUICK = ("crash-storm", "kill9-storm", "graceful", "stale-pid", "socket-squat")

pytestmark = pytest.mark.timeout(240)


def test_the_quick_chaos_scenarios_pass_and_print_their_figures() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos" / "run.py"), "--quick", *QUICK],
        capture_output=True,
        text=True,
        timeout=220,
        cwd=ROOT,
    )
    rows = [
        line for line in done.stdout.splitlines() if line.startswith("| ") and "---" not in line
    ]
    assert rows[0].startswith("| scenario | result | answered | failed | outage s | peak RSS MiB")
    assert len(rows) == 1 + len(QUICK), done.stdout + done.stderr
    assert done.returncode == 0, done.stdout + done.stderr
    for row in rows[1:]:
        assert "| PASS |" in row, row


def test_an_unknown_scenario_is_one_line_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "chaos" / "run.py"), "nope"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "unknown scenario 'nope'" in done.stderr
