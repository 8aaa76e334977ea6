"""The benchmark: aioprefork against uvicorn, granian (and gunicorn) and a raw ceiling, interleaved.

    .venv/bin/python bench/run.py [--rounds 3] [--duration 5] [--servers ...] [--scenarios ...]
    .venv/bin/python bench/run.py --workers 8            # multi-worker comparison
    .venv/bin/python bench/run.py --scaling              # N = 1, 2, 4, 8 workers, hello

Order: for each round, for each worker count, each server in turn, for each scenario: a fresh
server on a free port, pinned with taskset to the server cores; wait until it answers and check the
scenario's answer; warm up; sample the server's process group (/proc); run wrk --latency pinned to
the client cores; sample again, now with memory (RSS, PSS, USS); read aioprefork's scoreboard; kill
the whole process group by id.
Interleaving spreads machine noise (other tenants, thermal drift) over every server alike.

Output: a Markdown report (medians over rounds, ratios to uvicorn and granian, the raw ceiling,
issue-8 targets) printed to stdout and written with the raw runs as JSON to bench/results/.
Exit status: 0 when every run was measured, 1 when some failed (they are listed), 2 on bad usage.
This script only orchestrates; the pieces are servers.py (command lines), procs.py (processes and
/proc), wrk.py (load), scoreboard.py (per-worker counts), report.py (medians and tables).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import procs
import report
import scenarios
import scoreboard
import servers
import wrk

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
HOST: Final = "127.0.0.1"
SCALING_LEVELS: Final = "1,2,4,8"
# Workers report their counters once a second (docs/architecture.md#control-channel): an idle pause this long before
# reading the scoreboard makes it include every request sent so far.
SCOREBOARD_SETTLE: Final = 1.2
# A worker that dies because the load stopped (clients closing) does so within moments: look again
# this long after wrk ends before calling the run clean.
EXIT_SETTLE: Final = 0.3


@dataclass(frozen=True, slots=True, kw_only=True)
class Options:
    rounds: int
    duration: float
    warmup: float
    connections: int
    threads: int
    levels: tuple[int, ...]  # worker counts
    servers: tuple[servers.Server, ...]
    scenarios: tuple[scenarios.Scenario, ...]
    server_cores: str
    client_cores: str
    out_dir: Path


def default_cores(allowed: Sequence[int], multi: bool) -> tuple[str, str]:
    """(server cores, client cores): halves on 4+ CPUs (one server core unless multi-worker);
    otherwise the first CPU serves and the second loads."""
    cpus = sorted(allowed)
    if len(cpus) >= 4:
        half = len(cpus) // 2
        server = cpus[:half] if multi else cpus[:1]
        return ",".join(map(str, server)), ",".join(map(str, cpus[half:]))
    if len(cpus) >= 2:
        return str(cpus[0]), ",".join(map(str, cpus[1:]))
    return str(cpus[0]), str(cpus[0])


def parse_args(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(
        description="Benchmark aioprefork against uvicorn, granian, gunicorn and a raw ceiling.",
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--duration", type=float, default=5.0, help="seconds per run (default 5)")
    parser.add_argument("--warmup", type=float, default=1.0, help="warm-up seconds (default 1)")
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default 64)")
    parser.add_argument("--threads", type=int, default=0, help="wrk -t (default: client cores)")
    parser.add_argument(
        "--scenarios",
        default="",
        help="comma list of "
        + ",".join(scenarios.BY_NAME)
        + " or frameworks (all four framework ones); default: the non-framework ones (hello "
        "with --scaling)",
    )
    parser.add_argument(
        "--servers",
        default="",
        help="comma list of " + ",".join(servers.SERVERS) + " (default "
        f"{','.join(servers.DEFAULT_SINGLE)}; gunicorn added with more than one worker)",
    )
    parser.add_argument("--workers", type=int, default=1, help="worker processes per server")
    parser.add_argument(
        "--scaling",
        nargs="?",
        const=SCALING_LEVELS,
        default="",
        metavar="N,N,...",
        help=f"run every worker count in the list (default {SCALING_LEVELS})",
    )
    parser.add_argument("--server-cores", default="", help="taskset list for servers")
    parser.add_argument("--client-cores", default="", help="taskset list for wrk")
    parser.add_argument(
        "--out-dir", type=Path, default=HERE / "results", help="where <timestamp>.md/.json go"
    )
    args = parser.parse_args(argv)

    levels = tuple(int(n) for n in args.scaling.split(",")) if args.scaling else (args.workers,)
    if min(levels) < 1 or args.rounds < 1 or args.duration <= 0 or args.connections < 1:
        parser.error("--workers/--scaling >= 1, --rounds >= 1, --duration > 0, --connections >= 1")
    multi = max(levels) > 1
    default_servers = servers.DEFAULT_MULTI if multi else servers.DEFAULT_SINGLE
    server_cores, client_cores = default_cores(sorted(os.sched_getaffinity(0)), multi)
    server_cores = args.server_cores or server_cores
    client_cores = args.client_cores or client_cores
    try:
        chosen_servers, notes = servers.select(
            args.servers or ",".join(default_servers), max(levels)
        )
        chosen_scenarios = scenarios.select(
            args.scenarios or ("hello" if args.scaling else ",".join(scenarios.DEFAULT))
        )
        client = procs.parse_cpus(client_cores)
        procs.parse_cpus(server_cores)
    except ValueError as exc:
        parser.error(str(exc))
    for note in notes:
        print(f"note: {note}", file=sys.stderr)
    if not chosen_servers or not chosen_scenarios:
        parser.error("nothing to run")
    return Options(
        rounds=args.rounds,
        duration=args.duration,
        warmup=args.warmup,
        connections=args.connections,
        threads=args.threads or max(1, min(len(client), args.connections)),
        levels=levels,
        servers=chosen_servers,
        scenarios=chosen_scenarios,
        server_cores=server_cores,
        client_cores=client_cores,
        out_dir=args.out_dir,
    )


def check_answer(scenario: scenarios.Scenario, port: int) -> None:
    """One request of the scenario's shape; a wrong answer must not be benchmarked."""
    status, body = procs.fetch(
        HOST, port, scenario.path, scenario.method, scenario.request_body, timeout=5.0
    )
    if status != 200 or body != scenario.expected_body:
        raise procs.ServerFailed(
            f"wrong answer to {scenario.method} {scenario.path}: status {status}, "
            f"{len(body)} bytes (expected 200, {len(scenario.expected_body)} bytes)"
        )


