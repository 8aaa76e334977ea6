"""Bind every listener once, before any fork (docs/architecture.md#processes): workers inherit, never bind.

Accepted forms: `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` (mode from config.unix_socket_mode),
`fd://N` (an already-listening inherited descriptor) and systemd socket activation
(`LISTEN_FDS`/`LISTEN_PID`, descriptors from 3). Failures become one-line BindErrors.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from aioprefork.config.model import Config
from aioprefork.errors import BindError

SD_LISTEN_FDS_START: Final = 3
# struct tcp_info (linux/tcp.h): 8 one-byte fields, then u32s; for a socket in LISTEN state
# tcpi_unacked is the accept queue's length and tcpi_sacked its limit (the effective backlog).
_TCP_INFO: Final = struct.Struct("=8B6I")
_TCP_LISTEN: Final = 10


@dataclass(slots=True)
class Listener:
    address: str  # as configured, e.g. "127.0.0.1:8000", "unix:/run/app.sock", "fd://3"
    sock: socket.socket

    @property
    def is_unix(self) -> bool:
        return self.sock.family == socket.AF_UNIX

    def queue(self) -> tuple[int, int] | None:
        """(connections waiting in the accept queue, its limit), or None where the kernel does
        not say (a Unix socket, a non-Linux system). Queued connections are clients no worker
        has accepted yet: every accepting slot is busy, or a worker's loop is stalled."""
        if self.is_unix or not hasattr(socket, "TCP_INFO"):
            return None
        try:
            info = self.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, _TCP_INFO.size)
        except OSError:
            return None
        fields = _TCP_INFO.unpack_from(info.ljust(_TCP_INFO.size, b"\0"))
        if fields[0] != _TCP_LISTEN:
            return None
        return fields[12], fields[13]

    def describe(self) -> str:
        """The address actually bound (resolves port 0), for logs and tests."""
        name = self.sock.getsockname()
        if self.is_unix:
            return f"unix:{name}"
        host, port = name[0], name[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def bind_all(
    config: Config,
    environ: Mapping[str, str] | None = None,
    inherited: Mapping[str, int] | None = None,
) -> list[Listener]:
    """All listeners for `config`; on any failure closes what was bound and raises BindError.

    `inherited` (a master exec'd by ctl upgrade): address -> descriptor of the old master's
    listeners. A configured address is adopted from there instead of bound; an inherited fd://
    listener (systemd's, or given as fd://N) is kept as systemd's would be; the rest, binds the
    new config dropped, are closed.
    """
    environ = os.environ if environ is None else environ
    pending = dict(inherited or {})
    listeners: list[Listener] = []
    try:
        activated = systemd_listeners(environ)
        for address in [a for a in pending if a.startswith("fd://")]:
            activated.append(Listener(address, _adopt_fd(pending.pop(address), address)))
        listeners.extend(activated)
        addresses = config.bind if (config.bind or activated) else config.binds()
        for address in addresses:
            if any(lsn.address == address for lsn in activated):
                continue
            fd = pending.pop(address, None)
            if fd is not None:
                listeners.append(Listener(address, _adopt_fd(fd, address)))
            else:
                listeners.append(bind_one(address, config.backlog, config.unix_socket_mode))
        for fd in pending.values():
            with contextlib.suppress(OSError):
                os.close(fd)
    except BaseException:
        close_all(listeners, unlink=False)
        raise
    return listeners


def bind_one(address: str, backlog: int, unix_mode: int = 0o660) -> Listener:
    if address.startswith("unix:"):
        return Listener(address, _bind_unix(address[5:], backlog, unix_mode))
    if address.startswith("fd://"):
        return Listener(address, _adopt_fd(int(address[5:]), address))
    host, _, port_text = address.rpartition(":")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    return Listener(address, _bind_tcp(host, int(port_text), backlog, address))


def _bind_tcp(host: str, port: int, backlog: int, address: str) -> socket.socket:
    try:
        infos = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except socket.gaierror as exc:
        raise BindError(f"cannot bind {address}: unknown host ({exc.strerror})") from None
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind {address}: {_explain(exc)}") from None
    return _shared(sock)


def _bind_unix(path: str, backlog: int, mode: int) -> socket.socket:
    _remove_stale_unix_socket(path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(path)
        os.chmod(path, mode)
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise BindError(f"cannot bind unix:{path}: {_explain(exc)}") from None
    return _shared(sock)


def _shared(sock: socket.socket) -> socket.socket:
    """Ready to share with the workers: inherited across fork and exec, and non-blocking. Every
    worker polls and accepts on this one file description (several descriptors each, in the
    worker's accept gate), so it must never be blocking: an accept() racing a sibling for the
    last queued connection would block that worker's loop."""
    sock.setblocking(False)
    sock.set_inheritable(True)
    return sock


def _remove_stale_unix_socket(path: str) -> None:
    """Unlink a socket file left by a dead server; refuse to steal one a live server answers on."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        raise BindError(f"cannot bind unix:{path}: a file that is not a socket is in the way")
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.settimeout(1.0)  # a live server with a full backlog does not answer at once
        probe.connect(path)
    except (ConnectionRefusedError, FileNotFoundError):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # nobody listens: left by a server that died
        return
    except OSError as exc:  # timed out (busy), no permission...: not ours to remove
        raise BindError(
            f"cannot bind unix:{path}: cannot tell whether a server still uses it "
            f"({exc.strerror or 'timed out'}); remove it if none does"
        ) from None
    finally:
        probe.close()
    raise BindError(f"cannot bind unix:{path}: another server is listening there")


def _adopt_fd(fd: int, address: str) -> socket.socket:
    try:
        sock = socket.socket(fileno=fd)
    except OSError as exc:
        raise BindError(f"cannot use {address}: {_explain(exc)}") from None
    if sock.type != socket.SOCK_STREAM or not sock.getsockopt(
        socket.SOL_SOCKET, socket.SO_ACCEPTCONN
    ):
        sock.detach()
        raise BindError(f"cannot use {address}: not a listening stream socket")
    return _shared(sock)


def systemd_listeners(environ: Mapping[str, str]) -> list[Listener]:
    """Descriptors passed by systemd socket activation (sd_listen_fds(3)), if meant for us."""
    if environ.get("LISTEN_PID") != str(os.getpid()):
        return []
    try:
        count = int(environ.get("LISTEN_FDS", "0"))
    except ValueError:
        return []
    return [
        Listener(f"fd://{fd}", _adopt_fd(fd, f"fd://{fd} (systemd)"))
        for fd in range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count)
    ]


def close_all(listeners: Iterable[Listener], *, unlink: bool = True) -> None:
    for listener in listeners:
        path = listener.sock.getsockname() if listener.is_unix and unlink else None
        listener.sock.close()
        if path and listener.address.startswith("unix:"):
            with contextlib.suppress(OSError):
                os.unlink(path)


def _explain(exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return "address already in use (another server is running there; choose another port)"
    if exc.errno == errno.EACCES:
        return "permission denied (ports below 1024 need privileges; choose a port above 1024)"
    if exc.errno == errno.EADDRNOTAVAIL:
        return "address not available on this machine (check the host)"
    if exc.errno == errno.ENOENT:
        return "its directory does not exist (create it, or choose another path)"
    return exc.strerror or str(exc)
