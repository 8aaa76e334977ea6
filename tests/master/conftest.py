"""Harness of the master's process tests: a real `aioprefork serve` on 127.0.0.1, real signals.

Each master gets a listening socket the test binds on port 0 and passes as `fd://N` (no port race
with the other suites running at the same time), a control socket and pid file in a private
directory, and a metrics listener on port 0. Teardown kills the master and every worker it had
(by pid, remembered while the test ran) and reaps the master.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from support import AIOPREFORK, children, short_tmpdir

from aioprefork.control import protocol

ROOT = Path(__file__).resolve().parents[2]
APPS = Path(__file__).resolve().parent / "apps"
APP = "prefork_apps:app"


def children_of(pid: int) -> dict[int, str]:
    """{pid: process title} of the live (non-zombie) children of `pid`, from /proc."""
    return children(pid)


def alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2 :].split()[0] != b"Z"


async def until(
    check: Callable[[], Any], timeout: float, what: str, master: Master | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            log = f"\n{master.stderr}" if master is not None else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {what}{log}")
        await asyncio.sleep(0.05)


@dataclass
class Master:
    """One `aioprefork serve` under test."""

    proc: subprocess.Popen[bytes]
    port: int
    workdir: Path
    seen: set[int] = field(default_factory=set)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def ctl_path(self) -> str:
        return str(self.workdir / "ctl")

    @property
    def stderr(self) -> str:
        return (self.workdir / "stderr").read_text(errors="replace")

    def workers(self) -> dict[int, str]:
        """{pid: title} of the master's current children (any state but zombie)."""
        found = children_of(self.pid)
        self.seen.update(found)
        return found

    def generations(self) -> dict[int, int]:
        """{pid: generation} parsed from the titles (`aioprefork: worker 3 gen 2`)."""
        return {
            pid: int(title.rsplit(" ", 1)[1])
            for pid, title in self.workers().items()
            if title.startswith("aioprefork: worker")
        }

    def signal(self, sig: signal.Signals) -> None:
        self.workers()
        os.kill(self.pid, sig)

    async def ctl(self, cmd: str, **args: Any) -> list[dict[str, Any]]:
        """Send one control request; every reply frame up to the final one."""
        reader, writer = await asyncio.open_unix_connection(self.ctl_path)
        try:
            writer.write(protocol.encode(protocol.request(cmd, **args)))
            await writer.drain()
            decoder = protocol.FrameDecoder()
            frames: list[dict[str, Any]] = []
            while not frames or not protocol.is_final(frames[-1]):
                data = await asyncio.wait_for(reader.read(65536), 30)
                if not data:
                    break
                frames += decoder.feed(data)
            return frames
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def status(self) -> dict[str, Any]:
        (reply,) = await self.ctl("status")
        snapshot: dict[str, Any] = reply["snapshot"]
        return snapshot

    async def wait_ready(self, count: int, timeout: float = 10.0, gen: int | None = None) -> None:
        """Until `count` current-generation workers are READY (per `ctl status`)."""

        def ready(snap: dict[str, Any]) -> bool:
            slots = [s for s in snap["slots"] if s["current"] and s["state"] == "ready"]
            return (
                len(slots) >= count
                and snap["master_state"] == "running"
                and (gen is None or snap["generation"] == gen)
            )

        await self.status_until(ready, timeout, f"{count} workers ready")

    async def status_until(
        self, check: Callable[[dict[str, Any]], bool], timeout: float, what: str
    ) -> dict[str, Any]:
        """Poll `ctl status` until `check(snapshot)` holds; return that snapshot."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                snap = await self.status()
            except OSError:
                pass  # the control socket is not up yet
            else:
                if check(snap):
                    return snap
            if self.proc.poll() is not None:
                raise AssertionError(f"master exited {self.proc.returncode}:\n{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"timed out after {timeout}s waiting for {what}:\n{self.stderr}"
                )
            await asyncio.sleep(0.05)

    async def wait_exit(self, timeout: float) -> int:
        await until(lambda: self.proc.poll() is not None, timeout, "the master to exit", self)
        return self.proc.returncode

    def kill_all(self) -> None:
        self.workers()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        for pid in self.seen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.wait(timeout=10)


@pytest.fixture
def workdir() -> Iterator[Path]:
    """A short private directory (AF_UNIX paths are limited to 107 bytes)."""
    with short_tmpdir("apf-m-") as path:
        yield path


StartMaster = Callable[..., Master]


def _limit_nofile(limit: int) -> None:
    """In the child before exec: soft and hard RLIMIT_NOFILE (the master cannot raise it)."""
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))


@pytest.fixture
def start_master(workdir: Path) -> Iterator[StartMaster]:
    """start_master("--workers", "2", ...) -> Master; extra CLI flags pass straight through."""
    masters: list[Master] = []

    def start(
        *flags: str,
        app: str | None = APP,
        env: dict[str, str] | None = None,
        default_metrics_bind: bool = False,
        nofile: int | None = None,
    ) -> Master:
        listener = socket.create_server(("127.0.0.1", 0), backlog=512)
        fd = listener.fileno()
        args = [AIOPREFORK, "serve"] + ([app] if app else [])
        args += [
            "--app-dir",
            str(APPS),
            "--bind",
            f"fd://{fd}",
            "--ctl-socket",
            str(workdir / "ctl"),
        ]
        if not default_metrics_bind:
            args += ["--metrics-bind", "127.0.0.1:0"]
        args += ["--log-level", "info", "--no-access-log", *flags]
        with open(workdir / "stderr", "wb") as err:
            proc = subprocess.Popen(
                args,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                pass_fds=(fd,),
                env={**os.environ, **(env or {})},
                start_new_session=True,
                preexec_fn=None if nofile is None else lambda: _limit_nofile(nofile),
            )
        master = Master(proc, listener.getsockname()[1], workdir)
        listener.close()
        masters.append(master)
        return master

    yield start
    for master in masters:
        master.kill_all()


# --- a small HTTP client and load generator -------------------------------------------------------


async def get(port: int, path: str = "/", timeout: float = 10.0) -> tuple[int, bytes]:
    """One request on a fresh connection (Connection: close); (status, body)."""

    async def exchange() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(f"GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n".encode())
            data = await reader.read()
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 "):
            raise ConnectionError(f"no response: {data[:80]!r}")
        return int(head[9:12]), body

    return await asyncio.wait_for(exchange(), timeout)


@dataclass
class Load:
    """`concurrency` clients looping requests until stopped; failures are kept with their cause."""

    port: int
    path: str = "/"
    concurrency: int = 8
    ok: int = 0
    failures: list[str] = field(default_factory=list)
    pids: set[bytes] = field(default_factory=set)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def _client(self) -> None:
        while not self._stop.is_set():
            try:
                status, body = await get(self.port, self.path)
            except (OSError, ConnectionError, TimeoutError) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            if status != 200:
                self.failures.append(f"status {status}")
            else:
                self.ok += 1
                self.pids.add(body)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Load]:
        tasks = [asyncio.ensure_future(self._client()) for _ in range(self.concurrency)]
        try:
            yield self
        finally:
            self._stop.set()
            await asyncio.gather(*tasks)