def load(opts: Options, scenario: scenarios.Scenario, port: int, seconds: float) -> wrk.WrkRun:
    argv = wrk.command(
        url=f"http://{HOST}:{port}{scenario.path}",
        seconds=seconds,
        connections=opts.connections,
        threads=opts.threads,
        cores=opts.client_cores,
        lua=scenario.lua,
        headers=scenario.headers,
    )
    return wrk.run(argv, seconds)


def launch_server(
    opts: Options,
    server: servers.Server,
    workers: int,
    log: Path,
    workdir: Path,
    app: str = servers.APP,
) -> tuple[subprocess.Popen[bytes], servers.Launch, float]:
    """Start the server on a free port and wait until it answers: (process, launch, seconds).

    A free port can be taken by someone else between the probe and the server's bind: one retry.
    """
    for attempt in (1, 2):
        port = procs.free_port(HOST)
        launch = servers.Launch(
            host=HOST,
            port=port,
            workers=workers,
            metrics_port=procs.free_port(HOST),
            ctl_socket=str(workdir / f"ctl-{port}.sock"),
            app=app,
        )
        proc = procs.start(servers.command(server, launch), opts.server_cores, log, ROOT)
        try:
            return proc, launch, procs.wait_ready(proc, HOST, port, log)
        except BaseException as exc:
            procs.stop(proc)
            if attempt == 2 or "in use" not in str(exc).lower():
                raise
    raise AssertionError("unreachable")


