"""HTTP/2 benchmark: aioprefork against granian and hypercorn, with h2load (nghttp2-client).

    .venv/bin/python bench/h2.py [--duration 5] [--rounds 1] [--servers aioprefork,granian,hypercorn]
                                 [--scenarios h2c-m10,h2c-m1,tls-m10] [--server-cpus 0 --client-cpus 1]
    .venv/bin/python bench/h2.py --soak 1000000       # one connection, N streams, RSS before/after

Each run: a fresh server (one worker, examples/hello.py, pinned to the server cores), a warm-up,
then `h2load -c64 -m10` (or -m1) for --duration seconds pinned to the client cores, the server's
process tree sampled from /proc around it. Reported per run: req/s, mean and p99 latency (from
h2load's per-request log), CPU microseconds per request of the whole server tree (the stable
figure on a shared machine), and the load average as the run began. aioprefork runs its mypyc
build when `make compiled` has built it (build/compiled), as bench/run.py does.

Needs: h2load (Debian nghttp2-client), granian and hypercorn (pip install -e '.[bench]'),
openssl (a throwaway certificate for the TLS scenario).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import procs
import servers

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent
HOST: Final = "127.0.0.1"
BIN: Final = Path(sys.executable).parent
APP: Final = "examples.hello:app"
SCENARIOS: Final = {
    "h2c-m10": (False, 10),
    "h2c-m1": (False, 1),
    "tls-m10": (True, 10),
}
CLIENTS: Final = 64


@dataclass(frozen=True, slots=True)
class Result:
    server: str
    scenario: str
    rps: float
    mean_ms: float
    p99_ms: float
    cpu_us: float  # CPU of the server's process tree per request, microseconds
    failed: int
    load: float  # 1-minute load average when the run began


def _certificate(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "2", "-subj", "/CN=localhost"],
        check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return cert, key


def _command(server: str, port: int, tls: tuple[Path, Path] | None) -> list[str]:
    if server == "aioprefork":
        argv = [
            str(BIN / "aioprefork"), "serve", APP, "--host", HOST, "--port", str(port),
            "--workers", "1", "--min-workers", "1", "--max-workers", "1",
            "--no-access-log", "--log-level", "warning", "--no-metrics",
        ]  # fmt: skip
        if tls:
            argv += ["--ssl-certfile", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        if servers.compiled_available():
            argv = ["env", f"PYTHONPATH={servers.COMPILED}", *argv]
        return argv
    if server == "granian":
        argv = [
            str(BIN / "granian"), "--interface", "asgi", "--loop", "uvloop", "--http", "2",
            "--no-ws", "--host", HOST, "--port", str(port), "--workers", "1", APP,
        ]  # fmt: skip
        if tls:
            argv[-1:-1] = ["--ssl-certificate", str(tls[0]), "--ssl-keyfile", str(tls[1])]
        return argv
    if server == "hypercorn":
        argv = [str(BIN / "hypercorn"), APP, "-b", f"{HOST}:{port}", "-w", "1", "-k", "uvloop"]
        if tls:
            argv += ["--certfile", str(tls[0]), "--keyfile", str(tls[1])]
        return argv
    raise SystemExit(f"unknown server {server!r}")


def _h2load(
    url: str, streams: int, duration: float, cores: str, log: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["taskset", "-c", cores, "h2load", "-c", str(CLIENTS), "-m", str(streams), "-t", "1",
         "-D", str(int(duration)), "--warm-up-time", "1", "--log-file", str(log), url],
        capture_output=True, text=True, timeout=duration + 60,
    )  # fmt: skip


def _wait_h2(url: str, timeout: float = 30.0) -> None:
    began = time.monotonic()
    while time.monotonic() - began < timeout:
        done = subprocess.run(["h2load", "-n", "1", "-c", "1", url], capture_output=True, text=True)
        if "1 succeeded" in done.stdout:
            return
        time.sleep(0.2)
    raise SystemExit(f"no HTTP/2 answer from {url} within {timeout:.0f} s")


def _p99(log: Path) -> float:
    durations = sorted(
        int(line.split()[2]) for line in log.read_text().splitlines() if line.strip()
    )  # lines: start-time(us) status duration(us)
    if not durations:
        return 0.0
    return durations[min(len(durations) - 1, int(len(durations) * 0.99))] / 1000


def run_one(server: str, scenario: str, args: argparse.Namespace, work: Path) -> Result:
    tls_on, streams = SCENARIOS[scenario]
    tls = _certificate(work) if tls_on else None
    port = procs.free_port()
    url = f"{'https' if tls else 'http'}://{HOST}:{port}/"
    log = work / f"{server}-{scenario}.log"
    proc = procs.start(_command(server, port, tls), args.server_cpus, log, ROOT)
    try:
        _wait_h2(url)
        load = os.getloadavg()[0]
        before = procs.group(proc.pid)
        requests_log = work / f"{server}-{scenario}.h2load"
        done = _h2load(url, streams, args.duration, args.client_cpus, requests_log)
        after = procs.group(proc.pid)
    finally:
        procs.stop(proc)
    out = done.stdout
    finished = re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", out)
    counts = re.search(
        r"requests: (\d+) total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed", out
    )
    mean = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms)", out)
    if not finished or not counts:
        raise SystemExit(f"h2load failed against {server}:\n{out}\n{done.stderr}")
    rps = float(finished.group(1))
    usage = procs.usage(before, after)
    done_requests = int(counts.group(2))
    mean_ms = (
        float(mean.group(1)) / (1000 if mean and mean.group(2) == "us" else 1) if mean else 0.0
    )
    return Result(
        server=server,
        scenario=scenario,
        rps=rps,
        mean_ms=mean_ms,
        p99_ms=_p99(requests_log),
        # the usage window includes the warm-up second: divide by every request h2load made
        cpu_us=usage.cpu_seconds * 1e6 / max(1, done_requests),
        failed=int(counts.group(4)),
        load=load,
    )


def soak(streams: int, work: Path) -> None:
    """One connection, `streams` requests: failures and the worker's RSS before/after."""
    port = procs.free_port()
    url = f"http://{HOST}:{port}/"
    log = work / "soak.log"
    proc = procs.start(_command("aioprefork", port, None), "0-63", log, ROOT)
    try:
        _wait_h2(url)
        subprocess.run(["h2load", "-n", "20000", "-c", "1", "-m", "100", url], capture_output=True)
        rss_before = max(info.rss for info in procs.group(proc.pid).values())
        began = time.monotonic()
        done = subprocess.run(
            ["h2load", "-n", str(streams), "-c", "1", "-m", "100", url],
            capture_output=True, text=True, timeout=3600,
        )  # fmt: skip
        rss_after = max(info.rss for info in procs.group(proc.pid).values())
    finally:
        procs.stop(proc)
    match = re.search(r"requests: .*", done.stdout)
    print(f"soak: {streams} streams on one connection in {time.monotonic() - began:.0f} s")
    print(f"  {match.group(0) if match else done.stdout[-500:]}")
    print(f"  worker RSS {rss_before / 2**20:.1f} MiB -> {rss_after / 2**20:.1f} MiB")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--servers", default="aioprefork,granian,hypercorn")
    parser.add_argument("--scenarios", default=",".join(SCENARIOS))
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    parser.add_argument("--soak", type=int, default=0, help="streams on one connection")
    args = parser.parse_args()
    if shutil.which("h2load") is None:
        raise SystemExit("h2load is missing: make system-deps (Debian nghttp2-client)")
    with tempfile.TemporaryDirectory(prefix="h2bench-") as tmp:
        work = Path(tmp)
        if args.soak:
            soak(args.soak, work)
            return 0
        results: list[Result] = []
        for _ in range(args.rounds):
            for scenario in args.scenarios.split(","):
                for server in args.servers.split(","):
                    result = run_one(server, scenario, args, work)
                    results.append(result)
                    print(result, flush=True)
    print()
    print("| scenario | server | req/s | mean ms | p99 ms | CPU us/req | failed | load |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(
            f"| {r.scenario} | {r.server} | {r.rps:,.0f} | {r.mean_ms:.2f} | {r.p99_ms:.2f} "
            f"| {r.cpu_us:.1f} | {r.failed} | {r.load:.1f} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
