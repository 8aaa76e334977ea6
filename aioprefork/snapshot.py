"""Frozen views of the scoreboard: the one shape that plan(), metrics, /server-status and `ctl status` read.

Only master/scoreboard.py builds these (`Scoreboard.snapshot(now)`); readers never see the live,
mutable slot records. Everything is plain data; its JSON form, in and out, is here alone: `to_json()` (the control
socket's status reply, `ctl status --json`) and `from_json()` (what `ctl` renders).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Slot states, also the letters of the mod_status scoreboard line (docs/architecture.md#scoreboard-and-metrics).
STARTING: Final = "starting"  # forked, not READY yet
READY: Final = "ready"  # serving (current generation)
STOPPING: Final = "stopping"  # told to stop (graceful or not), draining
SCOREBOARD_LETTERS: Final = {
    "starting": "S",
    "idle": "_",
    "serving": "A",
    "full": "F",
    "stopping": "G",
    "old": "O",
    "open": ".",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotView:
    slot: int
    pid: int
    gen: int
    state: str  # STARTING | READY | STOPPING
    current: bool  # belongs to the current generation
    accepting: bool = False
    reading: int = 0
    active: int = 0
    keepalive: int = 0
    closing: int = 0
    upgraded: int = 0
    streams: int = 0  # HTTP/2 streams open
    accepted_total: int = 0
    requests_total: int = 0
    response_bytes_total: int = 0
    started_at: float = 0.0  # unix time of fork
    ready_at: float | None = None
    heartbeat_age: float | None = None  # seconds since the last frame; None before the first
    loop_lag: float = 0.0
    rss: int = 0
    loop_stalls: int = 0  # event-loop stalls past stall_threshold
    loop_stall_longest: float = 0.0  # seconds
    retiring: str = ""  # why it is being replaced ("max_requests", "max_memory", "graceful", ...)

    @property
    def open(self) -> int:
        return self.reading + self.active + self.keepalive + self.closing + self.upgraded

    def letter(self, worker_connections: int) -> str:
        """The mod_status scoreboard letter."""
        if self.state == STARTING:
            return SCOREBOARD_LETTERS["starting"]
        if self.state == STOPPING:
            return SCOREBOARD_LETTERS["stopping" if self.current else "old"]
        if self.open >= worker_connections or not self.accepting:
            return SCOREBOARD_LETTERS["full"]
        return SCOREBOARD_LETTERS["serving" if self.active else "idle"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Totals:
    """Server-wide cumulative counters: live workers' latest totals + everything exited workers counted."""

    accepted: int = 0
    handed_back: int = 0  # keep-alive connections ended to rebalance the pool
    requests: int = 0
    h2_requests: int = 0  # of requests, those served over HTTP/2
    response_bytes: int = 0
    by_method_class: Mapping[tuple[str, str], int] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)
    shed: Mapping[str, int] = field(default_factory=dict)  # connections cut to stay available
    duration_buckets: tuple[int, ...] = ()  # cumulative per DURATION_BUCKETS bound
    duration_sum: float = 0.0
    duration_count: int = 0
    loop_stalls: int = 0
    request_timeouts: int = 0  # apps cancelled at request_timeout


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenQueue:
    """One listener's accept queue, read by the master from the kernel (TCP_INFO)."""

    listener: str  # the bound address, e.g. "0.0.0.0:8000"
    queued: int  # connections the kernel completed that no worker has accepted yet
    limit: int  # the queue's length limit (the effective listen backlog)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestView:
    """One connection's request in flight (Apache's ExtendedStatus row), built on demand."""

    slot: int
    pid: int
    client: str  # as the app sees it (forwarded from a trusted proxy), "host:port"
    peer: str  # the TCP peer
    protocol: str  # "HTTP/1.1", "HTTP/2", "WebSocket"
    method: str
    target: str  # truncated to status_target_length
    phase: str  # reading head | reading body | in app | writing | keep-alive | websocket | closing
    age: float  # seconds since the request began (the connection, while idle or upgraded)


