"""Helpers of the CLI/control tests: raw control-socket clients, free ports."""

from __future__ import annotations

import asyncio
import struct
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import AIOPREFORK, clean_env, free_port

from aioprefork.control import protocol

__all__ = ["AIOPREFORK", "clean_env", "free_port"]  # re-exported: the CLI tests import them here


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


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Result:
    """`aioprefork ARGS` in a subprocess (blocking); killed by pid if it overruns."""
    proc = subprocess.Popen(
        [AIOPREFORK, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env or clean_env(),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise
    return Result(proc.returncode, out, err)


async def arun_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 30) -> Result:
    """`aioprefork ARGS` in a subprocess without blocking the test's loop (which may serve it)."""
    proc = await asyncio.create_subprocess_exec(
        AIOPREFORK,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env or clean_env(),
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def one_line_error(self) -> str:
        """stderr, asserted to be exactly one line with no traceback."""
        lines = self.err.strip().splitlines()
        assert len(lines) == 1, self.err
        assert "Traceback" not in self.err
        return lines[0]
