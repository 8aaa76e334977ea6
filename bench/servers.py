"""The servers under test and the exact command line each one is started with.

Pure data: `command(server, launch) -> argv`. The harness adds the `taskset` prefix, the process
group and the port. Every server serves the same app (examples/hello.py) on 127.0.0.1 with its
access log off and its fastest documented single-process options, because the comparison is
per core:

* aioprefork: AIOPREFORK_SERVE below (the one place to change how it is started), with its hot
  path compiled by mypyc (`make compiled` builds build/compiled/, put first on PYTHONPATH), as a
  `pip install .` now ships it by default; `aioprefork-py` is the same server in pure
  Python (the editable install), to show what the compilation buys. `--workers N`
  with N >= 1 is the full product, master + N workers with the scoreboard on; the pool is held at
  N (min = max = N) so maintenance neither grows nor shrinks it mid-run. `aioprefork-w0` is the
  in-process debug mode (`--workers 0`), single-worker runs only.
* uvicorn: `--loop uvloop --http httptools --no-access-log`; `--workers N` when N > 1.
* gunicorn: `-k uvicorn.workers.UvicornWorker -w N` (multi-worker comparisons).
* granian: `--interface asgi --loop uvloop --http 1 --no-ws`, `--workers N`. The runtime mode
  stays at granian's own choice for ASGI ("mt": Rust I/O on its own thread), which measured
  faster here than `--runtime-mode st`; `--task-impl rust` is left out (experimental, and gone
  on Python >= 3.12).
* raw: bench/raw_server.py, a uvloop + httptools protocol with canned answers (the ceiling).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Final

BIN: Final = Path(sys.executable).parent  # the venv's bin/ (not resolved: it holds the scripts)
HERE: Final = Path(__file__).resolve().parent
COMPILED: Final = HERE.parent / "build" / "compiled"  # `make compiled`: the mypyc-built hot path
APP: Final = "examples.hello:app"

# How aioprefork is started. {workers} = 0 serves in-process (no master); N >= 1 forks N workers.
AIOPREFORK_SERVE: Final = (
    "{bin}/aioprefork", "serve", "{app}", "--host", "{host}", "--port", "{port}",
    "--workers", "{workers}", "--no-access-log", "--log-level", "warning",
)  # fmt: skip
# Added when {workers} >= 1: a fixed-size pool, and the master's metrics listener and control
# socket on per-run addresses (their defaults are fixed, and other benchmarks or tests may run).
AIOPREFORK_POOL: Final = (
    "--min-workers", "{workers}", "--max-workers", "{workers}",
    "--metrics-bind", "{host}:{metrics_port}", "--ctl-socket", "{ctl_socket}",
)  # fmt: skip


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """Where and how big one server run is."""

    host: str
    port: int
    workers: int  # worker processes (1 = the single-worker comparison)
    metrics_port: int = 0  # aioprefork's master metrics listener
    ctl_socket: str = ""  # aioprefork's control socket
    app: str = APP  # module:attribute, from the scenario (bench/scenarios.py)


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    name: str
    label: str  # what the tables print
    executable: str  # must exist for the server to be available
    scoreboard: bool = False  # exposes per-worker request counts (aioprefork)
    single_only: bool = False  # only meaningful with one worker


SERVERS: Final[dict[str, Server]] = {
    s.name: s
    for s in (
        Server(
            name="aioprefork",
            label="aioprefork",
            executable=str(BIN / "aioprefork"),
            scoreboard=True,
        ),
        Server(
            name="aioprefork-py",
            label="aioprefork (pure Python)",
            executable=str(BIN / "aioprefork"),
            scoreboard=True,
        ),
        Server(
            name="aioprefork-w0",
            label="aioprefork --workers 0",
            executable=str(BIN / "aioprefork"),
            single_only=True,
        ),
        Server(name="uvicorn", label="uvicorn", executable=str(BIN / "uvicorn")),
        Server(name="gunicorn", label="gunicorn+uvicorn", executable=str(BIN / "gunicorn")),
        Server(name="granian", label="granian", executable=str(BIN / "granian")),
        Server(name="raw", label="raw ceiling", executable=str(HERE / "raw_server.py")),
    )
}
DEFAULT_SINGLE: Final = ("aioprefork", "aioprefork-py", "uvicorn", "granian", "raw")
DEFAULT_MULTI: Final = ("aioprefork", "uvicorn", "gunicorn", "granian", "raw")


def compiled_available() -> bool:
    """Whether build/compiled holds the mypyc-built hot path (`make compiled`): every module of
    buildinfo.HOT_PATH, the one list setup.py compiles (a stale name here once benchmarked the
    pure build as the compiled one)."""
    from aioprefork.buildinfo import HOT_PATH

    return all(any(COMPILED.glob(path.removesuffix(".py") + ".*.so")) for path in HOT_PATH)


def command(server: Server, launch: Launch) -> list[str]:
    """The argv that starts `server` as described by `launch` (no taskset prefix)."""
    host, port, n = launch.host, str(launch.port), launch.workers
    if server.name in ("aioprefork", "aioprefork-py", "aioprefork-w0"):
        workers = 0 if server.name == "aioprefork-w0" else n
        fields = {
            "bin": str(BIN),
            "host": host,
            "port": port,
            "workers": str(workers),
            "metrics_port": str(launch.metrics_port),
            "ctl_socket": launch.ctl_socket,
            "app": launch.app,
        }
        template = AIOPREFORK_SERVE + (AIOPREFORK_POOL if workers >= 1 else ())
        argv = [part.format(**fields) for part in template]
        if server.name != "aioprefork-py" and compiled_available():
            argv = ["env", f"PYTHONPATH={COMPILED}", *argv]
        return argv
    if server.name == "uvicorn":
        argv = [str(BIN / "uvicorn"), launch.app, "--host", host, "--port", port]
        argv += ["--loop", "uvloop", "--http", "httptools", "--no-access-log"]
        argv += ["--log-level", "warning"]
        return argv + (["--workers", str(n)] if n > 1 else [])
    if server.name == "gunicorn":
        return [
            str(BIN / "gunicorn"), launch.app, "-k", "uvicorn.workers.UvicornWorker",
            "-w", str(n), "-b", f"{host}:{port}", "--log-level", "warning",
        ]  # fmt: skip
    if server.name == "granian":
        return [
            str(BIN / "granian"), launch.app, "--interface", "asgi", "--host", host, "--port", port,
            "--workers", str(n), "--loop", "uvloop", "--http", "1", "--no-ws",
            "--no-access-log", "--log-level", "warning",
        ]  # fmt: skip
    if server.name == "raw":
        return [
            sys.executable, str(HERE / "raw_server.py"), "--host", host, "--port", port,
            "--workers", str(n),
        ]  # fmt: skip
    raise ValueError(f"unknown server {server.name!r}")


def select(names: str, workers: int) -> tuple[tuple[Server, ...], list[str]]:
    """`"uvicorn,raw"` -> (servers, notes); single-worker-only servers drop out when workers > 1."""
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in SERVERS]
    if unknown:
        raise ValueError(f"unknown server(s) {', '.join(unknown)}; known: {', '.join(SERVERS)}")
    servers: list[Server] = []
    notes: list[str] = []
    for name in chosen:
        server = SERVERS[name]
        if server.single_only and workers > 1:
            notes.append(f"{name} skipped: it serves in-process, one worker only")
            continue
        if name in ("aioprefork", "aioprefork-w0") and not compiled_available():
            notes.append(f"{name} runs pure Python: {COMPILED} is missing (make compiled)")
        if not Path(server.executable).exists():
            notes.append(
                f"{name} skipped: {server.executable} not installed (make bench installs it)"
            )
            continue
        servers.append(server)
    return tuple(servers), notes
