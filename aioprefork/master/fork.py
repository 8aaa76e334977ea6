"""The fork boundary: `spawn(slot, gen, ...)` makes one worker process and its control channel.

The parent gets back the pid and its end of the socketpair, and returns at once. The child
never returns into the master's stack: it cleans up what it inherited, runs
`worker.process.main()` and leaves through `os._exit(code)` in a `finally`.

Child hygiene, and why each step matters:
* every inherited fd except stdio, the listeners and its own channel end is closed: the master's
  end of *every* channel (a sibling holding another worker's master end would keep that worker
  from seeing EOF when the master dies: an orphan that keeps serving), the control socket and
  metrics listener and their client connections (a ctl client would wait on a worker), and the
  master loop's epoll and self-pipe;
* signal dispositions and the wakeup fd are reset (the master's handlers must not run here);
* inherited Python objects are frozen out of the GC (`gc.freeze()`), so a master object is never
  finalised in the child, closing an fd number the worker reused;
* log FileHandlers are closed first, so the worker reopens its log files itself.
The master must be single-threaded when it forks: a lock held by another thread at fork time
stays locked forever in the child.

Parent side: just before forking, the master hands its free malloc pages back to the kernel
(glibc's malloc_trim, ~0.5 ms): a page it freed but still maps would be mapped into, and counted
in the RSS of, every worker it forks (-0.7 MiB per worker on examples/hello.py).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import logging
import os
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from aioprefork.channel.board import LoadBoard
from aioprefork.config.model import Config
from aioprefork.errors import EXIT_FAILURE
from aioprefork.logs import reopen_log_files
from aioprefork.master.daemon import set_title

log = logging.getLogger("aioprefork.server")

# Reset in the child to the default action; SIGINT stays ignored (the terminal's ^C reaches the
# whole process group, and the master decides what it means).
_RESET: Final = (
    signal.SIGTERM,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
)  # SIGPIPE stays ignored (Python's default): a client gone mid-write must not kill a worker


def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim(pad), or None where the C library has none (musl, macOS)."""
    try:
        trim: Callable[[int], int] = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None
    return trim


MALLOC_TRIM: Final = _malloc_trim()


class WorkerMain(Protocol):
    def __call__(
        self,
        *,
        slot: int,
        gen: int,
        channel: socket.socket,
        listeners: Sequence[socket.socket],
        config: Config,
        board: LoadBoard | None = None,
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class Child:
    pid: int
    channel: socket.socket  # the master's end


def spawn(
    slot: int,
    gen: int,
    *,
    config: Config,
    listeners: Sequence[socket.socket],
    worker_main: WorkerMain | None = None,
    board: LoadBoard | None = None,
) -> Child:
    """Fork one worker for `slot` of generation `gen`; returns in the parent only."""
    assert_single_threaded()
    parent_end, child_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    sys.stdout.flush()
    sys.stderr.flush()
    release_free_memory()
    try:
        pid = os.fork()
    except OSError:
        parent_end.close()
        child_end.close()
        raise
    if pid:
        child_end.close()
        return Child(pid, parent_end)
    code = EXIT_FAILURE
    try:  # the child: nothing below may return into the master's stack
        gc.freeze()
        parent_end.close()
        _reset_signals()
        reopen_log_files()
        keep = {0, 1, 2, child_end.fileno(), *(s.fileno() for s in listeners)}
        close_inherited_fds(keep)
        set_title(f"aioprefork: worker {slot} gen {gen}")
        run = worker_main or _default_main()
        code = run(
            slot=slot, gen=gen, channel=child_end, listeners=listeners, config=config, board=board
        )
    except BaseException:
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _default_main() -> WorkerMain:
    from aioprefork.worker.process import main

    return main


def preload() -> None:
    """Import the worker's code in the master, before forking and before dropping privileges:
    children share the pages, and a worker running as --user need not read root-only paths
    (the interpreter's own stdlib included) to start."""
    _default_main()


def preload_app(config: Config) -> None:
    """`preload`: import the app in the master, so every worker forked from it shares the
    module's pages copy-on-write and skips the import. A failure stops the start (exit 3) with
    the loader's one line and the import's traceback, once."""
    from aioprefork.errors import AppLoadError, BootError
    from aioprefork.worker.process import import_app  # the master reaches the app through it

    started = time.monotonic()
    try:
        import_app(config.app, app_dir=config.app_dir)
    except AppLoadError as exc:
        cause = exc.__cause__
        if cause is not None:
            log.error("preloading %s failed", config.app, exc_info=cause)
        raise BootError(f"preload: {exc}") from None
    log.info(
        "preloaded %s in the master (%.0f ms)", config.app, (time.monotonic() - started) * 1000
    )


def release_free_memory() -> None:
    """Give the kernel back the malloc pages the master freed, so no worker inherits them."""
    if MALLOC_TRIM is not None:
        MALLOC_TRIM(0)


def assert_single_threaded() -> None:
    if threading.active_count() != 1:
        names = ", ".join(t.name for t in threading.enumerate())
        raise RuntimeError(f"refusing to fork: the master runs threads ({names})")


def _reset_signals() -> None:
    signal.set_wakeup_fd(-1)  # the master loop's self-pipe is about to be closed
    for sig in _RESET:
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_SETMASK, set())


def open_fds() -> list[int]:
    """This process's open descriptors (Linux /proc; the fallback probes a bounded range)."""
    try:
        listed = sorted(int(name) for name in os.listdir("/proc/self/fd"))
        return [fd for fd in listed if _is_open(fd)]  # drops the fd listdir itself used
    except FileNotFoundError:  # pragma: no cover - not Linux
        limit = min(os.sysconf("SC_OPEN_MAX"), 65536)
        return [fd for fd in range(limit) if _is_open(fd)]


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def close_inherited_fds(keep: Collection[int]) -> None:
    for fd in open_fds():
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
