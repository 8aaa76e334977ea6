"""Server processes: start pinned in their own process group, wait until they answer, measure, kill.

A server is started as `taskset -c CORES argv...` with `start_new_session=True`, so its pid is
also its process-group id and every worker it forks (same group) is found, measured and killed
through that one id. Nothing here ever signals a pid it did not start: `stop()` signals only the
group it created, and reaps the leader last, so the group id cannot be recycled meanwhile.

CPU time and RSS come from /proc/<pid>/stat (utime + stime + cutime + cstime, and rss pages) of
every process in the group, so a multi-worker server is measured whole, master included. A sample
taken with `memory=True` also reads /proc/<pid>/smaps_rollup for PSS and USS: RSS counts a page
shared copy-on-write with the master fully in every process that maps it, PSS splits it among
them and USS counts only the pages no other process maps. smaps_rollup walks the page tables, so
it is read only after the measured window, never during it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

CLK_TCK: Final = os.sysconf("SC_CLK_TCK")
PAGE_SIZE: Final = os.sysconf("SC_PAGE_SIZE")
# Helper processes a server may fork that are not workers (they do not serve requests).
NOT_WORKERS: Final = ("multiprocessing.resource_tracker", "multiprocessing.forkserver")


class ServerFailed(Exception):
    """The server exited, or never answered, before it could be measured."""


def parse_cpus(spec: str) -> tuple[int, ...]:
    """A taskset core list ("0", "0-7", "0,2,4-5") -> sorted core numbers."""
    cores: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        if "-" in part:
            low, high = part.split("-", 1)
            cores.update(range(int(low), int(high) + 1))
        else:
            cores.add(int(part))
    if not cores:
        raise ValueError(f"empty core list {spec!r}")
    return tuple(sorted(cores))


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (the kernel picks it; a server binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True)
class ProcInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    cpu_ticks: int  # utime + stime + cutime + cstime (reaped children count in their parent)
    rss: int  # bytes
    sys_ticks: int = 0  # stime + cstime: the kernel's part of cpu_ticks
    helper: bool = False  # a known non-serving helper (see NOT_WORKERS); set by group()
    pss: int = 0  # bytes, shared pages split among their sharers; 0 when not read or gone
    uss: int = 0  # bytes, Private_Clean + Private_Dirty; 0 when not read or gone


def read_proc(pid: int) -> ProcInfo | None:
    """/proc/<pid>/stat as a ProcInfo; None if the process is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes().decode(errors="replace")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # Field 2 (comm) may contain spaces and parentheses: split after its last ')'.
    # proc(5) numbers the fields from 1; `rest` starts at field 3 (state).
    rest = raw[raw.rindex(")") + 2 :].split()

    def field(n: int) -> str:
        return rest[n - 3]

    return ProcInfo(
        pid=pid,
        ppid=int(field(4)),
        pgid=int(field(5)),
        state=field(3),
        cpu_ticks=sum(int(field(n)) for n in (14, 15, 16, 17)),
        rss=int(field(24)) * PAGE_SIZE,
        sys_ticks=int(field(15)) + int(field(17)),
    )


def parse_smaps_rollup(text: str) -> tuple[int, int]:
    """/proc/<pid>/smaps_rollup text -> (PSS, USS) in bytes; a missing field counts as 0."""
    kib: dict[str, int] = {}
    for line in text.splitlines():
        name, _, value = line.partition(":")
        fields = value.split()
        if fields and fields[0].isdigit():
            kib[name.strip()] = int(fields[0])
    uss = kib.get("Private_Clean", 0) + kib.get("Private_Dirty", 0)
    return kib.get("Pss", 0) * 1024, uss * 1024


