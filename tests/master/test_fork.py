"""master/fork.py for real: the child keeps only stdio, the listeners and its own channel end."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Sequence

import pytest

from aioprefork.channel.board import LoadBoard
from aioprefork.config.model import Config
from aioprefork.master import fork

pytestmark = pytest.mark.timeout(10)


def report_and_exit(
    *,
    slot: int,
    gen: int,
    channel: socket.socket,
    listeners: Sequence[socket.socket],
    config: Config,
    board: LoadBoard | None = None,
) -> int:
    """A stand-in worker main: report what the child inherited, then exit with code 7."""
    with open("/proc/self/cmdline", "rb") as f:
        title = f.read().replace(b"\0", b" ").decode().strip()
    facts = {
        "fds": fork.open_fds(),
        "channel": channel.fileno(),
        "listeners": [s.fileno() for s in listeners],
        "sigint_ignored": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
        "sigterm_default": signal.getsignal(signal.SIGTERM) == signal.SIG_DFL,
        "title": title,
        "slot": slot,
        "gen": gen,
        "app": config.app,
    }
    channel.sendall(json.dumps(facts).encode())
    channel.shutdown(socket.SHUT_WR)
    return 7


def test_child_closes_everything_the_master_owns() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    sibling_master_end, sibling_worker_end = socket.socketpair()  # another worker's channel
    control = socket.socket(socket.AF_UNIX)  # stands for the control socket / metrics listener
    secret_file = open(os.devnull, "rb")  # noqa: SIM115 - must stay open across the fork
    try:
        child = fork.spawn(
            3, 2, config=Config(app="x:y"), listeners=[listener], worker_main=report_and_exit
        )
        data = b""
        while chunk := child.channel.recv(65536):
            data += chunk
        _, status = os.waitpid(child.pid, 0)
        child.channel.close()
    finally:
        for thing in (listener, sibling_master_end, sibling_worker_end, control, secret_file):
            thing.close()
    assert os.waitstatus_to_exitcode(status) == 7  # left through os._exit(code)
    facts = json.loads(data)
    assert set(facts["fds"]) == {0, 1, 2, facts["channel"], *facts["listeners"]}
    assert facts["sigint_ignored"] and facts["sigterm_default"]
    assert facts["title"] == "aioprefork: worker 3 gen 2"
    assert (facts["slot"], facts["gen"], facts["app"]) == (3, 2, "x:y")


def test_child_crash_is_contained() -> None:
    def boom(**_: object) -> int:
        raise RuntimeError("worker main blew up")

    child = fork.spawn(0, 1, config=Config(), listeners=[], worker_main=boom)
    _, status = os.waitpid(child.pid, 0)
    child.channel.close()
    assert os.waitstatus_to_exitcode(status) == 1


def test_refuses_to_fork_a_threaded_master() -> None:
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="sneaky")
    thread.start()
    try:
        with pytest.raises(RuntimeError, match="sneaky"):
            fork.spawn(0, 1, config=Config(), listeners=[], worker_main=report_and_exit)
    finally:
        stop.set()
        thread.join()
