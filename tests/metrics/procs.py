"""Real processes for the metrics tests: an aioprefork master (and its workers), a Prometheus.

Every process started here is stopped by PID: the master with SIGTERM then SIGKILL, and every
worker pid ever seen (read from /proc/<master>/task/<master>/children) with SIGKILL.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import support
from support import free_port as free_port  # (re-exported for the metrics tests)

REPO = Path(__file__).resolve().parents[2]


def children(pid: int) -> set[int]:
    return set(support.children(pid))


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Until `url` answers 200; fail early, with the log, if the process exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"{url}: process exited {proc.returncode}\n{log.read_text()}"
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} not ready in time\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[bytes], extra: Iterable[int] = ()) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for pid in extra:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Server:
    app_url: str
    metrics_url: str
    master: subprocess.Popen[bytes]
    log: Path
    seen_pids: set[int] = field(default_factory=set)

    def workers(self) -> set[int]:
        pids = children(self.master.pid)
        self.seen_pids |= pids
        return pids


@contextlib.contextmanager
def aioprefork(tmp: Path, app: str, workers: int, *flags: str) -> Iterator[Server]:
    """`aioprefork serve APP` with `workers` fixed workers, ready (/readyz) on entry."""
    app_port, metrics_port = free_port(), free_port()
    args = (
        f"--host 127.0.0.1 --port {app_port} --metrics-bind 127.0.0.1:{metrics_port}"
        f" --workers {workers} --min-workers {workers} --max-workers {workers}"
        f" --graceful-timeout 5 --heartbeat-timeout 10 --no-access-log"
        f" --pid-file {tmp / 'master.pid'} --ctl-socket {tmp / 'ctl.sock'}"
    ).split()
    log = tmp / "server.log"
    with log.open("wb") as out:
        master = subprocess.Popen(
            [str(Path(sys.executable).with_name("aioprefork")), "serve", app, *args, *flags],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Server(
        app_url=f"http://127.0.0.1:{app_port}",
        metrics_url=f"http://127.0.0.1:{metrics_port}",
        master=master,
        log=log,
    )
    try:
        wait_http(server.metrics_url + "/readyz", master, log)
        server.workers()
        yield server
    finally:
        stop(master, server.seen_pids | server.workers())


@contextlib.contextmanager
def prometheus(tmp: Path, target: str, exe: str) -> Iterator[str]:
    """A Prometheus scraping `target` every second; yields its base URL."""
    port = free_port()
    config = (
        '{"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},'
        ' "scrape_configs": [{"job_name": "aioprefork", "scrape_interval": "1s",'
        f' "scrape_timeout": "900ms", "static_configs": [{{"targets": ["{target}"]}}]}}]}}'
    )
    (tmp / "prometheus.yml").write_text(config)  # JSON is YAML
    log = tmp / "prometheus.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                exe,
                f"--config.file={tmp / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--log.level=warn",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(url + "/-/ready", proc, log)
        yield url
    finally:
        stop(proc)
