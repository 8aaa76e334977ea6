"""What every forked worker carries: the master's imports at fork time, so keep them lean.

A worker's memory starts as a copy of the master's, and the master is the process that parsed the
command line. These tests start a real `aioprefork serve` (the console script, as an operator
runs it) with an app that reports its worker's sys.modules, and check that the command-line and
Prometheus exposition stacks stayed out of it (issue 8: worker RSS 36.4 -> 23.5 MiB, measured by
bench/procs.py; an RSS figure is too noisy to assert, a module set is exact).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from support import AIOPREFORK, children, short_tmpdir

APPS = Path(__file__).resolve().parent / "apps"
ROOT = Path(__file__).resolve().parents[2]

# Master-only stacks: typer (and the pydantic it builds option adapters with) parse the command
# line; prometheus_client renders /metrics, and is imported at the first scrape, not at start;
# html (with its 0.5 MiB entity table) is not needed to escape the /server-status page; tomllib and
# logging.config are imported only to read a --config or --log-config file (none given here).
NOT_IN_A_WORKER = (
    "typer",
    "click",
    "pydantic",
    "pydantic_core",
    "rich",
    "shellingham",
    "prometheus_client",
    "http.server",
    "wsgiref",
    "html",
    "tomllib",
    "logging.config",
    "aioprefork.cli.commands",
    "aioprefork.cli.ctl",
    "aioprefork.metrics.collector",
)


@dataclass(frozen=True)
class Answer:
    pid: int
    modules: frozenset[str]

    def carried(self) -> list[str]:
        """The master-only modules this worker holds."""
        return sorted(
            name
            for name in self.modules
            if any(name == top or name.startswith(top + ".") for top in NOT_IN_A_WORKER)
        )


def ask(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> Answer:
    """GET / until a worker answers: its pid and module names."""
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, f"aioprefork exited with {proc.returncode}"
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/")
            response = conn.getresponse()
            assert response.status == 200
            answer = json.loads(response.read())
            return Answer(answer["pid"], frozenset(answer["modules"]))
        except OSError:
            assert time.monotonic() < deadline, "no worker answered"
            time.sleep(0.05)
        finally:
            conn.close()


@dataclass
class Server:
    """One `aioprefork serve` under test, and every worker pid seen under it."""

    proc: subprocess.Popen[bytes]
    port: int
    seen: set[int] = field(default_factory=set)

    def ask(self) -> Answer:
        answer = ask(self.port, self.proc)
        self.seen.update(children(self.proc.pid))
        return answer

    def stop(self) -> None:
        """TERM (the master cleans up after itself), then KILL whatever is left, by pid."""
        self.seen.update(children(self.proc.pid))
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)  # not reaped yet: still ours
        self.proc.wait(timeout=10)
        for pid in self.seen:  # a worker still running (its title says so) after its master
            with contextlib.suppress(OSError):
                if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"aioprefork: worker"):
                    os.kill(pid, signal.SIGKILL)


Serve = Callable[..., Server]


@pytest.fixture
def serve() -> Iterator[Serve]:
    """serve(*flags) starts `aioprefork serve` with one worker, answering once it is up."""
    stack = contextlib.ExitStack()
    servers: list[Server] = []
    workdir = stack.enter_context(short_tmpdir("apf-w-"))

    def start(*flags: str) -> Server:
        with socket.create_server(("127.0.0.1", 0)) as listener:
            fd = listener.fileno()
            argv = [
                AIOPREFORK, "serve", "modules_app:app", "--app-dir", str(APPS),
                "--bind", f"fd://{fd}", "--ctl-socket", str(workdir / f"ctl{len(servers)}"),
                "--metrics-bind", "127.0.0.1:0", "--no-access-log", "--log-level", "warning",
                "--min-workers", "1", "--max-workers", "1", *flags,
            ]  # fmt: skip
            proc = subprocess.Popen(
                argv, cwd=ROOT, stdin=subprocess.DEVNULL, pass_fds=(fd,), start_new_session=True
            )
            server = Server(proc, listener.getsockname()[1])
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    stack.close()


def test_a_worker_carries_neither_the_cli_nor_the_metrics_exposition(serve: Serve) -> None:
    server = serve("--workers", "1")
    first = server.ask()
    assert "aioprefork.worker.process" in first.modules  # the answer is a forked worker's
    assert first.carried() == []
    # A worker that dies is replaced by a fork of the same master: reaping it (and dropping its
    # app-metric files) must not have imported anything the replacement would carry.
    os.kill(first.pid, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while (second := server.ask()).pid == first.pid:
        assert time.monotonic() < deadline, "the killed worker was not replaced"
        time.sleep(0.05)
    assert second.carried() == []


def test_a_command_line_typer_must_read_still_serves(serve: Serve) -> None:
    answer = serve("-w1").ask()  # an attached short value: cli/argv.py leaves it to typer
    assert "aioprefork.worker.process" in answer.modules
    assert "aioprefork.cli.commands" in answer.modules
