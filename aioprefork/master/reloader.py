"""`serve --reload`: restart the workers gracefully when the app's files change (development).

The master never imports the app, so new workers import the edited code; a graceful restart
starts them before the old ones stop, and rolls back when they cannot boot: a broken edit is
logged with its traceback while the previous code keeps serving, and the next save tries again.

The watching (watchfiles, an optional extra: `aioprefork[reload]`) runs in a child process, not
in the master: watchfiles uses threads, and the master refuses to fork workers while it has
threads (master/fork.py). The child prints one line per batch of changes on its stdout; it exits
when its stdin (a pipe from the master) closes, so it never outlives the master, even a killed one.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib.util
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from aioprefork.config.model import Config

log = logging.getLogger("aioprefork.server")

CHILD: Final = "from aioprefork.master.reloader import main; main()"
WATCHING: Final = "watching"  # the child's first line: its watch is in place
INSTALL_HINT: Final = "pip install 'aioprefork[reload]' (or: pip install watchfiles)"
IGNORED_DIRS: Final = frozenset(
    {"__pycache__", ".git", ".hg", ".svn", ".venv", "venv", ".tox", ".nox", "node_modules",
     ".mypy_cache", ".pytest_cache", ".ruff_cache", "build", "dist"}
)  # fmt: skip


def have_watchfiles() -> bool:
    try:
        return importlib.util.find_spec("watchfiles") is not None
    except (ImportError, ValueError):  # ValueError: sys.modules["watchfiles"] is None
        return False


def wanted(path: str, includes: Sequence[str], excludes: Sequence[str]) -> bool:
    """Whether a change to `path` should restart the workers: its name (or its path) matches an
    include and no exclude, and no directory on the way is a cache, a VCS or a virtualenv."""
    parts = path.replace(os.sep, "/").split("/")
    if IGNORED_DIRS.intersection(parts[:-1]):
        return False
    name = parts[-1]

    def matches(patterns: Sequence[str]) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(path, p) for p in patterns)

    return matches(includes) and not matches(excludes)


def watched_dirs(config: Config) -> list[str]:
    return [os.path.abspath(d) for d in (config.reload_dirs or (config.app_dir,))]


class Reloader:
    """The master's end: starts the watcher child and calls `on_change(paths)` per batch."""

    def __init__(self, config: Config, on_change: Callable[[list[str]], None]) -> None:
        self._on_change = on_change
        spec = {
            "dirs": watched_dirs(config),
            "includes": list(config.reload_includes),
            "excludes": list(config.reload_excludes),
        }
        self.dirs = spec["dirs"]
        self._child = subprocess.Popen(
            [sys.executable, "-c", CHILD, json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        assert self._child.stdout is not None
        self._out = self._child.stdout.fileno()
        os.set_blocking(self._out, False)
        self._buffer = b""
        asyncio.get_running_loop().add_reader(self._out, self._readable)

    @property
    def pid(self) -> int:
        return self._child.pid

    def _readable(self) -> None:
        try:
            data = os.read(self._out, 65536)
        except BlockingIOError:
            return
        if not data:
            asyncio.get_running_loop().remove_reader(self._out)
            log.warning("reload: the file watcher exited; --reload is off until a restart")
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            paths = json.loads(line)
            if paths == WATCHING:
                log.info(
                    "reload: watching %s (a change restarts the workers gracefully)",
                    ", ".join(self.dirs),
                )
            elif isinstance(paths, list) and paths:
                self._on_change([str(p) for p in paths])

    def close(self) -> None:
        """Close the child's stdin: it stops watching and exits (within watchfiles' step)."""
        with contextlib.suppress(ValueError, OSError):
            asyncio.get_running_loop().remove_reader(self._out)
        for stream in (self._child.stdin, self._child.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def main() -> None:
    """The watcher child: one JSON list of changed paths per line on stdout, until stdin closes."""
    import watchfiles

    # Signals to the process group (^C, systemd, timeout(1)) are the master's to act on: this
    # child leaves when the master closes its stdin, or dies
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
        signal.signal(sig, signal.SIG_IGN)
    spec: dict[str, Any] = json.loads(sys.argv[1])
    includes, excludes = spec["includes"], spec["excludes"]
    stop = threading.Event()

    def master_gone() -> None:
        with contextlib.suppress(OSError):
            while sys.stdin.buffer.read(4096):
                pass
        stop.set()

    threading.Thread(target=master_gone, daemon=True).start()

    def watch_filter(change: Any, path: str) -> bool:
        return wanted(path, includes, excludes)

    ready = False
    try:
        for changes in watchfiles.watch(
            *spec["dirs"],
            watch_filter=watch_filter,
            stop_event=stop,
            debounce=300,
            step=50,
            rust_timeout=200,
            yield_on_timeout=True,  # an empty batch first: the watch is in place
        ):
            lines = [] if ready else [json.dumps(WATCHING)]
            ready = True
            if changes:
                paths: Iterable[str] = sorted({path for _, path in changes})
                lines.append(json.dumps(list(paths)))
            if lines:
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()
    except (BrokenPipeError, KeyboardInterrupt):
        pass
    os._exit(0)
