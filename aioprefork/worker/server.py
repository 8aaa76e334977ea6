"""WorkerServer: serve an ASGI app on already-listening sockets, on the running event loop.

Internal. Independent of how the process started: a forked worker and the in-process
`--workers 0` mode both build one, `await start()`, and later `shutdown()` or `abort()`.
It never binds: the sockets come bound and listening from the master (docs/architecture.md#processes).

The accept gate (docs/architecture.md#worker, Apache event's disable_listensocks): accept while
fewer than
`worker_connections` connections are open; at the limit make room first: close the oldest idle
keep-alive connection (nginx reusable connections), else cut the slowest client, the one most
behind its minimum rate (reading a head or body, or a response it stopped reading: the earliest
HttpProtocol.due()). Only when every connection is busy in the app does the gate shut, so the
kernel hands new connections to sibling workers; it opens again below the limit, or as soon as a
connection could be reclaimed (looked for every _FULL_POLL while shut: a burst that went idle
does not keep the next client waiting for a keep-alive timeout). Clients that stopped reading
are held to send_min_rate and, together, to stalled_write_budget bytes (the slowest are cut).
Every connection cut this way is counted in stats.shed by reason. uvloop cannot pause
a Server, so accepting = a Server over a dup() of each listening socket, and pausing = closing
those Servers (the original fds stay open, unpolled). Each listening socket gets ACCEPT_FAN such
Servers: libuv accepts one connection per listener per loop iteration, so one listener drains a
burst one connection per iteration (see ACCEPT_FAN). EMFILE/ENFILE/ENOBUFS/ENOMEM at accept are
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
import os
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from typing import Any, Final

from aioprefork.asgi.types import ASGIApp
from aioprefork.config.model import HttpLimits
from aioprefork.http.protocol import HttpProtocol, Shared
from aioprefork.http.stats import WorkerStats
from aioprefork.logs import keep_server_loggers
from aioprefork.ratelimit import RateLimit
from aioprefork.wire.accesslog import AccessLogger
from aioprefork.worker.balance import BEAT_INTERVAL, HAND_BACK_INTERVAL, PAUSED_INTERVAL, Balance

__all__ = ["ACCEPT_FAN", "WorkerServer"]

log: Final = logging.getLogger("aioprefork.server")
_POLL: Final = 0.1  # shutdown re-checks this often for connections that leave without a callback
RETIRED_REOPEN: Final = 15.0  # seconds a recycled worker waits for its replacement, gate shut
_FULL_POLL: Final = 0.05  # s between looks for a reclaimable connection while shut at capacity
# Servers (each over its own dup()) per listening socket. Since libuv 1.45 (uvloop 0.23 has 1.48) a
# listener accepts one connection per loop turn (libuv PR 3696), and a turn of a loop serving 256
# keep-alive connections takes 0.5-2 ms: the 256 reconnects after a keep-alive limit waited in the
# kernel's queue for ~150 ms (p99 53 ms at 256 connections; docs/architecture.md#worker). Four
# listeners take up to four a turn (p99 7 ms; a new connection per request 1.3x the req/s). More
# is not better: every arriving connection wakes each listener and each idle one costs an
# accept() failing with EAGAIN, and at 8 a connection per request lost 15% of its req/s.
ACCEPT_FAN: Final = 4


def _dup_listener(sock: socket.socket) -> socket.socket:
    """A second descriptor of a listening socket, leaving it non-blocking. Not `sock.dup()`: that
    re-applies the object's timeout, and a blocking timeout clears O_NONBLOCK on the one file
    description the master and every worker share; a sibling's accept() that finds the queue
    empty then blocks its whole loop until the next client connects (seen: a worker stalled
    for 3 s holding four accepted, unread connections)."""
    return socket.socket(sock.family, sock.type, sock.proto, fileno=os.dup(sock.fileno()))


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
        fd_capped: bool = False,
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
        self._retired = False  # recycled for memory: the gate never reopens (retire())
        self._empty: asyncio.Event | None = None
        self._shared: Shared | None = None
        self._balance = balance
        self._beat: asyncio.TimerHandle | None = None
        self._retiring: set[HttpProtocol] = set()  # handed back, closing after their response
        self._handed_back_at = -HAND_BACK_INTERVAL
        self._fd_capped = fd_capped  # capacity is RLIMIT_NOFILE's, below worker_connections
        self._fd_log = RateLimit(1, 60.0)
        self._full_poll: asyncio.TimerHandle | None = None

    # --- public -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start accepting on every listening socket (bound and listening already)."""
        keep_server_loggers()  # the app (imported and started by now) may have silenced them
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
            stall=self._on_stall,
        )
        self._want_accepting = True
        await self._open()
        self._schedule_tick()
        if self._balance is not None:
            self._on_beat()

    def set_live(self, key: str, value: object) -> None:
        """`ctl set` for what every connection of this worker reads: the access log, the
        request deadline. Connections see it from their next request on."""
        shared = self._shared
        if shared is None:
            return
        if key == "access_log":
            on = bool(value)
            if on and shared.access is None:
                shared.access = AccessLogger(self.limits.access_log_format)
            elif not on:
                shared.access = None
        elif key == "request_timeout":
            assert isinstance(value, float)
            shared.request_timeout = value

    @property
    def accepting(self) -> bool:
        """Has room for connections (Status.accepting: the master counts its free
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

    def retire(self, reopen_after: float = RETIRED_REOPEN) -> None:
        """Recycled (max_requests, max_worker_memory): take no new connection, end keep-alive on
        the open ones (each closes after its next response), finish what is in flight until
        told to stop. The kernel hands new connections to siblings, or holds them in the backlog
        for the replacement: a leak stops growing and a request limit holds. If no replacement
        has taken over after `reopen_after` seconds (it cannot boot), accept again: a broken
        replacement must not turn a recycling into an outage."""
        if self._stopping or self._retired:
            return
        self._retired = True
        asyncio.get_running_loop().call_later(reopen_after, self._unretire, reopen_after)
        self._stop_accepting()
        for conn in list(self._connections):
            if conn.phase != "closing":
                conn.retire()

    def _unretire(self, waited: float) -> None:
        if self._stopping or not self._retired:
            return
        log.warning("recycled, but no replacement took over within %gs: accepting again", waited)
        self._retired = False
        self._resume()
        if self._balance is not None:
            self._on_beat()  # the balance heartbeat stopped with the gate

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
        if self._retired:
            conn.retire()  # accepted as the gate shut: serve it once, then close
            return
        if self._balance is not None:
            self._balance.publish(open_now)
        # At the limit an idle keep-alive connection makes room for the next client; past it (the
        # gate was reopened for a client while full) the slowest client may be cut for it too.
        if open_now >= self._capacity and not self._want_accepting:
            # Another of the gate's listeners took it in the loop turn the gate shut (their
            # events come in one batch): serve it. At most ACCEPT_FAN - 1 over; nobody is cut.
            return
        if open_now >= self._capacity and not self._reclaim(slow=open_now > self._capacity):
            self._pause()
            if self._fd_capped:
                self._at_fd_limit()
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

    def _at_fd_limit(self) -> None:
        """The gate shut at the open-files budget (worker/fdlimit.py): count it, say it (rarely)."""
        self.stats.reject("fd_limit")
        allowed, missed = self._fd_log.take(time.monotonic())
        if allowed:
            log.warning(
                "at the open-files limit (%d connections, RLIMIT_NOFILE): not accepting until one "
                "closes%s; raise the limit or lower worker_connections",
                self._capacity, f" ({missed} more times in the last minute)" if missed else "",
            )  # fmt: skip

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
        return (
            not self._retired
            and open_now < self._capacity
            and (self._balance is None or open_now <= self._balance.limit)
        )

    def _reclaim(self, *, slow: bool) -> bool:
        """At the limit, make room: close the oldest idle keep-alive connection, else (`slow`)
        cut the slowest client, the earliest due. False when there is none to reclaim."""
        oldest: HttpProtocol | None = None
        slowest: HttpProtocol | None = None
        slowest_due = 0.0
        for conn in self._connections:
            if conn.idle:
                if oldest is None or conn.idle_since < oldest.idle_since:
                    oldest = conn
            elif slow and oldest is None:
                due = conn.due()
                if due and (slowest is None or due < slowest_due):
                    slowest, slowest_due = conn, due
        if oldest is not None:
            self.stats.shed_one("idle")
            oldest.shutdown()  # it may still get a request already on the wire (1 s)
            return True
        if slowest is not None:
            self.stats.shed_one(slowest.reason())
            slowest.shed()
            return True
        return False

    def _reclaimable(self) -> bool:
        return any(conn.idle or conn.due() for conn in self._connections)

    def _on_full_poll(self) -> None:
        """Shut at capacity: reopen as soon as a connection could make room for the next one."""
        self._full_poll = None
        if self._want_accepting or self._stopping or self._deferring:
            return
        balance = self._balance
        open_now = len(self.stats.connections)
        if (balance is None or open_now <= balance.assess(open_now).limit) and (
            self._reclaimable()
        ):
            # (a sibling with room takes the next client instead, while there is one)
            self._resume()  # the next accept at the limit reclaims it
        else:
            self._full_poll = asyncio.get_running_loop().call_later(_FULL_POLL, self._on_full_poll)

    # --- clients that stopped reading ----------------------------------------------------------

    def _on_stall(self) -> None:
        shared = self._shared
        budget = self.limits.stalled_write_budget
        if shared is not None and budget and shared.stalled_bytes > budget:
            self._shed_stalled(budget)

    def _shed_stalled(self, budget: int) -> None:
        """Over stalled_write_budget: measure again, then cut the slowest until within it."""
        shared = self._shared
        assert shared is not None
        for conn in shared.stalled:
            size = conn.transport.get_write_buffer_size()
            shared.stalled_bytes += size - conn.stall_bytes
            conn.stall_bytes = size
        if shared.stalled_bytes <= budget:
            return
        for conn in sorted(shared.stalled, key=_stall_due):
            if shared.stalled_bytes <= budget:
                break
            self.stats.shed_one("stalled_budget")
            conn.shed()

    def _enforce_send_rate(self) -> None:
        """Cut stalled clients past their send_min_rate deadline (checked once a second)."""
        shared = self._shared
        if shared is None or not shared.stalled:
            return
        now = shared.now()
        if self.limits.send_min_rate:
            for conn in [c for c in shared.stalled if c.stall_due <= now]:
                self.stats.shed_one("send_rate")
                conn.shed()
        budget = self.limits.stalled_write_budget
        if budget and shared.stalled_bytes > budget:
            self._shed_stalled(budget)

    # --- the accept gate ----------------------------------------------------------------------

    def _pause(self) -> None:
        self._want_accepting = False
        self._close_servers(deferring=False)
        if self._full_poll is None:
            self._full_poll = asyncio.get_running_loop().call_later(_FULL_POLL, self._on_full_poll)

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
        if self._full_poll is not None:
            self._full_poll.cancel()
            self._full_poll = None
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
            for sock in (listener for listener in self._sockets for _ in range(ACCEPT_FAN)):
                dup = _dup_listener(sock)
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
            if not self._stopping:
                self._enforce_send_rate()
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


def _stall_due(conn: HttpProtocol) -> float:
    return conn.stall_due
