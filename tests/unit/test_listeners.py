"""Listeners are bound once in the master: TCP, IPv6, Unix sockets, inherited fds, systemd activation."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from aioprefork.config.load import load
from aioprefork.errors import BindError
from aioprefork.listeners import bind_all, bind_one, close_all, systemd_listeners


def _config(**cli: str):  # type: ignore[no-untyped-def]
    return load(cli, env={}).config


def test_tcp_ipv6_and_unix_are_bound_listening_and_inheritable(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    listeners = bind_all(_config(bind=f"127.0.0.1:0,[::1]:0,unix:{path}", unix_socket_mode="600"))
    try:
        assert [lst.sock.family for lst in listeners] == [
            socket.AF_INET,
            socket.AF_INET6,
            socket.AF_UNIX,
        ]
        for lst in listeners:
            assert lst.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
            assert lst.sock.get_inheritable()
            assert not lst.sock.getblocking()  # shared with every worker's accept()
            assert os.get_blocking(lst.sock.fileno()) is False
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        host, port = listeners[0].sock.getsockname()
        with socket.create_connection((host, port), timeout=2):
            pass
        assert listeners[1].describe().startswith("[::1]:")
    finally:
        close_all(listeners)
    assert not path.exists()


def test_port_in_use_is_one_clear_line() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        with pytest.raises(BindError) as info:
            bind_all(_config(port=str(port)))
        assert str(info.value) == (
            f"cannot bind 127.0.0.1:{port}: address already in use "
            "(another server is running there; choose another port)"
        )
    finally:
        holder.close()


def test_unix_socket_in_a_missing_directory_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "nodir" / "s.sock"
    with pytest.raises(BindError) as info:
        bind_one(f"unix:{path}", 16)
    assert str(info.value) == (
        f"cannot bind unix:{path}: its directory does not exist (create it, or choose another path)"
    )


def test_stale_unix_socket_is_replaced_but_a_live_one_is_not_stolen(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # the file stays, nobody listens
    first = bind_one(f"unix:{path}", 16)
    try:
        with pytest.raises(BindError, match="another server is listening"):
            bind_one(f"unix:{path}", 16)
    finally:
        close_all([first])


def test_a_busy_unix_socket_is_neither_stolen_nor_removed(tmp_path: Path) -> None:
    """A live server whose backlog is full does not answer the probe at once: not stale."""
    path = str(tmp_path / "busy.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(0)
    waiting = socket.socket(socket.AF_UNIX)
    waiting.setblocking(False)
    waiting.connect(path)  # fills the backlog of 0 (one pending connection)
    try:
        with pytest.raises(BindError, match="cannot tell whether a server still uses it"):
            bind_one(f"unix:{path}", 16)
        assert stat.S_ISSOCK(os.stat(path).st_mode)
    finally:
        waiting.close()
        server.close()


def test_inherited_fd_must_be_a_listening_socket() -> None:
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    listening.listen()
    adopted = bind_one(f"fd://{os.dup(listening.fileno())}", 16)
    try:
        assert adopted.sock.getsockname() == listening.getsockname()
    finally:
        close_all([adopted])
        listening.close()
    idle = socket.socket()
    try:
        with pytest.raises(BindError, match="not a listening stream socket"):
            bind_one(f"fd://{idle.fileno()}", 16)
    finally:
        idle.close()


def test_systemd_socket_activation_only_for_our_pid() -> None:
    assert systemd_listeners({"LISTEN_PID": "1", "LISTEN_FDS": "1"}) == []
    assert systemd_listeners({}) == []
