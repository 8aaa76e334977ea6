"""Helpers of the CLI/control tests: raw control-socket clients, free ports."""

from __future__ import annotations

import asyncio
import socket
import struct
from pathlib import Path
from typing import Any

from aioprefork.control import protocol


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def raw_exchange(path: str | Path, data: bytes, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Send raw bytes on the control socket; every frame the server answers until it closes."""
    reader, writer = await asyncio.open_unix_connection(str(path))
    try:
        writer.write(data)
        await writer.drain()
        received = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
        await writer.wait_closed()
    decoder = protocol.FrameDecoder()
    frames = decoder.feed(received)
    assert decoder.pending == 0, "the server sent a partial frame"
    return frames


async def ask(path: str | Path, cmd: str, **arguments: Any) -> list[dict[str, Any]]:
    return await raw_exchange(path, protocol.encode({"v": 1, "cmd": cmd, **arguments}))


def header(length: int) -> bytes:
    return struct.pack(">I", length)
