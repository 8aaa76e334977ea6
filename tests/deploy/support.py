"""Helpers of the deployment tests: free ports, external tools, aioprefork processes by PID.

Every process started here runs in its own session (process group) and is ended by that group's
id in `stop()`, so a master's workers never outlive a test; nothing is matched by name.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from support import free_port as free_port  # (re-exported for the deploy tests)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VENV_BIN = Path(sys.executable).parent
AIOPREFORK = str(VENV_BIN / "aioprefork")


def tool(name: str) -> str:
    """Path of an external tool: the venv's bin first (Python-distributed tools), then PATH.

    A missing tool fails the test with the install step, never skips it (make system-deps /
    pip install -e '.[test]' put every one of them in place).
    """
    local = VENV_BIN / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    assert found, f"{name} is not installed: run `make system-deps` (Debian) / the test extra"
    return found


def run(
    argv: Sequence[str], *, timeout: float = 60, env: Mapping[str, str] | None = None, **kw: object
) -> subprocess.CompletedProcess[str]:
    """Run a command to completion, output captured as text."""
    options: dict[str, Any] = dict(kw)
    return subprocess.run(
        list(argv),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=None if env is None else {**os.environ, **env},
        check=False,
        **options,
    )


def http_get(
    host: str, port: int, path: str, *, timeout: float = 5.0, source: str | None = None
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(
        host, port, timeout=timeout, source_address=(source, 0) if source else None
    )
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_for(predicate: Callable[[], bool], timeout: float, what: str, step: float = 0.1) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, http.client.HTTPException):
            if predicate():
                return
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def answers(host: str, port: int, path: str, status: int = 200) -> Callable[[], bool]:
    return lambda: http_get(host, port, path, timeout=1.0)[0] == status


@dataclass
class Proc:
    """A started process (its own process group), its log file, and how to end it."""

    popen: subprocess.Popen[bytes]
    log: Path
    name: str
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def stop(self, sig: signal.Signals = signal.SIGTERM, wait: float = 10.0) -> int | None:
        """Signal the group, wait, then SIGKILL the group; returns the exit status."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.popen.wait(wait)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)  # leftover workers of a dead master
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(5)
        return self.popen.returncode


def start(
    argv: Sequence[str],
    log: Path,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
    pass_fds: Sequence[int] = (),
    name: str = "",
) -> Proc:
    handle = log.open("wb")
    try:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            start_new_session=True,
            pass_fds=tuple(pass_fds),
        )
    finally:
        handle.close()
    return Proc(popen, log, name or Path(argv[0]).name)


class Procs:
    """Everything a test started, stopped in reverse order at teardown."""

    def __init__(self) -> None:
        self.items: list[Proc] = []

    def add(self, proc: Proc) -> Proc:
        self.items.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.items):
            proc.stop(wait=5.0)

    def logs(self) -> str:
        return "\n".join(
            f"--- {p.name} (pid {p.pid}) ---\n{p.output()[-3000:]}" for p in self.items
        )


def serve_argv(app: str, port: int, metrics_port: int, run_dir: Path, *extra: str) -> list[str]:
    """`aioprefork serve` on 127.0.0.1 with its own pid file and control socket."""
    return [
        AIOPREFORK,
        "serve",
        app,
        "--bind",
        f"127.0.0.1:{port}",
        "--metrics-bind",
        f"127.0.0.1:{metrics_port}",
        "--pid-file",
        str(run_dir / "aioprefork.pid"),
        "--ctl-socket",
        str(run_dir / "ctl.sock"),
        *extra,
    ]
