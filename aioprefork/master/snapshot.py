"""Frozen views of the scoreboard: the one shape that plan(), metrics, /server-status and `ctl status` read.

Only master/scoreboard.py builds these (`Scoreboard.snapshot(now)`); readers never see the live,
mutable slot records. Everything is plain data, JSON-friendly via `to_json()` for `ctl status --json`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

# Slot states, also the letters of the mod_status scoreboard line (SPEC section 6).
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
    accepted_total: int = 0
    requests_total: int = 0
    response_bytes_total: int = 0
    started_at: float = 0.0  # unix time of fork
    ready_at: float | None = None
    heartbeat_age: float | None = None  # seconds since the last frame; None before the first
    loop_lag: float = 0.0
    rss: int = 0
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
    response_bytes: int = 0
    by_method_class: Mapping[tuple[str, str], int] = field(default_factory=dict)
    rejected: Mapping[str, int] = field(default_factory=dict)
    duration_buckets: tuple[int, ...] = ()  # cumulative per DURATION_BUCKETS bound
    duration_sum: float = 0.0
    duration_count: int = 0


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
    idle_slots: int  # SPEC's `idle`: free connection capacity of current, READY, accepting workers
    spawn_rate: int
    max_workers_reached_total: int = 0
    spawned_total: Mapping[str, int] = field(default_factory=dict)  # cause -> count
    exited_total: Mapping[str, int] = field(default_factory=dict)  # cause -> count
    restarts_total: Mapping[str, int] = field(default_factory=dict)  # "graceful:ok" etc. -> count
    heartbeat_timeouts_total: int = 0
    totals: Totals = field(default_factory=Totals)
    last_restart: Mapping[str, Any] = field(default_factory=dict)  # kind, result, reason, at
    hot_path: str = "pure"  # compiled | pure | partial (aioprefork.buildinfo)

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
