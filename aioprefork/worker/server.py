"""WorkerServer: serve an ASGI app on already-listening sockets, on the running event loop.

Internal. Independent of how the process started: a forked worker and the in-process
`--workers 0` mode both build one, `await start()`, and later `shutdown()` or `abort()`.
It never binds: the sockets come bound and listening from the master (SPEC section 1).

The accept gate (SPEC section 5, Apache event's disable_listensocks): accept while fewer than
`worker_connections` connections are open; at the limit first close the oldest idle keep-alive
connection (nginx reusable connections), and if there is none stop accepting, so the kernel
hands new connections to sibling workers; accept again once below the limit. uvloop cannot pause
a Server, so accepting = a Server over a dup() of each listening socket, and pausing = closing
those Servers (the original fds stay open, unpolled). EMFILE/ENFILE/ENOBUFS/ENOMEM at accept are
absorbed by libuv (it sheds the connection and keeps listening); a listener that nevertheless
stops serving is reopened by the one-second tick, which also refreshes the Date header.

Among sibling workers the gate also balances (worker/balance.py): it shuts while this worker holds
more than its share of the pool's connections, and connections held beyond it are handed back
(keep-alive ends after their next response). A heartbeat every 0.1 s, every 0.01 s while the gate
is shut for balance, publishes the count and re-assesses the share.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from aioprefork.asgi.types import ASGIApp
from aioprefork.config.model import HttpLimits
from aioprefork.protocol.http import HttpProtocol, Shared
from aioprefork.worker.balance import BEAT_INTERVAL, HAND_BACK_INTERVAL, PAUSED_INTERVAL, Balance
from aioprefork.worker.stats import WorkerStats

__all__ = ["WorkerServer"]

log: Final = logging.getLogger("aioprefork.error")
_POLL: Final = 0.1  # shutdown re-checks this often for connections that leave without a callback


class WorkerServer:
    def __init__(
        self,
        app: ASGIApp,
        limits: HttpLimits,
        *,
        sockets: Sequence[socket.socket],
        worker_connections: int = 1000,
        stats: WorkerStats | None = None,
        state: dict[str, Any] | None = None,
        ssl_context: ssl.SSLContext | None = None,
        on_accepting_change: Callable[[bool], None] | None = None,
        backlog: int = 2048,
        balance: Balance | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.stats = stats if stats is not None else WorkerStats()
        self._sockets = list(sockets)
        self._capacity = max(1, worker_connections)
        self._state = state
        self._ssl = ssl_context
        self._on_accepting_change = on_accepting_change
        self._backlog = backlog
        self._servers: list[asyncio.AbstractServer] = []
        self._connections: set[HttpProtocol] = set()
        self._accepting = False  # the listeners are open (what the gate does now)
        self._want_accepting = False
        self._deferring = False  # shut for balance only: there is room, siblings get it first
        self._opening: asyncio.Task[None] | None = None
        self._tick: asyncio.TimerHandle | None = None
        self._stopping = False
        self._empty: asyncio.Event | None = None
        self._shared: Shared | None = None
        self._balance = balance
        self._beat: asyncio.TimerHandle | None = None
        self._retiring: set[HttpProtocol] = set()  # handed back, closing after their response
        self._handed_back_at = -HAND_BACK_INTERVAL

    # --- public -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start accepting on every listening socket (bound and listening already)."""
        loop = asyncio.get_running_loop()
        self._shared = Shared(
            self.app,
            self.limits,
            self.stats,
            loop,
            state=self._state,
            opened=self._opened,
            closed=self._closed,
            tls=self._ssl is not None,  # every listener is served with the one context
        )
        self._want_accepting = True
        await self._open()
        self._schedule_tick()
        if self._balance is not None:
            self._on_beat()

    @property
    def accepting(self) -> bool:
        """Has room for connections (SPEC's status.accepting: the master counts its free
        capacity as idle). True while the gate is shut for balance only: siblings take the
        next connections because they hold fewer, and the gate reopens if they fill up."""
        return self._accepting or self._deferring

    @property
    def listening(self) -> bool:
        """The gate is open: this worker's listeners are polled."""
        return self._accepting

    @property
    def open_connections(self) -> int:
        """Every open connection, upgraded (WebSocket) ones included."""
        return len(self.stats.connections)

    async def shutdown(self, deadline: float | None) -> None:
        """Graceful: stop accepting, close idle connections, let in-flight requests finish.

        Connections still open at `deadline` (time.time() based; None = no limit) are aborted.
        Returns when no connection is left.
        """
        self._stopping = True
        self._stop_accepting()
        connections = self.stats.connections
        for conn in list(connections):
            conn.shutdown()
        empty = self._empty = asyncio.Event()
        while connections:
            timeout = _POLL if deadline is None else min(_POLL, deadline - time.time())
            if timeout <= 0:
                self.abort()
                break
            empty.clear()
            with contextlib.suppress(TimeoutError):
                # upgraded connections leave stats.connections without telling us: poll too
                await asyncio.wait_for(empty.wait(), timeout)
        while connections:  # aborted transports report connection_lost on the next turns
            await asyncio.sleep(0.001)
        self._cancel_tick()

    def abort(self) -> None:
        """Immediate: stop accepting and drop every connection now."""
        self._stopping = True
        self._stop_accepting()
        for conn in list(self.stats.connections):
            conn.abort()
        self._cancel_tick()

    # --- connections --------------------------------------------------------------------------

    def _factory(self) -> HttpProtocol:
        assert self._shared is not None
        return HttpProtocol(self._shared)

    def _opened(self, conn: HttpProtocol) -> None:
        self._connections.add(conn)
        stats = self.stats
        stats.connections.add(conn)
        stats.accepted_total += 1
        open_now = stats.load
        if self._stopping:
            conn.shutdown()  # withdrawn from the board already: nothing to publish
            return
        if self._balance is not None:
            self._balance.publish(open_now)
        if open_now >= self._capacity and not self._reclaim():
            self._pause()
        elif self._over_share(open_now):
            self._defer()
            self._schedule_beat(PAUSED_INTERVAL)  # siblings fill fast: look again soon

    def _closed(self, conn: HttpProtocol) -> None:
        self._connections.discard(conn)
        self._retiring.discard(conn)
        self.stats.connections.discard(conn)
        open_now = self.stats.load
        if self._stopping:
            if not open_now and self._empty is not None:
                self._empty.set()
            return
        if self._balance is not None:
            self._balance.publish(open_now)
        if not self._want_accepting and self._may_accept(open_now):
            self._resume()

    def _over_share(self, open_now: int) -> bool:
        balance = self._balance
        return (
            balance is not None
            and self._want_accepting
            and open_now > balance.limit  # below the last assessment's limit, trust it: cheap
            and open_now > balance.assess(open_now).limit
        )

    def _may_accept(self, open_now: int) -> bool:
        """Within capacity and (as last assessed) within this worker's share of the pool."""
        return open_now < self._capacity and (
            self._balance is None or open_now <= self._balance.limit
        )

    def _reclaim(self) -> bool:
        """At the limit: close the oldest idle keep-alive connection to make room."""
        oldest: HttpProtocol | None = None
        for conn in self._connections:
            if conn.phase == "keepalive" and (
                oldest is None or conn.idle_since < oldest.idle_since
            ):
                oldest = conn
        if oldest is None:
            return False
        oldest.shutdown()
        return True

    # --- the accept gate ----------------------------------------------------------------------

    def _pause(self) -> None:
        self._want_accepting = False
        self._close_servers(deferring=False)

    def _defer(self) -> None:
        """Shut the gate for balance: over its share, this worker lets siblings accept."""
        self._want_accepting = False
        self._close_servers(deferring=True)

    def _resume(self) -> None:
        self._want_accepting = True
        if self._opening is None or self._opening.done():
            self._opening = asyncio.ensure_future(self._open())

    def _stop_accepting(self) -> None:
        self._want_accepting = False
        if self._balance is not None:
            self._balance.withdraw()
        if self._beat is not None:
            self._beat.cancel()
            self._beat = None
        if self._opening is not None:
            self._opening.cancel()
            self._opening = None
        self._close_servers(deferring=False)

    def _close_servers(self, *, deferring: bool) -> None:
        servers, self._servers = self._servers, []
        for server in servers:
            server.close()
        self._set_accepting(False, deferring=deferring)

    async def _open(self) -> None:
        loop = asyncio.get_running_loop()
        servers: list[asyncio.AbstractServer] = []
        try:
            for sock in self._sockets:
                dup = sock.dup()
                server: asyncio.AbstractServer
                try:
                    if sock.family == socket.AF_UNIX:
                        server = await loop.create_unix_server(
                            self._factory, sock=dup, backlog=self._backlog, ssl=self._ssl
                        )
                    else:
                        server = await loop.create_server(
                            self._factory, sock=dup, backlog=self._backlog, ssl=self._ssl
                        )
                except BaseException:
                    dup.close()
                    raise
                servers.append(server)
        except BaseException:
            for server in servers:
                server.close()
            raise
        if not self._want_accepting or self._stopping:
            for server in servers:
                server.close()
            return
        for server in self._servers:
            server.close()
        self._servers = servers
        self._set_accepting(True, deferring=False)

    def _set_accepting(self, listening: bool, *, deferring: bool) -> None:
        before = self.accepting
        self._accepting, self._deferring = listening, deferring
        if self._balance is not None and not self._stopping:
            self._balance.publish_gate(listening)
        if self.accepting != before and self._on_accepting_change is not None:
            try:
                self._on_accepting_change(self.accepting)
            except Exception:
                log.exception("on_accepting_change callback failed")

    # --- the one-second tick ------------------------------------------------------------------

    def _schedule_tick(self) -> None:
        loop = asyncio.get_running_loop()
        now = time.time()
        self._tick = loop.call_later(1.0 - now % 1.0 + 0.0005, self._on_tick)

    def _on_tick(self) -> None:
        if self._shared is not None:
            self._shared.defaults.refresh(time.time())
        if (
            not self._want_accepting
            and not self._stopping
            and self._may_accept(len(self.stats.connections))
        ):
            self._resume()  # upgraded connections closed without telling us
        elif (
            self._want_accepting
            and not self._stopping
            and any(not server.is_serving() for server in self._servers)
            and (self._opening is None or self._opening.done())
        ):
            log.warning("a listener stopped serving; reopening it")
            self._opening = asyncio.ensure_future(self._open())
        self._schedule_tick()

    # --- the balance heartbeat -----------------------------------------------------------------

    def _on_beat(self) -> None:
        balance = self._balance
        assert balance is not None
        self._beat = None
        if self._stopping:
            return
        open_now = self.stats.load  # an HTTP/2 connection counts as its open streams
        balance.publish(open_now)
        balance.beat()
        share = balance.assess(open_now)
        if self._want_accepting:
            if open_now > share.limit:
                self._defer()
        elif self._may_accept(open_now):
            self._resume()
        if share.excess > len(self._retiring):
            now = time.monotonic()
            if now - self._handed_back_at >= HAND_BACK_INTERVAL:
                self._handed_back_at = now
                self._hand_back(share.excess - len(self._retiring))
        self._schedule_beat(PAUSED_INTERVAL if self._deferring else BEAT_INTERVAL)

    def _schedule_beat(self, delay: float) -> None:
        if self._beat is not None:
            self._beat.cancel()
        self._beat = asyncio.get_running_loop().call_later(delay, self._on_beat)

    def _hand_back(self, count: int) -> None:
        """End keep-alive on `count` connections: each closes after its next response."""
        for conn in self._connections:
            if count <= 0:
                return
            if conn not in self._retiring and conn.phase != "closing":
                conn.retire()
                self._retiring.add(conn)
                self.stats.handed_back_total += 1
                count -= 1

    def _cancel_tick(self) -> None:
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
