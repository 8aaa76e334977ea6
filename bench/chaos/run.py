"""The chaos suite: the reliability audit of issue 18 as a reproducible run (`make chaos`).

Each scenario starts a real `aioprefork serve` (bench/chaos/app.py; a fixed pool of 2 workers unless said, as
the audit ran) on 127.0.0.1, puts it under
load, faults or hostile clients, and prints its figures beside PASS/FAIL: requests answered and
failed (counting clients), the longest outage (no probe on a fresh connection answered for that
long; probes every 50 ms), the peak RSS of any worker, and what the scenario itself checks.

    .venv/bin/python bench/chaos/run.py                      # every scenario (about 7 minutes)
    .venv/bin/python bench/chaos/run.py --quick              # shorter runs (what tests/ runs)
    .venv/bin/python bench/chaos/run.py crash-storm kill9-storm

Exit status 0 when every scenario run passed. The slow-client scenarios need slowhttptest
(`make system-deps`); README "Reliability" lists the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioprefork.master.daemon import runtime_dir

HERE = Path(__file__).resolve().parent
AIOPREFORK = str(Path(sys.executable).with_name("aioprefork"))
MIB = 1 << 20
PAGE = os.sysconf("SC_PAGE_SIZE")
PROBE_EVERY = 0.05


# --- the server under test -------------------------------------------------------------------------


class Server:
    """`aioprefork serve app:app` on an inherited listening socket, with a private directory for
    its control socket and pid file; killed with every child at the end."""

    def __init__(self, *flags: str, port: int | None = None, default_ctl: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="apf-chaos-"))
        self.ctl_path = str(self.dir / "ctl")
        self.pid_file = str(self.dir / "pid")
        args = [AIOPREFORK, "serve", "app:app", "--app-dir", str(HERE), "--log-level", "info"]
        args += ["--no-access-log"]
        if default_ctl:  # the default path: <runtime dir>/aioprefork-<port>.ctl
            self.where = ["--port", str(port)]
        else:
            args += ["--ctl-socket", self.ctl_path, "--pid-file", self.pid_file]
            self.where = ["--ctl-socket", self.ctl_path, "--pid-file", self.pid_file]
        fds: tuple[int, ...] = ()
        listener = None
        if port is None:
            listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
            self.port = listener.getsockname()[1]
            fds = (listener.fileno(),)
            args += ["--bind", f"fd://{listener.fileno()}"]
        else:
            self.port = port
            args += ["--bind", f"127.0.0.1:{port}"]
        self.stderr_path = self.dir / "stderr"
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                [*args, *flags],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=fds,
                start_new_session=True,
            )
        if listener is not None:
            listener.close()
        self.seen: set[int] = set()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def workers(self) -> list[int]:
        found = children(self.proc.pid)
        self.seen.update(found)
        return found

    def ctl(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIOPREFORK, "ctl", *args, *self.where], capture_output=True, text=True, timeout=timeout
        )

    def status(self) -> dict[str, Any]:
        done = self.ctl("status", "--json", timeout=15)
        if done.returncode != 0:
            return {}
        snapshot: dict[str, Any] = json.loads(done.stdout)
        return snapshot

    async def ready(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited {self.proc.returncode}: {self.stderr[-2000:]}")
            snap = await asyncio.to_thread(self.status)
            slots = snap.get("slots", [])
            if sum(s["state"] == "ready" and s["current"] for s in slots) >= count:
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"not ready after {timeout}s: {self.stderr[-2000:]}")

    def kill(self) -> None:
        self.workers()
        for pid in [self.proc.pid, *self.seen]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, ValueError, IndexError):
        return 0


@contextlib.asynccontextmanager
async def serving(*flags: str, workers: int = 2, **kw: Any) -> AsyncIterator[Server]:
    fixed = ("--min-workers", str(workers), "--max-workers", str(workers))  # a fixed pool
    server = Server("--workers", str(workers), *fixed, *flags, **kw)
    try:
        await server.ready(workers)
        yield server
    finally:
        server.kill()


# --- clients that count ----------------------------------------------------------------------------


@dataclass
class Counts:
    ok: int = 0
    failed: int = 0
    errors: dict[str, int] = field(default_factory=dict)

    def fail(self, why: str) -> None:
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    length, keep = 0, True
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            length = int(value)
        elif name == "connection" and value.strip().lower() == "close":
            keep = False
    await reader.readexactly(length)
    return status, keep


async def client(port: int, path: str, counts: Counts, stop: asyncio.Event, keep: bool) -> None:
    """Requests in a loop, on one keep-alive connection (reopened when the server ends it) or a
    fresh connection each (keep=False). Every request not answered 200 is a failure."""
    request = f"GET {path} HTTP/1.1\r\nHost: chaos\r\n{'' if keep else 'Connection: close'}\r\n\r\n"
    data = request.replace("\r\n\r\n\r\n", "\r\n\r\n").encode()
    writer: asyncio.StreamWriter | None = None
    reader: asyncio.StreamReader | None = None
    while not stop.is_set():
        try:
            if writer is None:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port), 10
                )
            assert reader is not None
            writer.write(data)
            status, again = await asyncio.wait_for(read_response(reader), 30)
            if status == 200:
                counts.ok += 1
            else:
                counts.fail(f"status {status}")
            if not (keep and again):
                writer.close()
                writer = None
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            counts.fail(type(exc).__name__)
            if writer is not None:
                writer.close()
            writer = None
            await asyncio.sleep(0.01)
    if writer is not None:
        writer.close()


async def one_request(port: int, path: str, counts: Counts, timeout: float) -> bool:
    """One request on a fresh connection; True when answered 200."""
    writer = None
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), timeout)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n".encode())
        status, _ = await asyncio.wait_for(read_response(reader), timeout)
    except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
        counts.fail(type(exc).__name__)
        return False
    finally:
        if writer is not None:
            writer.close()
    if status != 200:
        counts.fail(f"status {status}")
        return False
    counts.ok += 1
    return True


@dataclass
class Probe:
    """A fresh connection every PROBE_EVERY; the outage is the longest time with no answer."""

    port: int
    counts: Counts = field(default_factory=Counts)
    outage: float = 0.0
    last_ok: float = 0.0

    async def run(self, stop: asyncio.Event) -> None:
        self.last_ok = time.monotonic()
        while not stop.is_set():
            answered = await one_request(self.port, "/", self.counts, timeout=5)
            now = time.monotonic()
            if answered:
                self.outage = max(self.outage, now - self.last_ok)
                self.last_ok = now
            await asyncio.sleep(PROBE_EVERY)
        self.outage = max(self.outage, time.monotonic() - self.last_ok)


@dataclass
class Load:
    """Counting clients, a probe and an RSS sampler, for the length of an `async with`."""

    server: Server
    path: str = "/"
    keepalive: int = 4
    closing: int = 2
    counts: Counts = field(default_factory=Counts)
    probe: Probe | None = None
    peak_rss: int = 0
    fewest_workers: int = 1 << 30
    longest_empty: float = 0.0

    async def _sample(self, stop: asyncio.Event) -> None:
        empty_since: float | None = None
        while not stop.is_set():
            workers = self.server.workers()
            now = time.monotonic()
            self.fewest_workers = min(self.fewest_workers, len(workers))
            if workers:
                if empty_since is not None:
                    self.longest_empty = max(self.longest_empty, now - empty_since)
                empty_since = None
            elif empty_since is None:
                empty_since = now
            for pid in workers:
                self.peak_rss = max(self.peak_rss, rss(pid))
            await asyncio.sleep(0.005)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        stop = asyncio.Event()
        self.probe = Probe(self.server.port)
        port, path = self.server.port, self.path
        tasks = [
            *(client(port, path, self.counts, stop, True) for _ in range(self.keepalive)),
            *(client(port, path, self.counts, stop, False) for _ in range(self.closing)),
            self.probe.run(stop),
            self._sample(stop),
        ]
        running = [asyncio.ensure_future(t) for t in tasks]
        try:
            yield self
        finally:
            stop.set()
            await asyncio.gather(*running)


# --- results ---------------------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    passed: bool
    ok: int | None = None
    failed: int | None = None
    outage: float | None = None
    peak_rss: int | None = None
    note: str = ""

    def row(self) -> str:
        def fmt(value: Any, spec: str) -> str:
            return "-" if value is None else format(value, spec)

        rss_mib = None if self.peak_rss is None else self.peak_rss / MIB
        return (
            f"| {self.name} | {'PASS' if self.passed else 'FAIL'} | {fmt(self.ok, ',')} | "
            f"{fmt(self.failed, ',')} | {fmt(self.outage, '.2f')} | {fmt(rss_mib, '.0f')} | "
            f"{self.note} |"
        )


def from_load(name: str, load: Load, passed: bool, note: str) -> Result:
    assert load.probe is not None
    return Result(
        name,
        passed,
        ok=load.counts.ok + load.probe.counts.ok,
        failed=load.counts.failed + load.probe.counts.failed,
        outage=load.probe.outage,
        peak_rss=load.peak_rss,
        note=note,
    )


# --- the scenarios ---------------------------------------------------------------------------------


async def graceful_under_load(quick: bool) -> Result:
    """`ctl graceful` x20 under load: every request answered."""
    times = 3 if quick else 20
    async with serving() as server:
        load = Load(server, keepalive=6, closing=3)
        refused = 0
        async with load.running():
            for _ in range(times):
                done = await asyncio.to_thread(server.ctl, "graceful")
                refused += done.returncode != 0
                await asyncio.sleep(0.3)
        passed = load.counts.failed == 0 and refused == 0
        return from_load(f"graceful x{times} under load", load, passed, f"{refused} refused")


async def crash_storm(quick: bool) -> Result:
    """A request that crashes its worker (SIGSEGV / os._exit) every 2 s: service stays up."""
    period, length = (1.0, 6.0) if quick else (2.0, 20.0)
    async with serving() as server:
        load = Load(server)
        crashes = 0
        async with load.running():
            deadline = time.monotonic() + length
            while time.monotonic() < deadline:
                with contextlib.suppress(OSError, asyncio.IncompleteReadError, TimeoutError):
                    how = "segv" if crashes % 2 else "exit"
                    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                    writer.write(f"GET /crash?how={how} HTTP/1.1\r\nHost: c\r\n\r\n".encode())
                    await asyncio.wait_for(reader.read(), 5)
                    writer.close()
                crashes += 1
                await asyncio.sleep(period)
        await server.ready(2)
        assert load.probe is not None
        passed = load.probe.outage < 1.0
        return from_load("crash storm", load, passed, f"{crashes} crashes, 1 per {period:g}s")


async def kill9_storm(quick: bool) -> Result:
    """kill -9 of a random worker every 2 s: never 0 workers for long, service stays up."""
    period, length = (0.7, 6.0) if quick else (2.0, 20.0)
    rng = random.Random(18)
    async with serving() as server:
        load = Load(server)
        kills = 0
        async with load.running():
            deadline = time.monotonic() + length
            while time.monotonic() < deadline:
                workers = server.workers()
                if workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(rng.choice(workers), signal.SIGKILL)
                        kills += 1
                await asyncio.sleep(period)
        await server.ready(2)
        assert load.probe is not None
        passed = load.longest_empty < 1.0 and load.probe.outage < 2.0
        note = f"{kills} kills; longest with 0 workers {load.longest_empty:.2f}s"
        return from_load("kill -9 storm", load, passed, note)


async def recycling_soak(quick: bool) -> Result:
    """max_requests_per_worker recycling under load: every request answered."""
    length = 5.0 if quick else 20.0
    flags = ("--max-requests-per-worker", "500", "--max-requests-jitter", "50")
    async with serving(*flags) as server:
        load = Load(server, keepalive=6, closing=3)
        async with load.running():
            await asyncio.sleep(length)
        snap = await asyncio.to_thread(server.status)
        recycles = snap.get("exited_total", {}).get("retired", 0)
        passed = load.counts.failed == 0 and recycles >= 2
        return from_load("recycling soak", load, passed, f"{recycles} recycles")


async def memory_leak(quick: bool) -> Result:
    """1 MiB leaked per request against max_worker_memory 200MiB: peak RSS within 1.5x."""
    length = 5.0 if quick else 15.0
    async with serving("--max-worker-memory", "200MiB") as server:
        load = Load(server, path="/leak?mib=1", keepalive=8, closing=0)
        started = time.monotonic()
        async with load.running():
            await asyncio.sleep(length)
        rate = load.counts.ok / (time.monotonic() - started)
        passed = load.peak_rss <= 1.5 * 200 * MIB and load.counts.failed == 0
        return from_load("memory leak 1 MiB/req", load, passed, f"{rate:,.0f} req/s, limit 200 MiB")


async def burst_at_capacity(quick: bool) -> Result:
    """A burst fills worker_connections (a load balancer's pool opening at once), then idles:
    the next client must be answered within 1 s, not after keepalive_timeout."""
    del quick
    flags = ("--worker-connections", "100", "--keepalive-timeout", "120s")
    async with serving(*flags, workers=1) as server:
        held: list[asyncio.StreamWriter] = []
        counts = Counts()
        try:

            async def connect_and_ask() -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
                reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
                writer.write(b"GET / HTTP/1.1\r\nHost: burst\r\n\r\n")
                return reader, writer

            # all at once, as a load balancer's pool opens: accepted in one go, none idle yet
            opened = await asyncio.gather(*(connect_and_ask() for _ in range(100)))
            for reader, writer in opened:
                held.append(writer)
                await asyncio.wait_for(read_response(reader), 10)
            await asyncio.sleep(0.5)  # all idle now
            started = time.monotonic()
            await one_request(server.port, "/", counts, timeout=10)
            waited = time.monotonic() - started
        finally:
            for writer in held:
                writer.close()
        passed = counts.ok > 0 and waited < 1.0
        return Result("burst at capacity", passed, counts.ok, counts.failed, waited, None,
                      "the 101st client's wait")  # fmt: skip


async def slow_clients(kind: str, quick: bool) -> Result:
    """~1000 slowhttptest connections against one worker; a normal client must get answers."""
    tool = shutil.which("slowhttptest")
    name = f"slow clients: {kind}"
    if tool is None:
        return Result(name, False, note="slowhttptest missing (make system-deps)")
    length = 10 if quick else 60
    mode = {"slowloris": ["-H"], "slow body": ["-B", "-s", "8192"], "slow read": ["-X", "-k", "3"]}
    target = {"slowloris": "/", "slow body": "/echo", "slow read": "/big?kib=256"}[kind]
    async with serving(workers=1) as server:
        load = Load(server, keepalive=0, closing=0)
        argv = [tool, *mode[kind], "-c", "1000", "-r", "200", "-i", "10", "-l", str(length)]
        argv += ["-u", f"http://127.0.0.1:{server.port}{target}", "-p", "3"]
        if kind == "slow body":
            argv += ["-t", "POST"]
        if kind == "slow read":
            argv += ["-w", "10", "-y", "20", "-n", "5", "-z", "32"]
        async with load.running():
            attack = await asyncio.create_subprocess_exec(
                *argv,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.DEVNULL,
                preexec_fn=_many_files,  # slowhttptest holds one fd per connection
            )
            try:
                await asyncio.wait_for(attack.wait(), length + 30)
            finally:
                with contextlib.suppress(ProcessLookupError):
                    attack.kill()
        assert load.probe is not None
        passed = load.probe.outage <= 1.0
        return from_load(name, load, passed, f"{length}s attack, 1 worker")


def _many_files() -> None:
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 8192 if hard == resource.RLIM_INFINITY else min(8192, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))


async def stale_pid_file(quick: bool) -> Result:
    """The master died, its pid was reused: `ctl stop` must refuse, not kill the newcomer."""
    del quick
    server = Server("--workers", "1")
    try:
        await server.ready(1)
        for pid in [server.proc.pid, *server.workers()]:
            os.kill(pid, signal.SIGKILL)
        server.proc.wait(timeout=10)
        other = subprocess.Popen(["sleep", "60"])
        try:
            Path(server.pid_file).write_text(f"{other.pid}\n")
            done = server.ctl("stop", timeout=30)
            time.sleep(0.3)
            alive = other.poll() is None
        finally:
            other.kill()
            other.wait()
        said = done.stderr.strip().splitlines()[-1:] or [""]
        passed = done.returncode != 0 and "stale pid file" in said[0] and alive
        note = f"ctl exit {done.returncode}, other process {'alive' if alive else 'KILLED'}"
        return Result("stale pid file", passed, note=note)
    finally:
        server.kill()


SQUATTER = r"""
import os, socket, sys
path = sys.argv[1]
if os.geteuid() == 0:
    os.setgid(65534); os.setuid(65534)
srv = socket.socket(socket.AF_UNIX); srv.bind(path); srv.listen(4)
print("ready", flush=True)
while True:
    conn, _ = srv.accept(); conn.recv(65536)
    body = b'{"ok": true, "final": true, "result": "graceful: done"}'
    conn.sendall(len(body).to_bytes(4, "big") + body); conn.close()
"""


async def socket_squat(quick: bool) -> Result:
    """A local user pre-creates the control socket path: ctl must not trust its answers, and the
    default socket lives in a private directory nobody else can write."""
    del quick
    directory = tempfile.mkdtemp(prefix="apf-squat-")
    os.chmod(directory, 0o1777)  # like /tmp
    path = os.path.join(directory, "ctl")
    squatter = subprocess.Popen(
        [sys.executable, "-c", SQUATTER, path],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert squatter.stdout is not None
        squatter.stdout.readline()
        done = subprocess.run(
            [AIOPREFORK, "ctl", "graceful", "--ctl-socket", path],
            capture_output=True,
            text=True,
            timeout=30,
        )
    finally:
        squatter.kill()
        squatter.wait()
        shutil.rmtree(directory, ignore_errors=True)
    refused = done.returncode != 0 and "not trusting" in done.stderr
    if os.geteuid() != 0:
        refused = done.returncode == 0  # the squatter is ourselves: trusted, as it should be
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    server = Server("--workers", "1", port=port, default_ctl=True)
    try:
        await server.ready(1)
        mode = os.stat(runtime_dir()).st_mode & 0o777
        answered = subprocess.run(
            [AIOPREFORK, "ctl", "status", "--port", str(port)], capture_output=True, timeout=30
        )
    finally:
        server.kill()
    passed = refused and mode == 0o700 and answered.returncode == 0
    note = f"squatter {'refused' if refused else 'TRUSTED'}; default dir {runtime_dir()} {mode:o}"
    return Result("socket squat", passed, note=note)


SCENARIOS: dict[str, Callable[[bool], Awaitable[Result]]] = {
    "graceful": graceful_under_load,
    "crash-storm": crash_storm,
    "kill9-storm": kill9_storm,
    "recycling": recycling_soak,
    "slowloris": lambda quick: slow_clients("slowloris", quick),
    "slow-body": lambda quick: slow_clients("slow body", quick),
    "slow-read": lambda quick: slow_clients("slow read", quick),
    "burst": burst_at_capacity,
    "memory-leak": memory_leak,
    "stale-pid": stale_pid_file,
    "socket-squat": socket_squat,
}


async def main(names: list[str], quick: bool) -> int:
    print("| scenario | result | answered | failed | outage s | peak RSS MiB | notes |")
    print("|---|---|---:|---:|---:|---:|---|", flush=True)
    failures = 0
    for name in names:
        try:
            result = await SCENARIOS[name](quick)
        except Exception as exc:  # a broken scenario is a failed one, and the rest still run
            result = Result(name, False, note=f"error: {type(exc).__name__}: {exc}"[:300])
        failures += not result.passed
        print(result.row(), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=", ".join(SCENARIOS))
    parser.add_argument("--quick", action="store_true", help="shorter runs (a few seconds each)")
    args = parser.parse_args()
    if unknown := [name for name in args.scenarios if name not in SCENARIOS]:
        parser.error(f"unknown scenario {unknown[0]!r}: one of {', '.join(SCENARIOS)}")
    raise SystemExit(asyncio.run(main(args.scenarios or list(SCENARIOS), args.quick)))
