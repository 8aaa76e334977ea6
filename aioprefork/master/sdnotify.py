"""systemd's service notification protocol (sd_notify(3)), spoken by the master without libsystemd.

With `Type=notify` (or `Type=notify-reload`) systemd passes NOTIFY_SOCKET, a datagram socket
that takes newline-separated KEY=VALUE assignments. The master tells it:

    READY=1                          the first generation is serving (and again after a reload)
    RELOADING=1, MONOTONIC_USEC=...  a graceful or hard restart began (systemd matches the clock)
    STOPPING=1                       the master started stopping
    STATUS=...                       one line of the scoreboard, shown by `systemctl status`
    WATCHDOG=1                       the master's cycle is alive (WatchdogSec= in the unit)

Only the master talks: the variables are removed from the environment once read, so neither the
workers nor the app inherit them (systemd would reject their messages under NotifyAccess=main,
and an app that calls sd_notify itself must not report READY for the whole server). A send that
fails is logged at DEBUG and otherwise ignored: notification is advisory, serving is not.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import MutableMapping
from typing import Final

from aioprefork.snapshot import READY, STOPPING, Snapshot

log = logging.getLogger("aioprefork.server")

ENV_KEYS: Final = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")


def address_of(notify_socket: str) -> str:
    """NOTIFY_SOCKET as a socket address: a leading '@' names Linux's abstract namespace."""
    return "\0" + notify_socket[1:] if notify_socket.startswith("@") else notify_socket


def watchdog_interval(environ: MutableMapping[str, str], pid: int) -> float:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC, as sd_watchdog_enabled(3)
    advises); 0 when the unit sets no WatchdogSec= or the watchdog is meant for another pid."""
    try:
        usec = int(environ.get("WATCHDOG_USEC", "0"))
        owner = int(environ.get("WATCHDOG_PID", str(pid)))
    except ValueError:
        return 0.0
    return usec / 2e6 if usec > 0 and owner == pid else 0.0


def reloading_fields(monotonic_ns: int) -> list[str]:
    """RELOADING=1 with the CLOCK_MONOTONIC time systemd needs to order it (Type=notify-reload)."""
    return ["RELOADING=1", f"MONOTONIC_USEC={monotonic_ns // 1000}"]


def status_line(snap: Snapshot) -> str:
    """The scoreboard in one line, for STATUS= (`systemctl status` shows it under the unit)."""
    current = [s for s in snap.slots if s.current and s.state != STOPPING]
    ready = sum(1 for s in current if s.state == READY)
    draining = sum(1 for s in snap.slots if s.state == STOPPING)
    busy = sum(s.active for s in snap.slots)
    open_ = sum(s.open for s in snap.slots)
    line = (
        f"{snap.master_state}, generation {snap.generation}: {ready}/{len(current)} workers "
        f"ready, {busy} busy, {open_} connections, {snap.totals.requests} requests served"
    )
    return line + (f", {draining} draining" if draining else "")


class Notifier:
    """The master's end of NOTIFY_SOCKET. `from_environ()` returns None outside systemd."""

    def __init__(self, address: str, interval: float = 0.0) -> None:
        self.address = address
        self.watchdog_interval = interval
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._last_status = ""
        self._last_ping = 0.0

    @classmethod
    def from_environ(cls, environ: MutableMapping[str, str] | None = None) -> Notifier | None:
        env = os.environ if environ is None else environ
        path = env.get("NOTIFY_SOCKET", "")
        interval = watchdog_interval(env, os.getpid())
        for key in ENV_KEYS:
            env.pop(key, None)
        return cls(address_of(path), interval) if path else None

    def environ(self) -> dict[str, str]:
        """The variables for a master that takes over from this one (master/upgrade.py)."""
        env = {
            "NOTIFY_SOCKET": "@" + self.address[1:] if self.address[:1] == "\0" else self.address
        }
        if self.watchdog_interval:
            env["WATCHDOG_USEC"] = str(int(self.watchdog_interval * 2e6))
        return env

    def hand_over(self, pid: int, status: str) -> None:
        """Tell systemd the service's main process is now `pid` (a new master, ctl upgrade)."""
        self.send(f"MAINPID={pid}", "READY=1", f"STATUS={status}")

    def send(self, *fields: str) -> None:
        try:
            self._sock.sendto("\n".join(fields).encode(), self.address)
        except OSError as exc:
            log.debug("systemd notification %s not sent: %s", fields, exc)

    def ready(self, snap: Snapshot) -> None:
        self._last_status = status_line(snap)
        self.send("READY=1", f"STATUS={self._last_status}")

    def reloading(self, why: str) -> None:
        self.send(*reloading_fields(time.monotonic_ns()), f"STATUS={why}")

    def stopping(self, why: str) -> None:
        self.send("STOPPING=1", f"STATUS={why}")

    def tick(self, snap: Snapshot, now: float) -> None:
        """Once per master cycle: a changed STATUS= line, and WATCHDOG=1 when it is due."""
        line = status_line(snap)
        fields: list[str] = []
        if line != self._last_status:
            self._last_status = line
            fields.append(f"STATUS={line}")
        if self.watchdog_interval and now - self._last_ping >= self.watchdog_interval:
            self._last_ping = now
            fields.append("WATCHDOG=1")
        if fields:
            self.send(*fields)

    def close(self) -> None:
        self._sock.close()
