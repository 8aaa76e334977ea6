"""Requests in flight (Apache's ExtendedStatus): `ctl status --requests` and
/server-status?requests list every worker's requests, oldest first, asked for on demand."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import subprocess
import urllib.request

import pytest
from support import AIOPREFORK

from aioprefork.cli.render import render_requests
from aioprefork.snapshot import InFlight, RequestView
from aioprefork.wire.display import cut_target

from .conftest import Master, StartMaster, get

pytestmark = pytest.mark.timeout(60)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_targets_are_cut_with_an_ellipsis() -> None:
    assert cut_target("/short", 64) == "/short"
    assert cut_target("/" + "a" * 100, 10) == "/aaaaaaaa\u2026"
    assert len(cut_target("/" + "a" * 100, 10)) == 10


def test_the_text_view_names_what_is_missing() -> None:
    row = RequestView(
        slot=1, pid=42, client="10.0.0.9:5000", peer="127.0.0.1:6000", protocol="HTTP/1.1",
        method="POST", target="/upload", phase="reading body", age=12.5,
    )  # fmt: skip
    text = render_requests(InFlight(requests=(row,), total=3, unanswered=(2,)))
    assert text.splitlines()[0] == (
        "requests in flight: 3 (the 1 oldest shown; status_requests_limit per worker); "
        "no answer within 1s from slot(s) 2"
    )
    assert "reading body" in text and "10.0.0.9:5000" in text and "12.50s" in text


def ctl_status(master: Master, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [AIOPREFORK, "ctl", "status", *args, "--ctl-socket", master.ctl_path],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip


async def test_requests_in_flight_oldest_first(start_master: StartMaster) -> None:
    metrics = free_port()
    master = start_master(
        "--workers", "2", "--metrics-bind", f"127.0.0.1:{metrics}",
        "--status-target-length", "20", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
        app="ops_apps:app",
    )  # fmt: skip
    await master.wait_ready(2)
    long_target = "/wait?s=4&padding=" + "x" * 80
    oldest = asyncio.ensure_future(get(master.port, long_target))
    await asyncio.sleep(0.4)
    younger = asyncio.ensure_future(get(master.port, "/wait?s=3"))
    idle = socket.create_connection(("127.0.0.1", master.port))
    forwarded = socket.create_connection(("127.0.0.1", master.port))
    try:
        forwarded.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 203.0.113.7\r\n"
            b"Content-Length: 100\r\n\r\nonly part of it"
        )
        await asyncio.sleep(0.6)
        result = await asyncio.to_thread(ctl_status, master, "--requests")
        assert result.returncode == 0, result.stderr
        text = result.stdout
        section = text[text.index("requests in flight:") :]
        lines = section.splitlines()
        rows = [line for line in lines[1:] if line.strip() and not line.startswith("SLOT")]
        assert "/wait?s=4&padding=x\u2026" in rows[0], section  # the oldest, cut to 20
        assert "in app" in rows[0] and "GET" in rows[0]
        assert rows.index(next(r for r in rows if "/wait?s=3" in r)) > 0, section
        body_row = next(r for r in rows if "/upload" in r)
        assert "reading body" in body_row and "203.0.113.7" in body_row, body_row
        assert any("reading head" in r or "keep-alive" in r for r in rows), section

        url = f"http://127.0.0.1:{metrics}/server-status?json&requests"
        data = await asyncio.to_thread(lambda: json.loads(urllib.request.urlopen(url).read()))
        listed = data["requests"]["requests"]
        assert listed[0]["target"].startswith("/wait?s=4") and listed[0]["phase"] == "in app"
        assert [r["age"] for r in listed] == sorted((r["age"] for r in listed), reverse=True)
        assert data["pid"] == master.pid
        page = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url.replace("json&", "")).read().decode()
        )
        assert "Requests in flight" in page and "/wait?s=3" in page
        auto = await asyncio.to_thread(
            lambda: urllib.request.urlopen(url.replace("json", "auto")).read().decode()
        )
        assert "RequestsInFlight: " in auto and "phase=in_app" in auto
        assert await oldest == (200, b"ok") and await younger == (200, b"ok")
    finally:
        for sock in (idle, forwarded):
            with contextlib.suppress(OSError):
                sock.close()


async def test_a_worker_with_a_blocked_loop_is_named_not_waited_for(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", "--stall-threshold", "0", app="ops_apps:app")
    await master.wait_ready(1)
    blocked = asyncio.ensure_future(get(master.port, "/block?s=3", timeout=20))
    await asyncio.sleep(0.3)
    result = await asyncio.to_thread(ctl_status, master, "--requests", "--json")
    assert result.returncode == 0, result.stderr
    snapshot = json.loads(result.stdout)
    assert snapshot["requests"]["unanswered"] == [0]
    assert await blocked == (200, b"ok")


async def test_http2_streams_are_listed_one_row_each(start_master: StartMaster) -> None:
    """An HTTP/2 connection multiplexes: each open stream is a request in flight of its own."""
    nghttp = shutil.which("nghttp")
    assert nghttp, "nghttp is missing: make system-deps (Debian nghttp2-client)"
    master = start_master("--workers", "1", app="ops_apps:app")
    await master.wait_ready(1)
    base = f"http://127.0.0.1:{master.port}"
    # one h2c connection (prior knowledge), two concurrent streams
    proc = await asyncio.create_subprocess_exec(
        nghttp, "-n", "-s", f"{base}/wait?s=2", f"{base}/wait?s=3",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        await asyncio.sleep(0.8)
        result = await asyncio.to_thread(ctl_status, master, "--requests", "--json")
        assert result.returncode == 0, result.stderr
        listed = json.loads(result.stdout)["requests"]["requests"]
        streams = [r for r in listed if r["protocol"] == "HTTP/2" and r["phase"] == "in app"]
        assert sorted(r["target"] for r in streams) == ["/wait?s=2", "/wait?s=3"], listed
        assert all(r["method"] == "GET" and r["age"] > 0.3 for r in streams), streams
        assert streams[0]["peer"] == streams[1]["peer"]  # the same connection
    finally:
        out, err = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, err
    answered = [line.split() for line in out.decode().splitlines() if "/wait?s=" in line]
    assert sorted((row[4], row[-1]) for row in answered) == [
        ("200", "/wait?s=2"),
        ("200", "/wait?s=3"),
    ], out  # nghttp's statistics: id, responseEnd, requestStart, process, code, size, path
