"""wrk: the load generator's command line and a parser for its `--latency` report.

`parse(text)` is pure and reads the report wrk prints, for example:

      1 threads and 64 connections
      Thread Stats   Avg      Stdev     Max   +/- Stdev
        Latency   1.23ms  200.00us   5.00ms   90.00%
      Latency Distribution
         50%    1.20ms
         99%    2.00ms
      50000 requests in 1.00s, 6.00MB read
      Socket errors: connect 0, read 0, write 0, timeout 0
      Non-2xx or 3xx responses: 10
    Requests/sec:  50000.00

Latencies come back in milliseconds. A report without the lines the benchmark needs raises
ValueError rather than yielding zeros.
"""

from __future__ import annotations

import re
import resource
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Final

TIME_UNITS: Final = {"us": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_PERCENTILE = re.compile(r"^\s*(\d+(?:\.\d+)?)%\s+(\d+(?:\.\d+)?)(us|ms|s|m|h)\s*$", re.M)
_TOTAL = re.compile(r"^\s*(\d+) requests in (\d+(?:\.\d+)?)(us|ms|s|m|h),", re.M)
_RPS = re.compile(r"^Requests/sec:\s+(\d+(?:\.\d+)?)", re.M)
_SOCKET_ERRORS = re.compile(
    r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", re.M
)
_NON_2XX = re.compile(r"Non-2xx or 3xx responses: (\d+)", re.M)


@dataclass(frozen=True, slots=True, kw_only=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int  # socket errors (connect + read + write + timeout) + non-2xx/3xx responses


def parse(text: str) -> WrkResult:
    """wrk's `--latency` report -> WrkResult; ValueError if a needed line is missing."""
    percentiles = {
        float(p): float(v) * TIME_UNITS[unit] for p, v, unit in _PERCENTILE.findall(text)
    }
    total, rps = _TOTAL.search(text), _RPS.search(text)
    if total is None or rps is None or 50.0 not in percentiles or 99.0 not in percentiles:
        raise ValueError(f"not a wrk --latency report:\n{text}")
    socket_errors = _SOCKET_ERRORS.search(text)
    non_2xx = _NON_2XX.search(text)
    errors = sum(int(n) for n in socket_errors.groups()) if socket_errors else 0
    errors += int(non_2xx.group(1)) if non_2xx else 0
    return WrkResult(
        requests=int(total.group(1)),
        seconds=float(total.group(2)) * TIME_UNITS[total.group(3)] / 1000.0,
        rps=float(rps.group(1)),
        p50_ms=percentiles[50.0],
        p99_ms=percentiles[99.0],
        errors=errors,
    )


def command(
    *,
    url: str,
    seconds: float,
    connections: int,
    threads: int,
    cores: str,
    lua: Path | None = None,
    headers: tuple[str, ...] = (),
) -> list[str]:
    """wrk pinned to `cores` (wrk takes whole seconds; anything shorter rounds up to 1 s)."""
    argv = ["taskset", "-c", cores, "wrk", "--latency"]
    argv += ["-t", str(threads), "-c", str(connections), "-d", f"{max(1, round(seconds))}s"]
    if lua is not None:
        argv += ["-s", str(lua)]
    for header in headers:
        argv += ["-H", header]
    return [*argv, url]


@dataclass(frozen=True, slots=True)
class WrkRun:
    report: str  # what wrk printed
    cpu_seconds: float  # wrk's own user + system time: is the client the bottleneck?


def busy(cpu_seconds: float, seconds: float, cores: int) -> float:
    """Share of its cores that wrk kept busy; near 1.0 the client, not the server, set req/s."""
    return cpu_seconds / (seconds * cores) if seconds > 0 and cores > 0 else 0.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(argv: list[str], seconds: float) -> WrkRun:
    """Run wrk to completion: its report and CPU time (RuntimeError if it fails).

    wrk's CPU time is read as the growth of this process's reaped-children usage across the run
    (taskset execs wrk in place, and nothing else is reaped meanwhile).
    """
    before = _children_cpu()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 30, check=False)
    used = _children_cpu() - before
    if done.returncode != 0:
        raise RuntimeError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return WrkRun(done.stdout, used)
