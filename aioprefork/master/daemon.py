"""The master's process-level chores: where its control socket lives (detach, pid file, privilege
drop and setproctitle belong here too, written by the master's side).

`ctl_socket_path` is the ONE definition of the control socket's default path: the master binds it
and `aioprefork ctl` connects to it, so both must derive it from the same Config the same way.
"""

from __future__ import annotations

from aioprefork.config.model import Config


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
