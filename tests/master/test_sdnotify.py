"""systemd's notify protocol: the pure pieces, then a real master talking to a NOTIFY_SOCKET the
test owns (what systemd does for Type=notify / Type=notify-reload units)."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aioprefork.master import sdnotify
from aioprefork.snapshot import SlotView, Snapshot, Totals

from .conftest import StartMaster, get

pytestmark = pytest.mark.timeout(60)


def test_abstract_and_path_addresses() -> None:
    assert sdnotify.address_of("@sd/notify") == "\0sd/notify"
    assert sdnotify.address_of("/run/systemd/notify") == "/run/systemd/notify"


@pytest.mark.parametrize(
    ("env", "pid", "interval"),
    [
        ({}, 7, 0.0),
        ({"WATCHDOG_USEC": "4000000"}, 7, 2.0),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "7"}, 7, 2.0),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "8"}, 7, 0.0),  # meant for another process
        ({"WATCHDOG_USEC": "soon"}, 7, 0.0),
        ({"WATCHDOG_USEC": "0"}, 7, 0.0),
    ],
)
def test_watchdog_interval(env: dict[str, str], pid: int, interval: float) -> None:
    assert sdnotify.watchdog_interval(env, pid) == interval


def test_reloading_carries_the_monotonic_clock_in_microseconds() -> None:
    assert sdnotify.reloading_fields(12_345_678_999) == ["RELOADING=1", "MONOTONIC_USEC=12345678"]


def test_from_environ_takes_the_variables_away() -> None:
    env = {"NOTIFY_SOCKET": "@x", "WATCHDOG_USEC": "1000000", "PATH": "/bin"}
    notifier = sdnotify.Notifier.from_environ(env)
    assert notifier is not None
    try:
        assert notifier.address == "\0x"
        assert notifier.watchdog_interval == 0.5
        assert env == {"PATH": "/bin"}  # neither workers nor the app inherit them
    finally:
        notifier.close()
    assert sdnotify.Notifier.from_environ({"PATH": "/bin"}) is None


def _slot(index: int, state: str, *, active: int = 0, keepalive: int = 0) -> SlotView:
    return SlotView(
        slot=index, pid=100 + index, gen=2, current=True, state=state, accepting=True,
        active=active, keepalive=keepalive, started_at=0.0,
    )  # fmt: skip


def test_status_line_summarises_the_scoreboard() -> None:
    snap = Snapshot(
        now=0.0, pid=1, master_state="running", generation=2, started_at=0.0, version="x",
        slots=(_slot(0, "ready", active=3, keepalive=2), _slot(1, "starting")),
        server_limit=4, worker_connections=100, min_workers=2, max_workers=4,
        min_spare_slots=1, max_spare_slots=9, idle_slots=0, spawn_rate=1,
        totals=Totals(requests=42),
    )  # fmt: skip
    assert sdnotify.status_line(snap) == (
        "running, generation 2: 1/2 workers ready, 3 busy, 5 connections, 42 requests served"
    )


class NotifySocket:
    """The test's end of NOTIFY_SOCKET: every datagram as a dict of its assignments."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.setblocking(False)
        self.seen: list[dict[str, str]] = []

    def drain(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except BlockingIOError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if line)
            self.seen.append(fields)

    async def wait_for(self, key: str, timeout: float = 20.0, after: int = 0) -> dict[str, str]:
        deadline = time.monotonic() + timeout
        while True:
            self.drain()
            for message in self.seen[after:]:
                if key in message:
                    return message
            if time.monotonic() > deadline:
                raise AssertionError(f"no {key} from the master; got {self.seen}")
            await asyncio.sleep(0.05)


@pytest.fixture
def notify(workdir: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(workdir / "notify")
    try:
        yield sock
    finally:
        sock.sock.close()


async def test_a_real_master_notifies_systemd(
    start_master: StartMaster, notify: NotifySocket
) -> None:
    env = {"NOTIFY_SOCKET": str(notify.path), "WATCHDOG_USEC": "2000000"}
    master = start_master("--workers", "2", app="ops_apps:app", env=env)
    ready = await notify.wait_for("READY")
    assert ready["READY"] == "1"
    assert "workers ready" in ready["STATUS"], ready
    await master.wait_ready(2)
    assert (await get(master.port))[0] == 200
    # The variables stay the master's: a worker (and the app) never sees them.
    assert await get(master.port, "/env?k=NOTIFY_SOCKET") == (200, b"-")
    assert await get(master.port, "/env?k=WATCHDOG_USEC") == (200, b"-")
    # WATCHDOG_USEC=2s: a ping at least every second from the master's cycle.
    first = await notify.wait_for("WATCHDOG")
    await notify.wait_for("WATCHDOG", after=notify.seen.index(first) + 1, timeout=5)

    mark = len(notify.seen)
    before_us = time.monotonic_ns() // 1000
    replies = await master.ctl("graceful")
    assert replies[-1]["ok"], replies
    reloading = await notify.wait_for("RELOADING", after=mark)
    assert int(reloading["MONOTONIC_USEC"]) >= before_us
    assert int(reloading["MONOTONIC_USEC"]) <= time.monotonic_ns() // 1000
    again = await notify.wait_for("READY", after=notify.seen.index(reloading) + 1)
    assert "generation 2" in again["STATUS"], again

    mark = len(notify.seen)
    master.signal(signal.SIGTERM)
    stopping = await notify.wait_for("STOPPING", after=mark)
    assert stopping["STOPPING"] == "1"
    assert await master.wait_exit(30) == 0
