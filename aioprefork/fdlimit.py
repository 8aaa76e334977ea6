"""Open-file budget: worker_connections must fit under RLIMIT_NOFILE, or accepts are shed silently.

At the limit, accept() fails with EMFILE; libuv then accepts and closes every pending connection
(its "EMFILE trick") and nothing tells the application: under RLIMIT_NOFILE 256, 760 of 1000
connections were dropped with no log and no metric. So the master raises the soft limit as far as
the hard one allows and warns at start when it is still short, and each worker shuts its accept
gate at its fd budget instead, leaving the connections in the kernel's backlog (for a sibling, or
for this worker once a connection closes); every such shut is counted as rejected{fd_limit}.
"""

from __future__ import annotations

import os
import resource
from typing import Final

RESERVE: Final = 64  # fds besides connections: listeners, channel, logs, the app's own files


def needed(worker_connections: int) -> int:
    return worker_connections + RESERVE


def raise_soft_limit(want: int) -> tuple[int, int]:
    """Raise RLIMIT_NOFILE's soft limit toward `want` (never above the hard limit); returns
    (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft, hard


def shortfall_warning(worker_connections: int, soft: int, hard: int) -> str:
    """'' when worker_connections fits under the soft limit; else the operator's one line."""
    need = needed(worker_connections)
    if soft == resource.RLIM_INFINITY or soft >= need:
        return ""
    return (
        f"RLIMIT_NOFILE is {soft} (hard {hard}) but worker_connections = {worker_connections} "
        f"needs {need} open files per worker: each worker takes at most "
        f"{budget(worker_connections, soft, RESERVE // 2)} connections; raise the limit (ulimit -n, systemd LimitNOFILE=) or lower worker_connections"
    )


def budget(worker_connections: int, soft: int, in_use: int) -> int:
    """Connections a worker may hold: worker_connections, or fewer if the fds would run out."""
    if soft == resource.RLIM_INFINITY:
        return worker_connections
    return max(1, min(worker_connections, soft - in_use - RESERVE // 2))


def fds_in_use() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:  # pragma: no cover - not Linux
        return RESERVE // 2
