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
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench"
MIB = 1 << 20


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


def test_system_time_is_split_out_of_the_groups_cpu() -> None:
    # stat ticks: cpu = utime + stime + cutime + cstime, sys = stime + cstime; a process gone by
    # the second sample takes its ticks with it (they move into its reaper's cutime/cstime).
    def proc(pid: int, cpu: int, sys_: int) -> Any:
        return procs.ProcInfo(
            pid=pid, ppid=1, pgid=1, state="S", cpu_ticks=cpu, rss=1, sys_ticks=sys_
        )

    tick = procs.CLK_TCK
    before = {1: proc(1, 10, 4), 2: proc(2, 100, 60), 3: proc(3, 5, 5)}
    after = {1: proc(1, 20, 8), 2: proc(2, 300, 160), 4: proc(4, 7, 3)}
    used = procs.usage(before, after)
    assert used.cpu_seconds == pytest.approx((10 + 200 + 7 - 5) / tick)
    assert used.sys_seconds == pytest.approx((4 + 100 + 3 - 5) / tick)
    run = report.Measurement(
        round=1, workers=1, server="aioprefork", scenario="hello", rps=1.0, p50_ms=1.0,
        p99_ms=1.0, requests=1000, errors=0, cpu_seconds=0.010, sys_seconds=0.006, rss_total=1,
        worker_rss=(1,), worker_cpu=(0.01,),
    )  # fmt: skip
    assert (run.cpu_us_per_request, run.sys_us_per_request) == (10.0, 6.0)
    (summary,) = report.summarize([run])
    assert summary.sys_us_per_request == 6.0
    assert "| 10.0 | 6.0 |" in report.render(
        [summary], [], {"timestamp": "now"}, {"hello": "GET /"}, {}
    )


def test_a_miss_while_wrk_was_saturated_is_marked_as_the_clients_limit() -> None:
    assert wrk.busy(4.97, 5.0, 1) == 0.994 and wrk.busy(4.0, 5.0, 8) == 0.1
    assert wrk.busy(1.0, 0.0, 1) == wrk.busy(1.0, 5.0, 0) == 0.0

    def run(server: str, rps: float, busy: float) -> Any:
        return report.Measurement(
            round=1, workers=1, server=server, scenario="big", rps=rps, p50_ms=1.0, p99_ms=1.0,
            requests=int(rps), errors=0, cpu_seconds=1.0, rss_total=1, worker_rss=(1,),
            worker_cpu=(1.0,), client_busy=busy,
        )  # fmt: skip

    def big_goal(ours_busy: float, ours_rps: float = 55_000.0) -> Any:
        summaries = report.summarize(
            [run("aioprefork", ours_rps, ours_busy), run("uvicorn", 38_000.0, 0.8)]
        )
        return {t.goal: t for t in report.targets(summaries)}["big: req/s >= 1.5x uvicorn"]

    saturated = big_goal(0.99)
    assert saturated.met is False  # the target is not waived...
    assert saturated.measured == "1.45x (wrk 99% busy: the client's limit, not the server's)"
    assert big_goal(0.80).measured == "1.45x"  # ...and a server-bound miss is a plain miss
    assert big_goal(0.99, 60_000.0).measured == "1.58x"  # met: nothing to explain
    summaries = report.summarize([run("aioprefork", 55_000.0, 0.99), run("uvicorn", 38_000.0, 0.8)])
    text = report.render(summaries, [], {"timestamp": "now"}, {"big": "GET /big"}, {})
    assert "| sys us/req | wrk busy |" in text and "| 99% |" in text and "| 80% |" in text


SMAPS_ROLLUP = """\
5609de217000-7fff063b8000 ---p 00000000 00:00 0                          [rollup]
Rss:               36966 kB
Pss:               22016 kB
Pss_Dirty:          7100 kB
Shared_Clean:      22000 kB
Shared_Dirty:       7900 kB
Private_Clean:       120 kB
Private_Dirty:      7066 kB
Swap:                  0 kB
"""


def test_smaps_rollup_is_parsed_to_pss_and_uss() -> None:
    assert procs.parse_smaps_rollup(SMAPS_ROLLUP) == (22016 * 1024, (120 + 7066) * 1024)
    assert procs.parse_smaps_rollup("") == (0, 0)  # what a zombie's would give: nothing


