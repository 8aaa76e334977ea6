"""The listen queue's depth, read by the master from the kernel (TCP_INFO): clients waiting for
a worker are visible in ctl status, /server-status and /metrics before anyone is refused."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tempfile
from pathlib import Path

import pytest

from aioprefork.listeners import Listener
from aioprefork.metrics.collector import metric_families
from aioprefork.snapshot import ListenQueue, Snapshot

from .conftest import StartMaster, get

pytestmark = pytest.mark.timeout(60)


def test_a_tcp_listener_reports_its_accept_queue_and_limit() -> None:
    server = socket.create_server(("127.0.0.1", 0), backlog=77)
    clients = [socket.create_connection(server.getsockname()) for _ in range(5)]
    try:
        assert Listener("127.0.0.1:0", server).queue() == (5, 77)
        accepted, _ = server.accept()
        accepted.close()
        assert Listener("127.0.0.1:0", server).queue() == (4, 77)
    finally:
        for c in clients:
            c.close()
        server.close()


def test_a_unix_listener_has_no_queue_figure() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(str(Path(tmp) / "s"))
            sock.listen(8)
            assert Listener("unix:s", sock).queue() is None
        finally:
            sock.close()


def test_metrics_label_each_listener() -> None:
    snap = Snapshot(
        now=0.0, pid=1, master_state="running", generation=1, started_at=0.0, version="x",
        slots=(), server_limit=2, worker_connections=10, min_workers=1, max_workers=2,
        min_spare_slots=1, max_spare_slots=30, idle_slots=0, spawn_rate=1,
        listen_queues=(
            ListenQueue(listener="0.0.0.0:8000", queued=3, limit=2048),
            ListenQueue(listener="[::]:8000", queued=0, limit=2048),
        ),
    )  # fmt: skip
    assert snap.queued == 3
    families = {f.name: f for f in metric_families(snap)}
    depth = {
        s.labels["listener"]: s.value for s in families["aioprefork_listen_queue_depth"].samples
    }
    assert depth == {"0.0.0.0:8000": 3, "[::]:8000": 0}
    limit = families["aioprefork_listen_queue_limit"].samples
    assert {s.value for s in limit} == {2048}


async def test_clients_waiting_behind_a_stalled_worker_show_in_ctl_status(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", app="ops_apps:app")
    await master.wait_ready(1)
    blocked = asyncio.ensure_future(get(master.port, "/block?s=4", timeout=30))
    await asyncio.sleep(0.5)
    waiting = [socket.create_connection(("127.0.0.1", master.port)) for _ in range(6)]
    try:
        snap = await master.status_until(
            lambda s: bool(s["listen_queues"]) and s["listen_queues"][0]["queued"] >= 6,
            10,
            "6 connections in the accept queue",
        )
        (queue,) = snap["listen_queues"]
        assert queue["listener"] == f"127.0.0.1:{master.port}"
        assert queue["limit"] == 2048  # the backlog setting's default (workers listen() again)
        assert await blocked == (200, b"ok")
        await master.status_until(
            lambda s: s["listen_queues"][0]["queued"] == 0, 10, "the queue to drain"
        )
    finally:
        for sock in waiting:
            with contextlib.suppress(OSError):
                sock.close()