@dataclass(frozen=True, slots=True, kw_only=True)
class InFlight:
    """Every worker's requests in flight, oldest first, bounded per worker."""

    requests: tuple[RequestView, ...] = ()
    total: int = 0  # before the per-worker bound
    unanswered: tuple[int, ...] = ()  # slots whose worker did not answer in time (loop busy)

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> InFlight:
        """Rebuild from `to_json()`; ValueError when the shape is not one."""
        try:
            rows = tuple(RequestView(**_known(RequestView, r)) for r in data.get("requests") or ())
            return InFlight(
                requests=rows,
                total=int(data.get("total", len(rows))),
                unanswered=tuple(data.get("unanswered") or ()),
            )
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            raise ValueError(f"not a list of requests in flight ({exc})") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class Snapshot:
    now: float
    pid: int
    master_state: str  # booting | starting | running | restarting | stopping | exited | halted
    generation: int
    started_at: float
    version: str
    slots: tuple[SlotView, ...]  # occupied slots only, by slot index
    server_limit: int
    worker_connections: int
    min_workers: int  # current floor (TTIN/TTOU move it)
    max_workers: int
    min_spare_slots: int
    max_spare_slots: int
    # `idle` (docs/architecture.md#spare-pool): free capacity of current, READY, accepting workers
    idle_slots: int
    spawn_rate: int
    max_workers_reached_total: int = 0
    spawned_total: Mapping[str, int] = field(default_factory=dict)  # cause -> count
    exited_total: Mapping[str, int] = field(default_factory=dict)  # cause -> count
    restarts_total: Mapping[str, int] = field(default_factory=dict)  # "graceful:ok" etc. -> count
    heartbeat_timeouts_total: int = 0
    totals: Totals = field(default_factory=Totals)
    last_restart: Mapping[str, Any] = field(default_factory=dict)  # kind, result, reason, at
    hot_path: str = "pure"  # compiled | pure | partial (aioprefork.buildinfo)
    listen_queues: tuple[ListenQueue, ...] = ()  # TCP listeners only

    @property
    def queued(self) -> int:
        """Connections waiting in every accept queue: clients no worker has taken yet."""
        return sum(q.queued for q in self.listen_queues)

    @property
    def active_workers(self) -> int:
        """Current-generation workers that are not stopping (starting ones included)."""
        return sum(1 for s in self.slots if s.current and s.state != STOPPING)

    @property
    def ready(self) -> bool:
        return any(s.state == READY and s.current for s in self.slots)

    def scoreboard_line(self) -> str:
        by_index = {s.slot: s for s in self.slots}
        return "".join(
            by_index[i].letter(self.worker_connections)
            if i in by_index
            else SCOREBOARD_LETTERS["open"]
            for i in range(self.server_limit)
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["totals"]["by_method_class"] = [
            {"method": m, "class": c, "count": n}
            for (m, c), n in self.totals.by_method_class.items()
        ]
        data["scoreboard"] = self.scoreboard_line()
        data["active_workers"] = self.active_workers
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Snapshot:
        """Rebuild a Snapshot from `to_json()` (ignoring keys it does not know, so a newer master
        still renders); ValueError when the shape is not a snapshot."""
        try:
            fields = _known(Snapshot, data)
            fields["slots"] = tuple(SlotView(**_known(SlotView, s)) for s in data.get("slots", ()))
            totals = dict(_known(Totals, data.get("totals") or {}))
            totals["by_method_class"] = {
                (row["method"], row["class"]): row["count"]
                for row in totals.get("by_method_class") or ()
            }
            totals["duration_buckets"] = tuple(totals.get("duration_buckets") or ())
            fields["totals"] = Totals(**totals)
            fields["listen_queues"] = tuple(
                ListenQueue(**_known(ListenQueue, q)) for q in data.get("listen_queues") or ()
            )
            return Snapshot(**fields)
        except (TypeError, KeyError, AttributeError) as exc:
            raise ValueError(f"not a status snapshot ({exc})") from None


def _known(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}
