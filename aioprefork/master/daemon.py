"""The master's process-level chores: control socket path, detach, pid file, privileges, titles.

`ctl_socket_path` is the ONE definition of the control socket's default path: the master binds it
and `aioprefork ctl` connects to it, so both must derive it from the same Config the same way. The
default lives in a private runtime directory (README "Control plane trust"): a socket path in a
world-writable /tmp could be pre-created by any local user, and `ctl` would trust whoever answers.
The rest runs once in BOOTING (docs/architecture.md#master), in this order: bind (arbiter) -> `daemonize()`
(fork, setsid, fork, stdio to /dev/null: the seed's "become a daemon") -> `write_pid_file()` ->
control socket and metrics listener -> `drop_privileges()`. Nothing here touches a worker.
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import sys
import time
from collections.abc import Mapping

import setproctitle

from aioprefork.config.model import Config
from aioprefork.errors import ConfigError, UserError
from aioprefork.logs import redirect_stderr

ROOT_RUNTIME_DIR = "/run/aioprefork"
PID_FILE_MODE = 0o644


def runtime_dir(euid: int | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Where default control sockets live: /run/aioprefork for root, else $XDG_RUNTIME_DIR
    (private to the user by definition), else /tmp/aioprefork-<uid> (created 0700)."""
    euid = os.geteuid() if euid is None else euid
    environ = os.environ if environ is None else environ
    if euid == 0:
        return ROOT_RUNTIME_DIR
    xdg = environ.get("XDG_RUNTIME_DIR", "")
    if xdg.startswith("/"):
        return xdg
    return f"/tmp/aioprefork-{euid}"


def ctl_socket_path(config: Config, directory: str | None = None) -> str:
    """config.ctl_socket, else `<pid_file>.ctl`, else <runtime_dir>/aioprefork-<first TCP port |
    unix>.ctl."""
    if config.ctl_socket:
        return config.ctl_socket
    if config.pid_file:
        return f"{config.pid_file}.ctl"
    directory = runtime_dir() if directory is None else directory
    for address in config.binds():
        if address.startswith(("unix:", "fd://")):
            continue
        return f"{directory}/aioprefork-{address.rpartition(':')[2]}.ctl"
    return f"{directory}/aioprefork-unix.ctl"


def is_default_ctl_socket(config: Config) -> bool:
    return not config.ctl_socket and not config.pid_file


def private_dir(path: str) -> str:
    """Make `path` (mode 0700) or check that the one there is ours and closed to others;
    UserError naming the fix otherwise. Returns `path`."""
    try:
        os.mkdir(path, 0o700)
    except FileExistsError:
        pass
    except OSError as exc:
        raise UserError(f"cannot create runtime directory {path}: {exc.strerror or exc}") from None
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        raise UserError(f"runtime directory {path} is not a directory: remove it or set ctl_socket")
    if info.st_uid != os.geteuid():
        raise UserError(
            f"runtime directory {path} is owned by uid {info.st_uid}, not by us: "
            "remove it or set ctl_socket"
        )
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours: close it (an old one made under a loose umask)
    return path


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
            "--error-log PATH keeps its log)",
            file=sys.stderr,
        )
        return 3
    if message:
        print(f"aioprefork: {message}", file=sys.stderr)
    return int(code)


def daemonize(error_log: str = "") -> Startup:
    """Detach from the terminal and the session: fork, setsid, fork, stdio to /dev/null
    (stderr to `error_log` when given: tracebacks and stack dumps that bypass logging land there).

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
    if error_log:
        redirect_stderr(error_log)
    return Startup(ready_w)


def write_pid_file(path: str) -> None:
    """Write our pid atomically (tmp + rename), mode 0644 whatever the umask; refuse when a live
    process already holds it."""
    other = read_pid_file(path)
    if other is not None and other != os.getpid() and alive(other):
        raise UserError(f"pid file {path} names a running process ({other}): is a master running?")
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, PID_FILE_MODE)
        with open(fd, "w", encoding="ascii") as f:
            os.fchmod(fd, PID_FILE_MODE)  # the umask may have taken bits away or left them
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


MASTER_TITLE = "aioprefork: master"


def started_at(pid: int) -> float | None:
    """Unix time `pid` started (from /proc), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/stat", encoding="ascii") as f:
            boot = next(int(line.split()[1]) for line in f if line.startswith("btime "))
    except (OSError, IndexError, ValueError, StopIteration):
        return None
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def master_title(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def why_not_our_master(pid: int, pid_file: str) -> str:
    """'' when `pid` is provably the master that wrote `pid_file` (its process title, and a start
    no later than the file was written); else why not. A pid is reused after a crash: a stale pid
    file must never make `ctl stop` signal an unrelated process."""
    title = master_title(pid)
    if not title.startswith(MASTER_TITLE):
        return f"pid {pid} is {title[:60] or 'another process'!r}, not an aioprefork master"
    start = started_at(pid)
    try:
        written = os.stat(pid_file).st_mtime
    except OSError as exc:
        return f"cannot stat {pid_file}: {exc.strerror or exc}"
    if start is None or start > written + 1.0:  # (1 s: /proc's start time is in clock ticks)
        when = time.strftime("%H:%M:%S", time.localtime(start or 0))
        return f"pid {pid} started at {when}, after the pid file was written"
    return ""


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


def hand_over_log_files(paths: list[str], owner: tuple[int, int] | None) -> None:
    """Give the log files the master opened as root to the --user it is about to become: every
    worker reopens its logs after the fork, and `ctl reopen-logs` reopens them in every process,
    all as that user (nginx chowns its logs to its worker user the same way)."""
    if owner is None or os.geteuid() != 0:
        return
    for path in paths:
        if path:
            with contextlib.suppress(OSError):  # gone already: the next write recreates it
                os.chown(path, *owner)


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