def read_scoreboard(server: servers.Server, launch: servers.Launch) -> scoreboard.Counts | None:
    """Per-worker counts, multi-worker runs only, once the workers' status frames caught up."""
    if not server.scoreboard or launch.workers < 2:
        return None
    time.sleep(SCOREBOARD_SETTLE)
    return scoreboard.read(servers.BIN, launch.ctl_socket, HOST, launch.metrics_port)


def measure(
    opts: Options,
    server: servers.Server,
    scenario: scenarios.Scenario,
    workers: int,
    round_no: int,
    workdir: Path,
) -> report.Measurement:
    """One run: start, check, warm up, measure, kill. Raises ServerFailed/RuntimeError/ValueError."""
    log = workdir / f"{server.name}-{scenario.name}-n{workers}-r{round_no}.log"
    proc, launch, startup = launch_server(opts, server, workers, log, workdir, scenario.app)
    try:
        check_answer(scenario, launch.port)
        if opts.warmup > 0:
            load(opts, scenario, launch.port, opts.warmup)
        counts_before = read_scoreboard(server, launch)
        before = procs.group(proc.pid, zombies=True)
        output = load(opts, scenario, launch.port, opts.duration)
        # PSS/USS (smaps_rollup) only here, after the window: reading it walks page tables.
        after = procs.group(proc.pid, zombies=True, memory=True)
        counts_after = read_scoreboard(server, launch)
        if proc.poll() is not None:
            raise procs.ServerFailed(f"died during the run:\n{procs.tail(log)}")
        time.sleep(EXIT_SETTLE)
        lost = procs.exited(before, procs.group(proc.pid, zombies=True))
        note = ""
        if lost:
            note = f"{len(lost)} server process(es) exited during or just after the run:\n"
            note += procs.tail(log, 6)
    finally:
        procs.stop(proc)
    result = wrk.parse(output.report)
    used = procs.usage(before, after)
    return report.Measurement(
        round=round_no,
        workers=workers,
        server=server.name,
        scenario=scenario.name,
        rps=result.rps,
        p50_ms=result.p50_ms,
        p99_ms=result.p99_ms,
        requests=result.requests,
        errors=result.errors,
        cpu_seconds=used.cpu_seconds,
        sys_seconds=used.sys_seconds,
        client_busy=wrk.busy(
            output.cpu_seconds, result.seconds, len(procs.parse_cpus(opts.client_cores))
        ),
        rss_total=used.rss_total,
        pss_total=used.pss_total,
        worker_rss=used.worker_rss,
        worker_pss=used.worker_pss,
        worker_uss=used.worker_uss,
        worker_cpu=used.worker_cpu,
        worker_requests=scoreboard.delta(counts_before, counts_after),
        startup_s=startup,
        exited=len(lost),
        note=note,
    )


def _version(package: str) -> str:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def _output(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return ""
    return (done.stdout or done.stderr).strip()


def _substitute(text: str, replacements: dict[str, str]) -> str:
    for old, new in replacements.items():
        text = text.replace(old, new)
    return text


def describe(opts: Options, stamp: str) -> dict[str, Any]:
    """What a reader needs to reproduce or judge the numbers."""
    cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.M)
    commit = _output(["git", "rev-parse", "--short", "HEAD"])
    dirty = " (uncommitted changes)" if _output(["git", "status", "--porcelain"]) else ""
    wrk_version = _output(["wrk", "-v"]).splitlines()
    example = servers.Launch(
        host=HOST, port=10001, workers=opts.levels[0], metrics_port=10002, ctl_socket="CTL_SOCKET"
    )
    placeholders = {str(ROOT) + "/": "", "10001": "PORT", "10002": "METRICS_PORT"}
    return {
        "timestamp": stamp,
        "machine": f"{model.group(1) if model else platform.processor()}, "
        f"{os.cpu_count()} CPUs, Linux {platform.release()}",
        "software": f"Python {platform.python_version()}, "
        + ", ".join(
            f"{p} {_version(p)}"
            for p in ("aioprefork", "uvicorn", "granian", "gunicorn", "uvloop", "httptools")
        )
        + (f", {wrk_version[0].split(' [')[0]}" if wrk_version else ""),
        "commit": f"{commit}{dirty}",
        "settings": f"{opts.rounds} rounds x {opts.duration:g} s (after {opts.warmup:g} s warm-up), "
        f"{opts.connections} connections, {opts.threads} wrk threads, "
        f"workers {','.join(map(str, opts.levels))}",
        "pinning": f"servers on cores {opts.server_cores}, wrk on cores {opts.client_cores}",
        "columns": "medians over rounds; spread = (max - min) / median req/s; CPU = user + system "
        "of the server's whole process group per request, sys = its system (kernel) part; wrk "
        "busy = wrk's CPU time over its run and cores; RSS, PSS (shared pages split among the "
        "processes sharing them) and USS (pages no other process maps) after the run",
        "commands": {
            s.name: _substitute(" ".join(servers.command(s, example)), placeholders)
            for s in opts.servers
        },
    }


