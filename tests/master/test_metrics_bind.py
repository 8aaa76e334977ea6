"""The metrics listener's address: a busy default is a warning, a busy chosen one a refusal."""

from __future__ import annotations

import contextlib
import errno
import socket
from collections.abc import Iterator

import pytest

from .conftest import StartMaster, get

pytestmark = pytest.mark.timeout(30)

DEFAULT_METRICS = ("127.0.0.1", 9464)


@contextlib.contextmanager
def busy(address: tuple[str, int]) -> Iterator[None]:
    """`address` is taken while inside: by us, or already by someone else (either will do)."""
    sock = socket.socket()
    try:
        sock.bind(address)
        sock.listen()
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
    try:
        yield
    finally:
        sock.close()


async def test_a_busy_default_metrics_address_warns_once_and_serves(
    start_master: StartMaster,
) -> None:
    """The user never asked for metrics: a second local server must still start."""
    with busy(DEFAULT_METRICS):
        master = start_master("--workers", "1", default_metrics_bind=True)
        await master.wait_ready(1)
        assert (await get(master.port))[0] == 200
    lines = [line for line in master.stderr.splitlines() if "9464" in line]
    assert len(lines) == 1, master.stderr
    assert "[WARNING]" in lines[0]
    assert "the default address 127.0.0.1:9464 is in use" in lines[0]
    assert "--metrics-bind" in lines[0] and "--no-metrics" in lines[0]


async def test_a_busy_metrics_address_the_user_chose_is_refused(start_master: StartMaster) -> None:
    """...and the log's last line says the exit code the process exits with (it said 1, exit 2)."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        master = start_master("--workers", "1", "--metrics-bind", f"127.0.0.1:{port}")
        assert await master.wait_exit(timeout=15) == 2, master.stderr
    assert f"metrics listener 127.0.0.1:{port}: address already in use" in master.stderr
    assert "master exiting (booting, code 2)" in master.stderr
    assert not master.workers()
