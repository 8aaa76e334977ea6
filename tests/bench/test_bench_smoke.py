"""The benchmark harness works end to end: real servers, real wrk, real /proc, one tiny round.

bench/ is a set of scripts, not a package: its pure modules are loaded from their files under
private names (no sys.path change), and the harness itself runs as `python bench/run.py`, the way
`make bench` runs it. The tiny round pits aioprefork (its real command line, master + one worker)
against the raw ceiling: both come with the test install, uvicorn and granian only with `.[bench]`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


wrk = _load("wrk")
procs = _load("procs")
report = _load("report")
scoreboard = _load("scoreboard")

WRK_REPORT = """\
Running 1s test @ http://127.0.0.1:8000/
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.61ms  402.10us  12.31ms   91.20%
    Req/Sec    39.81k     1.02k   41.13k    80.00%
  Latency Distribution
     50%  850.00us
     75%    1.70ms
     90%    1.92ms
     99%    1.02s
  39612 requests in 1.00s, 5.70MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec:  39598.14
Transfer/sec:      5.70MB
"""


def test_wrk_report_is_parsed_with_units() -> None:
    result = wrk.parse(WRK_REPORT)
    assert result.requests == 39612
    assert result.seconds == pytest.approx(1.0)
    assert result.rps == pytest.approx(39598.14)
    assert result.p50_ms == pytest.approx(0.85)
    assert result.p99_ms == pytest.approx(1020.0)
    assert result.errors == 7


def test_wrk_report_without_latency_is_refused() -> None:
    with pytest.raises(ValueError):
        wrk.parse(WRK_REPORT.replace("     99%    1.02s\n", ""))


def test_core_lists_and_scoreboard_sources() -> None:
    assert procs.parse_cpus("0-2,8, 5") == (0, 1, 2, 5, 8)
    snapshot = {"slots": [{"slot": 0, "pid": 10, "requests_total": 5}]}
    assert scoreboard.from_snapshot(snapshot) == {"0/10": 5}
    metrics = 'x_requests_total{slot="1",generation="2"} 7.0\nx_requests_total{slot="0"} 3\n'
    assert scoreboard.from_prometheus(metrics) == {"1": 7, "0": 3}
    assert scoreboard.delta({"0": 3, "1": 4}, {"0": 10, "1": 4}) == (7, 0)


def test_worker_processes_and_exits_from_proc_samples() -> None:
    def proc(pid: int, ppid: int, state: str = "S", rss: int = 1 << 20) -> object:
        return procs.ProcInfo(pid=pid, ppid=ppid, pgid=1, state=state, cpu_ticks=0, rss=rss)

    master, w1, w2 = proc(1, 0), proc(2, 1), proc(3, 1)
    before = {1: master, 2: w1, 3: w2}
    assert procs.workers(before) == (2, 3)
    assert procs.workers({1: master}) == (1,)  # a single process serves itself
    dying = {1: master, 2: proc(2, 1, rss=0), 3: w2, 4: proc(4, 1)}
    assert procs.workers(dying) == (3, 4)
    assert procs.exited(before, dying) == (2,)
    assert procs.exited(before, {1: master, 3: proc(3, 1, state="Z")}) == (2, 3)


def test_medians_ratios_and_targets() -> None:
    def run(server: str, rps: float, round_no: int) -> object:
        return report.Measurement(
            round=round_no, workers=1, server=server, scenario="hello", rps=rps, p50_ms=1.0,
            p99_ms=2.0 if server == "aioprefork" else 3.0, requests=int(rps), errors=0,
            cpu_seconds=rps / 1e5, rss_total=1 << 20, worker_rss=(1 << 20,), worker_cpu=(1.0,),
        )  # fmt: skip

    runs = [run("aioprefork", 30_000 + r, r) for r in (1, 2, 3)]
    runs += [run("uvicorn", v, r) for r, v in enumerate((10_000.0, 12_000.0, 50.0), 1)]
    summaries = report.summarize(runs)
    assert [s.rps for s in summaries] == [30_002, 10_000]
    met = {t.goal: t.met for t in report.targets(summaries)}
    assert met["hello: req/s >= 2.5x uvicorn"] is True
    assert met["hello: p99 below uvicorn"] is True
    text = report.render(summaries, [], {"timestamp": "now"}, {"hello": "GET /"}, {})
    assert "| aioprefork | 30,002 |" in text and "| 3.00 |" in text


@pytest.mark.timeout(90)
def test_harness_one_tiny_round(tmp_path: Path) -> None:
    argv = [sys.executable, str(BENCH / "run.py"), "--rounds", "1", "--duration", "1"]
    argv += ["--servers", "aioprefork,raw", "--scenarios", "hello", "--out-dir", str(tmp_path)]
    harness = subprocess.Popen(
        argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        out, err = harness.communicate(timeout=60)
    finally:
        if harness.poll() is None:  # its TERM handler stops the server it is measuring
            os.kill(harness.pid, signal.SIGTERM)
            try:
                harness.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(harness.pid, signal.SIGKILL)
                harness.wait()
    assert harness.returncode == 0, err

    rows = dict(re.findall(r"^\| (aioprefork|raw ceiling) \| ([\d,]+) \|", out, re.M))
    assert set(rows) == {"aioprefork", "raw ceiling"}, out
    assert all(int(rps.replace(",", "")) > 0 for rps in rows.values())

    (md,) = tmp_path.glob("*.md")
    (js,) = tmp_path.glob("*.json")
    assert md.read_text() in out
    data = json.loads(js.read_text())
    assert {r["server"] for r in data["runs"]} == {"aioprefork", "raw"}
    for r in data["runs"]:
        assert r["rps"] > 0 and r["requests"] > 0 and r["errors"] == 0
        assert r["p99_ms"] >= r["p50_ms"] > 0
        assert r["cpu_seconds"] > 0 and r["rss_total"] > 1 << 20
    assert data["failures"] == []
