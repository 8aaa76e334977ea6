"""Where a reconnected connection's first request waits: a per-connection trace under wrk.

    sudo .venv/bin/python bench/accept_trace.py [--limit 100] [--connections 256] [--duration 2]

One worker (fixed pool, compiled when build/compiled exists) on core 0 serves examples/hello.py
with `--max-keepalive-requests LIMIT`; wrk loads it from core 1 with --latency. Meanwhile
tcpdump records every packet on loopback for the server's port (headers only) and perf records
the worker's accept4 returns (the syscalls:sys_exit_accept4 tracepoint). From those:

* each request's latency (the client's request packet to the server's first response packet),
  split into a connection's first request and every later one;
* how long a connection waited in the kernel's accept queue: its handshake completing (the
  client's ACK) to the accept4 that took it (the queue is FIFO: the n-th accept takes the n-th
  completed handshake);
* how many accept4 calls found the queue empty (EAGAIN).

Needs root (tcpdump, perf), tcpdump, perf and wrk. This is how the tail at 256 connections was
traced to one accept per loop turn (bench/README.md, "The tail at 256 connections").
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SYN, ACK = 0x02, 0x10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_answering(port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"the server did not answer on port {port}")


def packets(pcap: Path) -> list[tuple[float, int, int, int, int]]:
    """(time, source port, destination port, TCP flags, payload length) of every packet."""
    out: list[tuple[float, int, int, int, int]] = []
    with pcap.open("rb") as f:
        header = f.read(24)
        nano = struct.unpack("<I", header[:4])[0] == 0xA1B23C4D
        link = struct.unpack("<I", header[20:24])[0]
        offset = 14 if link == 1 else 16  # Ethernet (lo), else Linux cooked capture
        while len(record := f.read(16)) == 16:
            seconds, fraction, included, _ = struct.unpack("<IIII", record)
            ip = f.read(included)[offset:]
            ihl = (ip[0] & 15) * 4
            total = struct.unpack(">H", ip[2:4])[0]
            tcp = ip[ihl:]
            sport, dport = struct.unpack(">HH", tcp[:4])
            data_offset = (tcp[12] >> 4) * 4
            when = seconds + fraction / (1e9 if nano else 1e6)
            out.append((when, sport, dport, tcp[13], total - ihl - data_offset))
    return out


def accept_times(perf_data: Path, clock_offset: float) -> tuple[list[float], int]:
    """Wall-clock times of the accept4 calls that returned a connection, and the EAGAIN count."""
    script = subprocess.run(
        ["perf", "script", "-i", str(perf_data), "-F", "time,trace"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    taken: list[float] = []
    empty = 0
    for line in script.splitlines():
        stamp, _, trace = line.partition(":")
        value = int(trace.split()[-1], 16)
        if value >= 1 << 63:
            empty += 1
        else:
            taken.append(float(stamp) + clock_offset)
    return taken, empty


def quantiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)

    def at(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    return f"p50 {at(0.5):.2f} / p99 {at(0.99):.2f} / max {ordered[-1]:.2f} ms ({len(values):,})"


def analyse(port: int, pcap: Path, perf_data: Path, clock_offset: float) -> None:
    first: list[float] = []
    later: list[float] = []
    handshakes: list[float] = []
    waiting: dict[int, tuple[float, bool]] = {}  # client port -> (request sent, first on it)
    fresh: set[int] = set()
    syn_seen: set[int] = set()
    for when, sport, dport, flags, payload in packets(pcap):
        if dport == port:  # client -> server
            if flags & SYN:
                syn_seen.add(sport)
                fresh.add(sport)
            elif sport in syn_seen and flags & ACK:
                syn_seen.discard(sport)
                handshakes.append(when)
            if payload and sport not in waiting:
                waiting[sport] = (when, sport in fresh)
                fresh.discard(sport)
        elif payload and dport in waiting:  # the response's first packet
            sent, is_first = waiting.pop(dport)
            (first if is_first else later).append((when - sent) * 1000)
    taken, empty = accept_times(perf_data, clock_offset)
    taken = [t for t in taken if handshakes and t >= handshakes[0] - 0.001]
    waits = [(a - h) * 1000 for a, h in zip(taken, handshakes, strict=False)]
    print(f"a connection's first request: {quantiles(first)}")
    print(f"every later request:          {quantiles(later)}")
    print(f"handshake done -> accept4:    {quantiles(waits)}")
    print(f"accept4 calls: {len(taken) + empty:,}, of which found the queue empty: {empty:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--limit", type=int, default=100, help="--max-keepalive-requests")
    parser.add_argument("--connections", type=int, default=256)
    parser.add_argument("--duration", type=int, default=2)
    parser.add_argument("--server-cpus", default="0")
    parser.add_argument("--client-cpus", default="1")
    args = parser.parse_args()
    port = free_port()
    env = dict(os.environ)
    if (ROOT / "build" / "compiled").is_dir():
        env["PYTHONPATH"] = str(ROOT / "build" / "compiled")
    work = Path(tempfile.mkdtemp(prefix="accept-trace-"))
    server = subprocess.Popen(
        ["taskset", "-c", args.server_cpus, str(Path(sys.executable).parent / "aioprefork"),
         "serve", "examples.hello:app", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "--min-workers", "1", "--max-workers", "1", "--no-access-log", "--no-metrics",
         "--ctl-socket", str(work / "ctl"), "--max-keepalive-requests", str(args.limit)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_answering(port)
        worker = subprocess.run(
            ["pgrep", "-P", str(server.pid)], capture_output=True, text=True, check=True
        ).stdout.split()[0]
        url = f"http://127.0.0.1:{port}/"
        wrk = ["taskset", "-c", args.client_cpus, "wrk", "-t1", f"-c{args.connections}"]
        subprocess.run([*wrk, "-d1", url], capture_output=True, check=True)  # warm-up
        pcap, perf_data = work / "lo.pcap", work / "perf.data"
        tcpdump = subprocess.Popen(
            ["taskset", "-c", args.client_cpus, "tcpdump", "-i", "lo", "-s", "80", "-B",
             "200000", "-w", str(pcap), f"tcp port {port}"],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        perf = subprocess.Popen(
            ["taskset", "-c", args.client_cpus, "perf", "record", "-k", "CLOCK_MONOTONIC",
             "-q", "-o", str(perf_data), "-e", "syscalls:sys_exit_accept4", "-p", worker],
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)
        load = subprocess.run(
            [*wrk, f"-d{args.duration}", "--latency", url],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        time.sleep(0.3)
        clock_offset = time.time() - time.monotonic()
        for proc in (tcpdump, perf):
            proc.send_signal(signal.SIGINT)
            proc.wait(timeout=30)
        print(
            "wrk:", " | ".join(
                line.strip() for line in load.stdout.splitlines()
                if line.strip().startswith(("50%", "99%", "Requests/sec"))
            ),
        )  # fmt: skip
        analyse(port, pcap, perf_data, clock_offset)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
