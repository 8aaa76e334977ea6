"""preload on and off: time until N workers are ready, and memory per worker (PSS and USS).

    .venv/bin/python bench/preload.py [--workers 4] [--app examples.starlette_app:app] [--rounds 3]

Each round starts `aioprefork serve APP --workers N` (with and without --preload, interleaved),
polls `ctl status --json` until N workers of generation 1 are READY (the time to ready, from
the start of the process), then reads every worker's /proc/<pid>/smaps_rollup. PSS splits a page
shared copy-on-write among the processes mapping it, so a preloaded app's module pages count
1/N+1 in each worker; USS counts only what a worker alone holds.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from procs import free_port, read_memory, start, stop

from aioprefork.control import protocol

ROOT = Path(__file__).resolve().parents[1]
AIOPREFORK = str(Path(sys.executable).with_name("aioprefork"))


def ready_workers(ctl: Path, count: int) -> list[int] | None:
    """The READY workers' pids once there are `count` of them (straight on the control socket:
    a `ctl` process per poll would cost more than what is measured)."""
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(5)
            sock.connect(str(ctl))
            sock.sendall(protocol.encode(protocol.request("status")))
            decoder = protocol.FrameDecoder()
            frames: list[dict[str, Any]] = []
            while not frames:
                data = sock.recv(1 << 20)
                if not data:
                    return None
                frames = decoder.feed(data)
    except OSError:
        return None
    snap = frames[-1]["snapshot"]
    pids = [s["pid"] for s in snap["slots"] if s["state"] == "ready" and s["current"]]
    return pids if len(pids) >= count else None


def one(app: str, workers: int, preload: bool, cores: str) -> tuple[float, float, float]:
    """(seconds to ready, mean PSS MiB per worker, mean USS MiB per worker)."""
    with tempfile.TemporaryDirectory(prefix="apf-preload-") as tmp:
        ctl = Path(tmp) / "ctl"
        argv = [AIOPREFORK, "serve", app, "--workers", str(workers), "--min-workers", str(workers)]
        argv += ["--port", str(free_port())]
        argv += ["--ctl-socket", str(ctl), "--no-metrics", "--no-access-log"]
        argv += ["--preload"] if preload else []
        began = time.monotonic()
        proc = start(argv, cores, Path(tmp) / "log", ROOT)
        try:
            while (pids := ready_workers(ctl, workers)) is None:
                if proc.poll() is not None or time.monotonic() - began > 60:
                    raise SystemExit((Path(tmp) / "log").read_text())
                time.sleep(0.005)
            took = time.monotonic() - began
            time.sleep(0.5)  # let the workers settle (lifespan, first GC)
            memory = [read_memory(pid) for pid in pids]
        finally:
            stop(proc)
    mib = 1024 * 1024
    return (
        took,
        statistics.mean(m[0] for m in memory) / mib,
        statistics.mean(m[1] for m in memory) / mib,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app", default="examples.starlette_app:app")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--cores", default="0", help="taskset CPU list for the server")
    args = parser.parse_args()
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for _ in range(args.rounds):
        for preload in (False, True):
            results[preload].append(one(args.app, args.workers, preload, args.cores))
    print(f"{args.app}, {args.workers} workers, {args.rounds} rounds (medians)")
    print("| preload | time to ready (s) | PSS per worker (MiB) | USS per worker (MiB) |")
    print("|---|---:|---:|---:|")
    for preload, rows in results.items():
        ready, pss, uss = (statistics.median(col) for col in zip(*rows, strict=True))
        print(f"| {'on' if preload else 'off'} | {ready:.2f} | {pss:.1f} | {uss:.1f} |")


if __name__ == "__main__":
    main()