# A parent with 32 MiB of touched private memory forks one child that only sleeps: right after the
# fork every page is shared copy-on-write, the case of a prefork worker and its master.
FORKER = """\
import os, time
ballast = b"x" * (32 << 20)
if os.fork() == 0:
    time.sleep(60)
    os._exit(0)
time.sleep(60)
"""


@pytest.mark.timeout(30)
def test_forked_child_pss_splits_what_rss_double_counts() -> None:
    forker = subprocess.Popen([sys.executable, "-c", FORKER], start_new_session=True)
    try:
        deadline = time.monotonic() + 15
        while len(sample := procs.group(forker.pid, memory=True)) < 2:
            assert time.monotonic() < deadline, "the child was never forked"
            time.sleep(0.02)
        (child,) = procs.workers(sample)
        assert child != forker.pid and sample[child].ppid == forker.pid
        used = procs.usage(sample, sample)
        (rss,), (pss,), (uss,) = used.worker_rss, used.worker_pss, used.worker_uss
        assert rss > 32 * MIB
        assert 0 < uss < pss < rss and pss < 0.75 * rss and uss < 0.25 * rss
        assert used.rss_total >= 2 * 32 * MIB
        assert 0 < used.pss_total < 0.75 * used.rss_total
        assert used.pss_total == sum(info.pss for info in sample.values())
        assert procs.group(forker.pid)[child].pss == 0  # memory is read only when asked

        os.kill(child, signal.SIGKILL)  # the parent sleeps: the child stays an unreaped zombie
        while procs.group(forker.pid, zombies=True)[child].state != "Z":
            assert time.monotonic() < deadline, "the child never died"
            time.sleep(0.02)
        assert procs.read_memory(child) == (0, 0)
        gone = procs.group(forker.pid, zombies=True, memory=True)
        assert gone[child].pss == gone[child].uss == 0 and gone[forker.pid].pss > 0
    finally:
        procs.stop(forker, grace=1.0)


def test_medians_ratios_and_targets() -> None:
    # aioprefork: a master (36 MiB RSS, not a worker) and one worker that shares most of its pages;
    # uvicorn: one process, RSS = PSS. By RSS the worker loses, by PSS it wins.
    ours = {"rss_total": 72 * MIB, "worker_rss": (36 * MIB,), "pss_total": 43 * MIB}
    ours |= {"worker_pss": (21 * MIB,), "worker_uss": (7 * MIB,)}
    theirs = {"rss_total": 31 * MIB, "worker_rss": (31 * MIB,), "pss_total": 31 * MIB}
    theirs |= {"worker_pss": (31 * MIB,), "worker_uss": (30 * MIB,)}

    def run(server: str, rps: float, round_no: int) -> object:
        return report.Measurement(
            round=round_no, workers=1, server=server, scenario="hello", rps=rps, p50_ms=1.0,
            p99_ms=2.0 if server == "aioprefork" else 3.0, requests=int(rps), errors=0,
            cpu_seconds=rps / 1e5, worker_cpu=(1.0,), **(ours if server == "aioprefork" else theirs),
        )  # fmt: skip

    runs = [run("aioprefork", 30_000 + r, r) for r in (1, 2, 3)]
    runs += [run("uvicorn", v, r) for r, v in enumerate((10_000.0, 12_000.0, 50.0), 1)]
    summaries = report.summarize(runs)
    assert [s.rps for s in summaries] == [30_002, 10_000]
    mine = summaries[0]
    assert (mine.rss_per_worker, mine.pss_per_worker, mine.uss_per_worker) == (
        36 * MIB, 21 * MIB, 7 * MIB,
    )  # fmt: skip
    assert (mine.rss_total, mine.pss_total, mine.worker_pss) == (72 * MIB, 43 * MIB, (21 * MIB,))
    goals = {t.goal: t for t in report.targets(summaries)}
    assert goals["hello: req/s >= 2.5x uvicorn"].met is True
    assert goals["hello: p99 below uvicorn"].met is True
    assert goals["hello: RSS per worker <= uvicorn"].met is False  # the literal target stays
    pss_goal = goals["hello: PSS per worker <= uvicorn's"]
    assert (pss_goal.met, pss_goal.measured) == (True, "21.0 vs 31.0 MiB")
    text = report.render(summaries, [], {"timestamp": "now"}, {"hello": "GET /"}, {})
    assert "| aioprefork | 30,002 |" in text and "| 3.00 |" in text
    assert (
        "| RSS MiB | PSS MiB | RSS/worker MiB | PSS/worker MiB | USS/worker MiB | errors |" in text
    )
    assert "| 72.0 | 43.0 | 36.0 | 21.0 | 7.0 | 0 |" in text
    assert "| 31.0 | 31.0 | 31.0 | 31.0 | 30.0 | 0 |" in text
    assert "| hello: PSS per worker <= uvicorn's | 21.0 vs 31.0 MiB | yes |" in text
    assert "| hello: RSS per worker <= uvicorn | 36.0 vs 31.0 MiB | NO |" in text
    data = report.to_json(runs, [], summaries, {})
    assert data["runs"][0]["worker_pss"] == (21 * MIB,)
    assert data["summary"][0]["pss_per_worker"] == 21 * MIB