def read_memory(pid: int) -> tuple[int, int]:
    """(PSS, USS) bytes of a process; (0, 0) if it is gone, a zombie, or not ours to read."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text(errors="replace")
    except OSError:  # FileNotFound/ProcessLookup (gone, zombie), Permission (not our child)
        return 0, 0
    return parse_smaps_rollup(text)


def group(pgid: int, zombies: bool = False, memory: bool = False) -> dict[int, ProcInfo]:
    """Every process whose process group is `pgid`; zombies only if asked; PSS/USS if `memory`.

    Samples for CPU accounting keep zombies: a worker that died and is not reaped yet still holds
    its CPU time, which moves into its parent's cutime only once it is reaped. Memory is read in a
    second pass, after every process's stat, so the CPU sample stays one quick sweep.
    """
    found: dict[int, ProcInfo] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        info = read_proc(int(entry))
        if info is not None and info.pgid == pgid and (zombies or info.state != "Z"):
            helper = any(name in _cmdline(info.pid) for name in NOT_WORKERS)
            found[info.pid] = dataclasses.replace(info, helper=helper)
    if memory:
        for pid, info in found.items():
            pss, uss = read_memory(pid)
            found[pid] = dataclasses.replace(info, pss=pss, uss=uss)
    return found


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def workers(procs: Mapping[int, ProcInfo]) -> tuple[int, ...]:
    """The serving processes of a group: its leaves (no child in the group), helpers excluded.

    A single-process server is its own only leaf; a master's workers are the leaves under it.
    A process that is dead or dying (zombie, or already without memory) serves nothing.
    """
    alive = {pid: p for pid, p in procs.items() if p.state not in "ZXx" and p.rss > 0}
    parents = {p.ppid for p in alive.values()}
    leaves = [pid for pid in alive if pid not in parents]
    serving = [pid for pid in leaves if not alive[pid].helper]
    return tuple(sorted(serving or leaves))


@dataclass(frozen=True, slots=True, kw_only=True)
class Usage:
    """What a server consumed between two samples of its group."""

    cpu_seconds: float  # whole group
    sys_seconds: float  # whole group, the kernel's part of cpu_seconds (syscalls, loopback TCP)
    rss_total: int  # bytes, whole group, at the second sample
    pss_total: int  # bytes, whole group, at the second sample (0 if it read no memory)
    worker_rss: tuple[int, ...]  # bytes per serving process
    worker_pss: tuple[int, ...]  # bytes per serving process (0 where unread or gone)
    worker_uss: tuple[int, ...]  # bytes per serving process (0 where unread or gone)
    worker_cpu: tuple[float, ...]  # seconds per serving process
    processes: int


def exited(before: Mapping[int, ProcInfo], later: Mapping[int, ProcInfo]) -> tuple[int, ...]:
    """Processes of `before` that are gone, dead or dying in `later` (crashed, recycled, killed)."""
    return tuple(
        sorted(
            pid
            for pid in before
            if pid not in later or later[pid].state in "ZXx" or later[pid].rss == 0
        )
    )


def _spent(
    before: Mapping[int, ProcInfo], after: Mapping[int, ProcInfo], ticks: Callable[[ProcInfo], int]
) -> tuple[dict[int, float], float]:
    """Seconds of `ticks` between two samples: per process of `after` (a new one counts from 0),
    and for the whole group (a process gone by `after` takes its own with it)."""
    each = {
        pid: (ticks(info) - (ticks(before[pid]) if pid in before else 0)) / CLK_TCK
        for pid, info in after.items()
    }
    gone = sum(ticks(info) for pid, info in before.items() if pid not in after) / CLK_TCK
    return each, max(0.0, sum(each.values()) - gone)


def usage(before: Mapping[int, ProcInfo], after: Mapping[int, ProcInfo]) -> Usage:
    """CPU and memory between two `group()` samples.

    Memory is that of `after`: take it with `group(..., memory=True)` for PSS and USS.
    """
    cpu, cpu_total = _spent(before, after, lambda info: info.cpu_ticks)
    _, sys_total = _spent(before, after, lambda info: info.sys_ticks)
    serving = workers(after)
    return Usage(
        cpu_seconds=cpu_total,
        sys_seconds=sys_total,
        rss_total=sum(info.rss for info in after.values()),
        pss_total=sum(info.pss for info in after.values()),
        worker_rss=tuple(after[pid].rss for pid in serving),
        worker_pss=tuple(after[pid].pss for pid in serving),
        worker_uss=tuple(after[pid].uss for pid in serving),
        worker_cpu=tuple(cpu[pid] for pid in serving),
        processes=len(after),
    )


def start(argv: list[str], cores: str, log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start `argv` pinned to `cores`, in a new session (its pid = its process group id)."""
    with log.open("wb") as out:
        return subprocess.Popen(
            ["taskset", "-c", cores, *argv],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            start_new_session=True,
        )


def tail(log: Path, lines: int = 15) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


def fetch(
    host: str, port: int, path: str, method: str = "GET", body: bytes = b"", timeout: float = 2.0
) -> tuple[int, bytes]:
    """One request on a fresh connection -> (status, body)."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/octet-stream"} if body else {}
        conn.request(method, path, body=body or None, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_ready(
    proc: subprocess.Popen[bytes], host: str, port: int, log: Path, timeout: float = 30.0
) -> float:
    """Poll GET / until it answers 200; return the seconds it took. Raise ServerFailed."""
    began = time.monotonic()
    while True:
        code = proc.poll()
        if code is not None:
            raise ServerFailed(f"exited with status {code} before answering:\n{tail(log)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = fetch(host, port, "/", timeout=1.0)
            if status == 200:
                return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise ServerFailed(f"no answer within {timeout:.0f} s:\n{tail(log)}")
        time.sleep(0.05)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _wait_group_gone(pgid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not group(pgid):
            return True
        time.sleep(0.02)
    return not group(pgid)


def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
    """TERM the whole group, KILL what is left after `grace` seconds, then reap the leader.

    The leader is reaped last: until then its zombie keeps the group id from being reused, so the
    SIGKILL can only reach processes this harness started.
    """
    pgid = proc.pid
    if proc.returncode is not None and not group(pgid):
        return  # leader already reaped and nothing left: the id may no longer be ours
    _signal_group(pgid, signal.SIGTERM)
    if not _wait_group_gone(pgid, grace):
        _signal_group(pgid, signal.SIGKILL)
        _wait_group_gone(pgid, 5.0)
    proc.wait(timeout=10)


def stop_all(procs: Iterable[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(Exception):
                stop(proc, grace=1.0)
