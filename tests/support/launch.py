"""Run `aioprefork serve` as a real process on an inherited, already-listening 127.0.0.1:0 socket.

The socket is bound here and passed as `--bind fd://N`, so there is no port race with other
tests and clients can connect at once (the kernel queues them until the server accepts).
Every process is stopped by its PID when the context exits (QUIT, then KILL).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Served:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def open_fds(self, pid: int | None = None) -> int:
        return len(os.listdir(f"/proc/{pid or self.pid}/fd"))


@contextmanager
def spawn(
    app: str, *args: str, workdir: Path, env: dict[str, str] | None = None
) -> Iterator[Served]:
    """`aioprefork serve APP ARGS...`, in-process mode unless ARGS say --workers N."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(128)
        port = sock.getsockname()[1]
        log = workdir / f"server-{port}.log"
        command = [
            sys.executable, "-m", "aioprefork", "serve", app,
            "--bind", f"fd://{sock.fileno()}", "--no-metrics",
            "--ctl-socket", str(workdir / f"ctl-{port}.sock"),
            *args,
        ]  # fmt: skip
        if "--workers" not in args:
            command += ["--workers", "0"]
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                command,
                pass_fds=[sock.fileno()],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                env={**os.environ, **(env or {})},
            )
    served = Served(proc, port, log)
    try:
        yield served
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGQUIT)  # immediate stop: a master takes its workers along
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)


def wait_until(predicate: object, timeout: float = 10.0, step: float = 0.05) -> None:
    """Poll `predicate()` (a callable) until it is true."""
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(step)
