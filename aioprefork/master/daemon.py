"""The master's process-level chores: control socket path, detach, pid file, privileges, titles.

`ctl_socket_path` is the ONE definition of the control socket's default path: the master binds it
and `aioprefork ctl` connects to it, so both must derive it from the same Config the same way.
The rest runs once in BOOTING (docs/architecture.md#master), in this order: bind (arbiter) -> `daemonize()`
(fork, setsid, fork, stdio to /dev/null: the seed's "become a daemon") -> `write_pid_file()` ->
control socket and metrics listener -> `drop_privileges()`. Nothing here touches a worker.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import sys

import setproctitle

from aioprefork.config.model import Config
from aioprefork.errors import ConfigError, UserError


def ctl_socket_path(config: Config) -> str:
    """config.ctl_socket, else `<pid_file>.ctl`, else /tmp/aioprefork-<first TCP port | unix>.ctl."""
    if config.ctl_socket:
        return config.ctl_socket
    if config.pid_file:
        return f"{config.pid_file}.ctl"
    for address in config.binds():
        if address.startswith(("unix:", "fd://")):
            continue
        return f"/tmp/aioprefork-{address.rpartition(':')[2]}.ctl"
    return "/tmp/aioprefork-unix.ctl"


def set_title(title: str) -> None:
    """`ps` shows this: "aioprefork: master", "aioprefork: worker 3 gen 2"."""
    setproctitle.setproctitle(title)


def on_terminal() -> bool:
    """Attached to a terminal? Then SIGWINCH means a window resize, not "graceful stop"."""
    return any(os.isatty(fd) for fd in (0, 1, 2))


class Startup:
    """The detached master's word to the command that started it: running, or why not.

    Without it `serve --daemon` exited 0 at the fork whatever happened next, and the error (a pid
    file that cannot be written, an app that cannot import) went to /dev/null. One line goes up a
    pipe: "0" once min_workers are READY, or "<exit code> <message>"; the first parent waits for
    it, prints the message and exits with that code (as `systemd` Type=forking expects).
    """

    __slots__ = ("_fd",)

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def running(self) -> None:
        self._say(0, "")

    def failed(self, code: int, message: str) -> None:
        self._say(code or 1, message)

    def _say(self, code: int, message: str) -> None:
        fd, self._fd = self._fd, -1
        if fd < 0:
            return  # said already: only the first word counts
        line = f"{code} {' '.join(message.split())}"[:4000] + "\n"
        with contextlib.suppress(OSError):  # the starting command is gone: nobody to tell
            os.write(fd, line.encode("utf-8", "replace"))
        os.close(fd)


def _await_startup(fd: int) -> int:
    """In the command that ran `serve --daemon`: the daemon's exit code for it, message printed."""
    data = b""
    while b"\n" not in data:
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    code, _, message = data.partition(b"\n")[0].decode("utf-8", "replace").partition(" ")
    if not code.isdigit():
        print(
            "aioprefork: the daemon exited while starting (its stderr is /dev/null: "
            "--log-config keeps its log)",
            file=sys.stderr,
        )
        return 3
    if message:
        print(f"aioprefork: {message}", file=sys.stderr)
    return int(code)


def daemonize() -> Startup:
    """Detach from the terminal and the session: fork, setsid, fork, stdio to /dev/null.

    The first parent waits for the master's Startup word and exits with it; the session leader
    leaves with os._exit (no atexit handlers, no buffered output flushed twice); the grandchild
    continues as the master. Call before any thread or event loop exists.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    ready_r, ready_w = os.pipe()
    leader = os.fork()
    if leader:
        os.close(ready_w)
        os.waitpid(leader, 0)  # it forks the master and leaves at once: no zombie while we wait
        os._exit(_await_startup(ready_r))
    os.close(ready_r)
    os.setsid()  # new session: no controlling terminal, immune to the shell's SIGHUP
    if os.fork():
        os._exit(0)  # the session leader leaves, so we can never reacquire a terminal
    os.umask(0o022)
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    if devnull > 2:
        os.close(devnull)
    return Startup(ready_w)


def write_pid_file(path: str) -> None:
    """Write our pid atomically (tmp + rename); refuse when a live process already holds it."""
    other = read_pid_file(path)
    if other is not None and other != os.getpid() and alive(other):
        raise UserError(f"pid file {path} names a running process ({other}): is a master running?")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise UserError(f"cannot write pid file {path}: {exc.strerror or exc}") from None


def read_pid_file(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def remove_pid_file(path: str) -> None:
    """Remove the pid file if it still names us (a newer master may have replaced it)."""
    if path and read_pid_file(path) == os.getpid():
        with contextlib.suppress(OSError):
            os.unlink(path)


def alive(pid: int) -> bool:
    """Whether `pid` is a live process (a zombie, exited but not yet reaped, counts as gone)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


_NO_ACCOUNT = "no such account on this machine; create it or name an existing one"


def resolve_owner(user: str, group: str) -> tuple[int, int] | None:
    """(uid, gid) for --user/--group (names or numbers), None when neither is given."""
    if not user and not group:
        return None
    try:
        entry = pwd.getpwnam(user) if user and not user.isdigit() else None
    except KeyError:
        raise ConfigError("user", user, "--user", _NO_ACCOUNT) from None
    uid = entry.pw_uid if entry else (int(user) if user else os.getuid())
    if group:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError("group", group, "--group", _NO_ACCOUNT) from None
    else:
        gid = entry.pw_gid if entry else os.getgid()
    return uid, gid


def drop_privileges(user: str, group: str) -> None:
    """Become --user/--group after binding (ports < 1024, root-owned paths). Group first: once
    the uid changes we may no longer change groups. A no-op when already that user."""
    owner = resolve_owner(user, group)
    if owner is None:
        return
    uid, gid = owner
    if (os.getuid(), os.getgid()) == (uid, gid):
        return
    if os.geteuid() != 0:
        raise UserError(f"--user/--group need root to switch to uid {uid} gid {gid}")
    name = pwd.getpwuid(uid).pw_name if _has_passwd_entry(uid) else None
    if name:
        os.initgroups(name, gid)
    else:
        os.setgroups([gid])
    os.setgid(gid)
    os.setuid(uid)


def _has_passwd_entry(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
    except KeyError:
        return False
    return True
