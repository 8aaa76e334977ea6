"""`ctl upgrade` (SIGUSR2): re-exec the master with its listeners, as nginx upgrades its binary.

How a user upgrades aioprefork or Python, switches a preloaded app's code, or changes binds
without a failed request. The old master:

  1. moves its pid file aside (`<pid_file>.oldbin`) and stops answering on the control socket and
     the metrics port, so that the new master can take them (the `ctl upgrade` connection in
     flight stays open and gets the outcome);
  2. execs `python <the original command line>` as a child, passing every listening socket
     (their descriptor numbers and addresses in AIOPREFORK_UPGRADE_FDS) and the write end of a
     pipe (AIOPREFORK_UPGRADE_PIPE);
  3. waits, serving all along, for the new master's word on that pipe (daemon.Startup: "0" once
     its first generation is ready, else its exit code and why), at most boot_timeout + 30 s;
  4. on success hands systemd the new main pid (MAINPID=), then stops like `ctl stop`: no more
     accepts, its workers drain within graceful_timeout, it exits and removes the .oldbin file,
     unlinking nothing the new master now owns;
     on failure stops what was started, puts the pid file, control socket and metrics port back
     and keeps serving: "upgrade failed: <why>".

The new master adopts the inherited sockets instead of binding (a bind it no longer has is
closed, a new one is bound), never daemonizes again (it is already detached when the old one
was), and otherwise starts as any master does: config re-read, app imported afresh.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from aioprefork.master.signals import Command
from aioprefork.master.states import MasterState, MasterTrigger

if TYPE_CHECKING:
    from aioprefork.master.orders import Job
    from aioprefork.master.verbs import MasterControl

ENV_FDS: Final = "AIOPREFORK_UPGRADE_FDS"
ENV_PIPE: Final = "AIOPREFORK_UPGRADE_PIPE"
ENV_FROM: Final = "AIOPREFORK_UPGRADE_FROM"
WORD_SLACK: Final = 30.0  # seconds beyond boot_timeout the old master waits for the word


@dataclass(frozen=True, slots=True)
class Inheritance:
    """What a master exec'd by `ctl upgrade` receives from the one it replaces."""

    listeners: Mapping[str, int]  # configured address -> inherited listening descriptor
    pipe: int  # where to say "running" or why not (a daemon.Startup)
    old_pid: int


def take_over(environ: MutableMapping[str, str]) -> Inheritance | None:
    """In a new master: the inheritance, or None for an ordinary start. The variables are
    removed, so neither the workers nor a later upgrade see stale ones."""
    fds, pipe, old = (environ.pop(key, "") for key in (ENV_FDS, ENV_PIPE, ENV_FROM))
    if not pipe:
        return None
    listeners = {str(address): int(fd) for address, fd in json.loads(fds or "{}").items()}
    return Inheritance(listeners, int(pipe), int(old or 0))


def command_line() -> list[str]:
    """This process's own command line, to exec again: the interpreter, then what it ran
    (`.../bin/aioprefork serve ...` or `-m aioprefork serve ...`), so an upgraded package or
    interpreter installed at the same paths is what starts."""
    return [sys.executable, *sys.orig_argv[1:]]


async def _word(fd: int, timeout: float) -> str | None:
    """The line the new master writes on the pipe; None on EOF (it died) or timeout."""
    loop = asyncio.get_running_loop()
    done: asyncio.Future[str | None] = loop.create_future()
    data = bytearray()

    def readable() -> None:
        try:
            chunk = os.read(fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        data.extend(chunk)
        if (not chunk or b"\n" in data) and not done.done():
            line = bytes(data).partition(b"\n")[0].decode("utf-8", "replace")
            done.set_result(line if b"\n" in data else None)

    os.set_blocking(fd, False)
    loop.add_reader(fd, readable)
    try:
        async with asyncio.timeout(timeout):
            return await done
    except TimeoutError:
        return None
    finally:
        loop.remove_reader(fd)


def _spawn(arbiter: MasterControl, pipe_w: int) -> int:
    from aioprefork.metrics import appmetrics

    fds = {lsn.address: lsn.sock.fileno() for lsn in arbiter.listeners if lsn.sock.fileno() >= 0}
    env = dict(os.environ)
    env.update({ENV_FDS: json.dumps(fds), ENV_PIPE: str(pipe_w), ENV_FROM: str(os.getpid())})
    if appmetrics.directory() is not None:  # the new master makes its own, not one inside ours
        saved = appmetrics.saved_environ()
        if saved is None:
            env.pop(appmetrics.ENV, None)
        else:
            env[appmetrics.ENV] = saved
    if arbiter.notifier is not None:
        env.update(arbiter.notifier.environ())
    os.set_inheritable(pipe_w, True)
    for fd in fds.values():
        os.set_inheritable(fd, True)
    argv = command_line()
    return os.posix_spawn(argv[0], argv, env)


async def upgrade(arbiter: MasterControl, job: Job) -> None:
    """The old master's side, run as the arbiter's restart task (master/commands.py)."""
    config = arbiter.config
    pid_file, oldbin = config.pid_file, f"{config.pid_file}.oldbin" if config.pid_file else ""
    if pid_file and os.path.exists(pid_file):
        os.replace(pid_file, oldbin)
    await arbiter.services.hand_over()
    pipe_r, pipe_w = os.pipe()
    try:
        try:
            pid = _spawn(arbiter, pipe_w)
        finally:
            os.close(pipe_w)
        job.progress(f"upgrade: new master pid {pid} starting: {' '.join(command_line()[1:])}")
        word = await _word(pipe_r, config.boot_timeout + WORD_SLACK)
    except OSError as exc:
        pid, word = 0, f"1 cannot start a new master: {exc.strerror or exc}"
    finally:
        os.close(pipe_r)
    code, _, why = (word or "").partition(" ")
    if code == "0":
        return _succeeded(arbiter, job, pid, oldbin)
    if not word:
        why = (
            f"no word from new master pid {pid} within {config.boot_timeout + WORD_SLACK:g}s"
            if pid and _alive(pid)
            else f"new master pid {pid} exited before it was ready (its log says why)"
        )
    if pid and _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGQUIT)  # it stops its own workers (pipe of death)
    if oldbin and os.path.exists(oldbin):
        os.replace(oldbin, pid_file)
    await arbiter.services.take_back(config, arbiter.control, arbiter.snapshot)
    text = f"upgrade failed: {why}; this master (pid {os.getpid()}) keeps serving"
    arbiter.record("upgrade", False, text)
    arbiter.set_state(MasterTrigger.RESTARTED)
    job.finish(False, text)


def _succeeded(arbiter: MasterControl, job: Job, pid: int, oldbin: str) -> None:
    from aioprefork.master import commands, daemon
    from aioprefork.master.orders import Job as Order

    text = (
        f"upgraded: new master pid {pid} serving; this master (pid {os.getpid()}) drains its "
        f"{len(arbiter.scoreboard)} workers within {arbiter.config.graceful_timeout:g}s and exits"
    )
    arbiter.record("upgrade", True, text)
    arbiter.hand_over(pid, oldbin)
    daemon.set_title("aioprefork: master (old, draining)")
    job.finish(True, text)  # before stop() cancels this task: the outcome is told
    if arbiter.state is MasterState.RESTARTING:
        commands.stop(arbiter, Order(Command.STOP, done=True))


def _alive(pid: int) -> bool:
    """Whether our child `pid` still runs; reaps it when it has exited."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return False  # reaped already (the master's SIGCHLD reaper)
    return done == 0