def test_memory_not_read_is_shown_as_unknown_never_as_a_win() -> None:
    """PSS 0 means smaps_rollup was not read (or the process vanished): "-", and no PSS target;
    a worker that vanished between its stat and its smaps_rollup does not drag the mean down."""

    def run(server: str, workers: int, worker_pss: tuple[int, ...]) -> object:
        return report.Measurement(
            round=1, workers=workers, server=server, scenario="hello", rps=1000.0, p50_ms=1.0,
            p99_ms=2.0, requests=1000, errors=0, cpu_seconds=0.1, rss_total=40 * MIB,
            worker_rss=(30 * MIB,) * len(worker_pss), worker_cpu=(0.5,) * len(worker_pss),
            pss_total=sum(worker_pss), worker_pss=worker_pss, worker_uss=worker_pss,
        )  # fmt: skip

    runs = [run("aioprefork", 1, (20 * MIB,)), run("uvicorn", 1, (0,))]
    runs.append(run("aioprefork", 2, (20 * MIB, 0)))
    summaries = report.summarize(runs)
    assert [s.pss_per_worker for s in summaries] == [20 * MIB, 0, 20 * MIB]
    assert not [t for t in report.targets(summaries) if "PSS" in t.goal]
    text = report.render(summaries, [], {"timestamp": "now"}, {}, {})
    assert "| 40.0 | - | 30.0 | - | - | 0 |" in text  # uvicorn, nothing read
    assert "worker RSS MiB 30.0, 30.0; worker PSS MiB 20.0, -" in text


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
        assert 0 < r["sys_seconds"] <= r["cpu_seconds"]  # loopback TCP is kernel work
        assert 0 < r["client_busy"] <= 1.05  # wrk's CPU over its run, one client core
        assert r["rss_total"] >= r["pss_total"] > 0
        for rss, pss, uss in zip(r["worker_rss"], r["worker_pss"], r["worker_uss"], strict=True):
            assert rss >= pss > uss > 0
    (forked,) = [r for r in data["runs"] if r["server"] == "aioprefork"]
    (worker_rss,), (worker_pss,) = forked["worker_rss"], forked["worker_pss"]
    assert worker_pss < worker_rss  # the worker shares its master's pages copy-on-write
    assert "PSS/worker MiB" in out and "| CPU us/req | sys us/req |" in out
    assert data["failures"] == []


def test_compiled_available_looks_for_every_hot_path_module(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bench must not take a stale or partial build/compiled for the compiled hot path."""
    from aioprefork.buildinfo import HOT_PATH

    servers = _load("servers")
    monkeypatch.setattr(servers, "COMPILED", tmp_path)

    def shim(path: str) -> None:
        target = tmp_path / (path.removesuffix(".py") + ".cpython-311-x86_64-linux-gnu.so")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch()

    assert not servers.compiled_available()
    for path in HOT_PATH[:-1]:
        shim(path)
    assert not servers.compiled_available()  # one module missing: not the compiled build
    shim(HOT_PATH[-1])
    assert servers.compiled_available()
