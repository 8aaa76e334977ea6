"""WebSocket through a real `aioprefork serve` process, in-process mode and a forked worker:
echo, then a graceful stop (SIGTERM) that closes the open WebSocket with 1001 and exits 0.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path

import pytest
from support.launch import spawn, wait_until
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus


@pytest.mark.parametrize("workers", ["0", "1"])
async def test_echo_then_graceful_stop(tmp_path: Path, workers: str) -> None:
    args = ("--workers", workers, "--graceful-timeout", "10")
    with spawn("examples.ws_echo:app", *args, workdir=tmp_path) as served:
        async with connect(f"ws://127.0.0.1:{served.port}/", open_timeout=20) as ws:
            await ws.send("ping?")
            assert await ws.recv() == "ping?"
            served.proc.send_signal(signal.SIGTERM)
            with pytest.raises(ConnectionClosed):
                await asyncio.wait_for(ws.recv(), 10)
            assert ws.close_code == 1001
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, served.proc.wait, 10) == 0, served.output()


async def test_access_log_has_the_handshake_and_the_close(tmp_path: Path) -> None:
    """One line per handshake (101, or the status that denied it), one at close with its code
    and duration; JSON lines carry the same as fields."""
    for fmt in ("combined", "json"):
        args = ("--access-log", "--access-log-format", fmt)
        with spawn("tests.http.websocket.apps:app", *args, workdir=tmp_path) as served:
            base = f"ws://127.0.0.1:{served.port}"
            async with connect(f"{base}/echo", open_timeout=20) as ws:
                await ws.send("hi")
                assert await ws.recv() == "hi"
                await ws.close(code=4321)
            with pytest.raises(InvalidStatus):
                async with connect(f"{base}/deny", open_timeout=20):
                    pass
            wait_until(lambda: served.output().count("/deny") >= 1)
            wait_until(lambda: "4321" in served.output())
            lines = [
                line for line in served.output().splitlines() if "/echo" in line or "/deny" in line
            ]
        if fmt == "combined":
            handshake, close, denied = sorted(
                lines, key=lambda line: ("deny" in line, "ws_close" in line)
            )
            assert '"GET /echo HTTP/1.1" 101 ' in handshake and "ws_close" not in handshake
            assert '"GET /echo HTTP/1.1" 101 ' in close
            assert re.search(r" ws_close=4321 ws_duration=\d+\.\d{3}s$", close), close
            assert '"GET /deny HTTP/1.1" 401 ' in denied, lines
            assert len(lines) == 3, lines
        else:
            records = [json.loads(line) for line in lines]
            events = sorted(
                (r["event"], r["path"], r["status"], r.get("close_code")) for r in records
            )
            assert events == [
                ("websocket.close", "/echo", 101, 4321),
                ("websocket.handshake", "/deny", 401, None),
                ("websocket.handshake", "/echo", 101, None),
            ]
            close = next(r for r in records if r["event"] == "websocket.close")
            assert close["duration_us"] > 0 and close["bytes"] > 0
