"""The arbiter's hands: fork workers, carry their channels, signal them, reap them.

`WorkerPool` does what the arbiter decided and reports back through two callbacks
(`on_message`, `on_exit`); it decides nothing about *when*. Invariants: a pid is signalled
only while it is ours and not yet reaped (a reaped pid may already belong to another process);
an exit is reported only after the worker's channel has been read to EOF, so a Fatal frame sent
just before exiting is never lost to the race with SIGCHLD; every child is reaped, and pids we
did not spawn (orphans re-parented to us when we run as PID 1) are reaped silently. The pool
owns the LoadBoard the workers balance their connections on (channel/board.py) and clears a
slot's record when it spawns into it or reaps it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import socket
import time
from collections.abc import Sequence
from signal import SIGABRT, SIGKILL, Signals
from typing import Final, Protocol

from aioprefork.channel.board import LoadBoard
from aioprefork.channel.endpoint import MasterEnd, PeerGone, open_master_end
from aioprefork.channel.messages import GracefulStop, Stop, ToMaster, ToWorker
from aioprefork.config.model import Config
from aioprefork.errors import ProtocolViolation
from aioprefork.master import fork
from aioprefork.master.scoreboard import Scoreboard, Slot

log = logging.getLogger("aioprefork.server")

STOP_GRACE: Final = 3.0  # after Stop (immediate): SIGKILL if the worker is still there
ABORT_GRACE: Final = 2.0  # after SIGABRT (faulthandler dumps the stacks): SIGKILL
KILL_GRACE: Final = 1.0  # after a graceful deadline: SIGKILL
CHANNEL_LINGER: Final = 1.0  # longest wait for a reaped worker's last frames


class PoolEvents(Protocol):
    def on_message(self, slot: Slot, msg: ToMaster) -> None: ...

    def on_exit(self, slot: Slot, status: int) -> None:
        """`slot`'s process was reaped with wait `status`; it is still in the scoreboard."""


