"""HTTP/2 across a graceful restart of the real server (master + workers): no failed request.

The client is curl (nghttp2 inside, which follows GOAWAY as RFC 9113 says: the streams at or
below its last stream id complete). Python's `h2` library is not usable here: once it receives a
GOAWAY it refuses every later frame, the DATA of its own in-flight streams included.
"""

from __future__ import annotations

import asyncio
import shutil

import pytest
from master.conftest import Master, StartMaster, start_master, workdir

__all__ = ["start_master", "workdir"]  # the fixtures this module uses

pytestmark = pytest.mark.timeout(60)


async def _curl(url: str) -> tuple[int, str]:
    curl = shutil.which("curl")
    assert curl, "curl is missing: make system-deps"
    proc = await asyncio.create_subprocess_exec(
        curl, "-s", "--http2-prior-knowledge", "-w", " %{http_code} %{http_version}", url,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await proc.communicate()
    return proc.returncode or 0, (out + err).decode(errors="replace")


async def test_graceful_restart_finishes_h2_streams_in_flight(start_master: StartMaster) -> None:
    master: Master = start_master("--workers", "2", "--graceful-timeout", "10s")
    await master.wait_ready(2)
    base = f"http://127.0.0.1:{master.port}"
    old = set(master.generations())
    in_flight = [asyncio.ensure_future(_curl(base + "/sleep?s=1.5")) for _ in range(6)]
    await asyncio.sleep(0.5)  # the streams are open on the old workers
    restart = asyncio.ensure_future(master.ctl("graceful"))
    during: list[tuple[int, str]] = []
    while not restart.done():  # new connections all along the restart
        during.append(await _curl(base + "/"))
    frames = await restart
    assert frames[-1]["ok"], frames
    finished = await asyncio.gather(*in_flight)
    for code, text in finished + during:
        assert code == 0 and text.endswith(" 200 2"), (code, text)
    assert all(text.startswith("ok ") for _, text in finished)
    after = await _curl(base + "/")
    pid = int(after[1].split()[1])
    assert pid not in old and pid in master.generations()