def run(opts: Options) -> int:
    workdir = Path(tempfile.mkdtemp(prefix="aioprefork-bench-"))
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    load_before = os.getloadavg()[0]
    runs: list[report.Measurement] = []
    failures: list[report.Failure] = []
    broken: set[str] = set()
    try:
        for round_no in range(1, opts.rounds + 1):
            for workers in opts.levels:
                for server in opts.servers:
                    if server.name in broken:
                        continue
                    for scenario in opts.scenarios:
                        if scenario.framework and server.name == "raw":
                            continue  # canned answers: no framework ceiling (bench/floor.py)
                        tag = f"[round {round_no}/{opts.rounds}] N={workers} {server.name} {scenario.name}"
                        try:
                            m = measure(opts, server, scenario, workers, round_no, workdir)
                        except (procs.ServerFailed, RuntimeError, ValueError) as exc:
                            failures.append(
                                report.Failure(
                                    round=round_no,
                                    workers=workers,
                                    server=server.name,
                                    scenario=scenario.name,
                                    reason=str(exc),
                                )
                            )
                            print(f"{tag}: FAILED {str(exc).splitlines()[0]}", file=sys.stderr)
                            if "wrong answer" not in str(exc):
                                broken.add(server.name)  # it cannot start: skip its other runs
                                break
                            continue
                        runs.append(m)
                        if m.note:
                            print(f"{tag}: WARNING {m.note.splitlines()[0]}", file=sys.stderr)
                        print(
                            f"{tag}: {m.rps:,.0f} req/s, p99 {m.p99_ms:.2f} ms, "
                            f"{m.cpu_us_per_request:.1f} us CPU/req, {m.errors} errors",
                            file=sys.stderr,
                        )
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    summaries = report.summarize(runs)
    meta = describe(opts, stamp)
    # Other work on the machine shows here first: a load above the core count means noise.
    meta["load average"] = f"{load_before:.2f} at start, {os.getloadavg()[0]:.2f} at end"
    commands = meta.pop("commands")
    labels = {s.name: s.label for s in servers.SERVERS.values()}
    descriptions = {s.name: s.description for s in scenarios.SCENARIOS}
    text = report.render(summaries, failures, meta, descriptions, labels, runs)
    text += "\n## Commands\n\n" + "\n".join(f"- {k}: `{v}`" for k, v in commands.items()) + "\n"
    opts.out_dir.mkdir(parents=True, exist_ok=True)
    md, js = opts.out_dir / f"{stamp}.md", opts.out_dir / f"{stamp}.json"
    md.write_text(text)
    data = report.to_json(runs, failures, summaries, meta | {"commands": commands})
    js.write_text(json.dumps(data, indent=2) + "\n")
    print(text)
    print(f"wrote {md} and {js}", file=sys.stderr)
    return 1 if failures or not runs else 0


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    missing = [tool for tool in ("wrk", "taskset") if shutil.which(tool) is None]
    if missing:
        print(f"error: {' and '.join(missing)} not found (make system-deps)", file=sys.stderr)
        return 2
    # Keep the harness itself off the server cores; a TERM still stops the running server.
    os.sched_setaffinity(0, procs.parse_cpus(opts.client_cores))
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    return run(opts)


if __name__ == "__main__":
    sys.exit(main())
