"""WebSocket through a real `aioprefork serve` process, in-process mode and a forked worker:
echo, then a graceful stop (SIGTERM) that closes the open WebSocket with 1001 and exits 0.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest
from support.launch import spawn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed


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
