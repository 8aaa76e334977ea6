"""request_timeout: an app past its deadline is cancelled, the client gets 503 (or the set
status), the event is counted and logged with where the app waited; streaming responses and
apps that already answered are exempt unless asked; an app that swallows the cancellation is
reported and the worker goes on serving."""

from __future__ import annotations

import asyncio
import shutil
import time

import pytest

from .conftest import StartMaster, get, until

pytestmark = pytest.mark.timeout(60)


async def raw(port: int, target: str, timeout: float = 20) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


async def test_a_slow_app_is_cancelled_answered_counted_and_reported(
    start_master: StartMaster,
) -> None:
    master = start_master(
        "--workers", "1", "--request-timeout", "1s", "--request-timeout-status", "504",
        app="ops_apps:app",
    )  # fmt: skip
    await master.wait_ready(1)
    began = time.monotonic()
    answer = await raw(master.port, "/wait?s=10")
    took = time.monotonic() - began
    assert answer.startswith(b"HTTP/1.1 504 "), answer
    assert b"connection: close" in answer.lower()
    assert 0.9 < took < 5, took
    assert await get(master.port, "/wait?s=0.1") == (200, b"ok")  # a fast one is untouched
    await until(lambda: "request_timeout (1s): GET /wait?s=10" in master.stderr, 10, "the report")
    log = master.stderr
    assert "awaiting_the_database" in log and "await asyncio.sleep(seconds)" in log, log
    assert "swallowed" not in log
    snap = await master.status_until(
        lambda s: s["totals"]["request_timeouts"] == 1, 10, "the timeout counted"
    )
    assert snap["totals"]["requests"] >= 2


async def test_an_app_that_swallows_the_cancellation_is_reported(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", "--request-timeout", "0.5s", app="ops_apps:app")
    await master.wait_ready(1)
    answer = await raw(master.port, "/swallow?s=3")
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    await until(lambda: "swallowed its cancellation" in master.stderr, 10, "the report", master)
    assert await get(master.port) == (200, b"ok")  # the worker keeps serving


async def test_a_streaming_response_is_exempt_unless_asked(start_master: StartMaster) -> None:
    master = start_master("--workers", "1", "--request-timeout", "0.5s", app="ops_apps:app")
    await master.wait_ready(1)
    whole = await raw(master.port, "/stream?s=2")
    assert whole.startswith(b"HTTP/1.1 200 ") and whole.endswith(b"0\r\n\r\n"), whole
    assert b"1\r\n4\r\n" in whole


async def test_request_timeout_streaming_cuts_the_response(start_master: StartMaster) -> None:
    master = start_master(
        "--workers", "1", "--request-timeout", "0.5s", "--request-timeout-streaming",
        app="ops_apps:app",
    )  # fmt: skip
    await master.wait_ready(1)
    cut = await raw(master.port, "/stream?s=3")
    assert cut.startswith(b"HTTP/1.1 200 "), cut
    assert not cut.endswith(b"0\r\n\r\n"), cut  # truncated: no last chunk
    await until(lambda: "request_timeout (0.5s): GET /stream" in master.stderr, 10, "report")


async def _nghttp(*urls: str) -> dict[str, str]:
    """GET each URL as a stream of one h2c connection (nghttp); {path: status}."""
    nghttp = shutil.which("nghttp")
    assert nghttp, "nghttp is missing: make system-deps (Debian nghttp2-client)"
    proc = await asyncio.create_subprocess_exec(
        nghttp, "-n", "-s", *urls,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 0, err
    rows = [line.split() for line in out.decode().splitlines() if " /" in line]
    return {row[-1]: row[4] for row in rows}  # id, end, start, process, code, size, path


async def test_an_http2_stream_past_its_deadline_is_cancelled_alone(
    start_master: StartMaster,
) -> None:
    master = start_master("--workers", "1", "--request-timeout", "1s", app="ops_apps:app")
    await master.wait_ready(1)
    base = f"http://127.0.0.1:{master.port}"
    began = time.monotonic()
    answers = await _nghttp(f"{base}/wait?s=10", f"{base}/wait?s=0.5", f"{base}/wait?s=0.2")
    took = time.monotonic() - began
    # the slow stream is answered 503 at its deadline; the others on the connection are not cut
    assert answers == {"/wait?s=10": "503", "/wait?s=0.5": "200", "/wait?s=0.2": "200"}, answers
    assert 0.9 < took < 5, took
    await until(
        lambda: "request_timeout (1s): GET /wait?s=10" in master.stderr, 10, "the report", master
    )
    assert "over HTTP/2" in master.stderr and "awaiting_the_database" in master.stderr
    assert "swallowed" not in master.stderr
    await master.status_until(
        lambda s: s["totals"]["request_timeouts"] == 1, 10, "the timeout counted"
    )
    # the slow app second on the connection (its own task, not the connection's first)
    answers = await _nghttp(f"{base}/wait?s=0.2", f"{base}/wait?s=10", f"{base}/wait?s=0.5")
    assert answers == {"/wait?s=10": "503", "/wait?s=0.5": "200", "/wait?s=0.2": "200"}, answers
    await master.status_until(
        lambda s: s["totals"]["request_timeouts"] == 2, 10, "the second timeout counted"
    )