class WorkerPool:
    def __init__(
        self, scoreboard: Scoreboard, listeners: Sequence[socket.socket], events: PoolEvents
    ) -> None:
        self.scoreboard = scoreboard
        self.board = LoadBoard()  # mapped before the first fork: every worker inherits it
        self._listeners = listeners
        self._events = events
        self._endpoints: dict[Slot, MasterEnd] = {}
        self._outbox: dict[Slot, list[ToWorker]] = {}  # frames sent before the channel opened
        self._readers: dict[Slot, asyncio.Task[None]] = {}
        self._reaped: dict[Slot, int] = {}  # wait status, held until the channel's EOF
        self.reserved: frozenset[int] = frozenset()  # slots kept for a dead worker's replacement

    # -- processes -------------------------------------------------------------------------------

    def spawn(self, gen: int, config: Config, cause: str, index: int | None = None) -> Slot | None:
        """Fork a worker of generation `gen` into slot `index` if it is free, else the lowest
        free slot not reserved; None when none is free."""
        sb = self.scoreboard
        if index is None or sb.get(index) is not None or index >= sb.policy.server_limit:
            index = sb.free_index(self.reserved)
        if index is None:
            log.warning("server_limit (%d) reached: cannot start a worker", sb.policy.server_limit)
            return None
        self.board.clear(index)
        child = fork.spawn(index, gen, config=config, listeners=self._listeners, board=self.board)
        slot = sb.add(index, child.pid, gen, cause)
        self._readers[slot] = asyncio.ensure_future(self._listen(slot, child.channel))
        log.debug("worker %d (pid %d, gen %d) started (%s)", index, child.pid, gen, cause)
        return slot

    def signal(self, slot: Slot, sig: Signals) -> None:
        if self.scoreboard.holds(slot) and slot not in self._reaped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(slot.pid, sig)

    def signal_later(self, slot: Slot, sig: Signals, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.signal, slot, sig)

    def stop_gracefully(self, slot: Slot, reason: str, deadline: float) -> None:
        """Drain by `deadline` (unix time, may be inf), SIGKILL shortly after it."""
        self.scoreboard.stop(slot, reason)
        self.send(slot, GracefulStop(deadline=deadline))
        if math.isfinite(deadline):
            self.signal_later(slot, SIGKILL, max(0.0, deadline - time.time()) + KILL_GRACE)

    def stop_now(self, slot: Slot, reason: str) -> None:
        self.scoreboard.stop(slot, reason)
        self.send(slot, Stop())
        self.signal_later(slot, SIGKILL, STOP_GRACE)

    def abort(self, slot: Slot, reason: str) -> None:
        """A hung worker: SIGABRT now (stack dump), SIGKILL after ABORT_GRACE."""
        self.scoreboard.stop(slot, reason)
        self.signal(slot, SIGABRT)
        self.signal_later(slot, SIGKILL, ABORT_GRACE)

    def kill(self, slot: Slot, reason: str) -> None:
        self.scoreboard.stop(slot, reason)
        self.signal(slot, SIGKILL)

    # -- channels --------------------------------------------------------------------------------

    def send(self, slot: Slot, msg: ToWorker) -> None:
        endpoint = self._endpoints.get(slot)
        if endpoint is None:
            if self.scoreboard.holds(slot):
                self._outbox.setdefault(slot, []).append(msg)
            return
        with contextlib.suppress(PeerGone):
            endpoint.send(msg)

    async def _listen(self, slot: Slot, sock: socket.socket) -> None:
        try:
            await self._read(slot, sock)
        finally:
            self._readers.pop(slot, None)
            self._finish(slot)

    async def _read(self, slot: Slot, sock: socket.socket) -> None:
        try:
            endpoint = await open_master_end(sock)
        except OSError:
            sock.close()
            return
        self._endpoints[slot] = endpoint
        for queued in self._outbox.pop(slot, []):
            self.send(slot, queued)
        try:
            async for msg in endpoint:
                self._events.on_message(slot, msg)
        except ProtocolViolation as exc:
            log.error(
                "worker %d (pid %d) broke the channel protocol (%s): killing it",
                slot.index, slot.pid, exc,
            )  # fmt: skip
            self.signal(slot, SIGKILL)

    # -- reaping ---------------------------------------------------------------------------------

    def reap(self) -> None:
        """Collect every exited child without blocking."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            slot = self.scoreboard.by_pid(pid)
            if slot is None:
                continue  # not ours: an orphan re-parented to us (PID 1), reaped silently
            self._reaped[slot] = status
            if slot in self._readers:  # its last frames may be unread: finish at the EOF
                asyncio.get_running_loop().call_later(CHANNEL_LINGER, self._finish, slot)
            else:
                self._finish(slot)

    def _finish(self, slot: Slot) -> None:
        if slot not in self._reaped or not self.scoreboard.holds(slot):
            return
        status = self._reaped.pop(slot)
        reader = self._readers.pop(slot, None)
        if reader is not None:
            reader.cancel()
        endpoint = self._endpoints.pop(slot, None)
        if endpoint is not None:
            endpoint.close()
        self._outbox.pop(slot, None)
        slot.served = self.board.served_by(slot.index)  # beyond its last Status if SIGKILLed
        self.board.clear(slot.index)  # a crashed worker's count must not hold its siblings back
        self._events.on_exit(slot, status)

    async def close(self, timeout: float = 5.0) -> None:
        """SIGKILL every worker still there, reap them (bounded), drop every channel."""
        for slot in list(self.scoreboard):
            self.signal(slot, SIGKILL)
        deadline = time.monotonic() + timeout
        while len(self.scoreboard) and time.monotonic() < deadline:
            self.reap()
            await asyncio.sleep(0.02)
        for task in self._readers.values():
            task.cancel()
        for endpoint in self._endpoints.values():
            endpoint.abort()
