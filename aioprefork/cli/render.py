"""The mod_status view of a Snapshot for `aioprefork ctl status`: pure functions from data to text.

`ctl` receives `Snapshot.to_json()` over the control socket and rebuilds it with
`Snapshot.from_json()`; `render_status` prints the summary, one row per occupied slot and the
scoreboard line with its key (docs/architecture.md#scoreboard-and-metrics). Nothing here does I/O or reads the clock: ages are measured from `Snapshot.now`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from aioprefork.config import units
from aioprefork.snapshot import (
    SCOREBOARD_LETTERS,
    STARTING,
    STOPPING,
    InFlight,
    RequestView,
    SlotView,
    Snapshot,
)

SCOREBOARD_WIDTH: Final = 64  # letters per scoreboard line, as mod_status wraps it
KEY: Final = (
    ("starting", "starting"),
    ("idle", "idle"),
    ("serving", "serving"),
    ("full", "full or not accepting"),
    ("stopping", "stopping"),
    ("old", "stopping, old generation"),
    ("open", "open slot"),
)
COLUMNS: Final = (
    "SLOT", "PID", "GEN", "STATE", "ACCEPTING", "OPEN", "ACTIVE", "KEEPALIVE", "REQUESTS", "AGE",
    "HEARTBEAT", "LOOP LAG", "STALLS", "RSS",
)  # fmt: skip
_LEFT: Final = frozenset(
    {"STATE", "ACCEPTING", "PHASE", "PROTOCOL", "METHOD", "TARGET", "CLIENT", "PEER"}
)


def format_age(seconds: float | None) -> str:
    """units.format_age, with tenths under 10 s (a new worker shows 0.4s, not 0s); '-': unknown."""
    if seconds is None:
        return "-"
    if seconds < 0:
        seconds = 0.0
    if seconds < 10:
        return f"{seconds:.1f}s"
    return units.format_age(seconds)


def format_bytes(n: int) -> str:
    """Binary units with one decimal: 512B, 1.5K, 45.2M, 1.0G."""
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{int(value)}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def format_lag(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.1f}ms"
    return f"{seconds:.2f}s"


def format_stalls(s: SlotView) -> str:
    """`2 (max 3.10s)`: how often the worker's loop stalled past stall_threshold, and longest."""
    return f"{s.loop_stalls} (max {format_lag(s.loop_stall_longest)})" if s.loop_stalls else "0"


def _slot_state(s: SlotView) -> str:
    state = s.state
    if s.retiring:
        state += f" ({s.retiring})"
    return state


def slot_row(s: SlotView, now: float) -> tuple[str, ...]:
    return (
        str(s.slot),
        str(s.pid),
        str(s.gen),
        _slot_state(s),
        "yes" if s.accepting else "no",
        str(s.open),
        str(s.active),
        str(s.keepalive),
        str(s.requests_total),
        format_age(now - s.started_at if s.started_at else None),
        format_age(s.heartbeat_age),
        format_lag(s.loop_lag),
        format_stalls(s),
        format_bytes(s.rss) if s.rss else "-",
    )


def render_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(header)]

    def line(cells: Sequence[str]) -> str:
        out = [
            c.ljust(w) if h in _LEFT else c.rjust(w)
            for c, w, h in zip(cells, widths, header, strict=True)
        ]
        return "  ".join(out).rstrip()

    return "\n".join([line(header), *(line(r) for r in rows)])


def render_summary(snap: Snapshot) -> str:
    slots = snap.slots
    current = [s for s in slots if s.current]
    starting = sum(1 for s in current if s.state == STARTING)
    stopping = sum(1 for s in slots if s.state == STOPPING)
    t = snap.totals
    lines = [
        f"aioprefork {snap.version}: master pid {snap.pid}, {snap.master_state}, "
        f"generation {snap.generation}, up {format_age(snap.now - snap.started_at)}",
        f"workers:     {snap.active_workers} active ({starting} starting), {stopping} stopping; "
        f"min {snap.min_workers}, max {snap.max_workers}, server limit {snap.server_limit}; "
        f"spawn rate {snap.spawn_rate}",
        f"idle slots:  {snap.idle_slots} (spare targets {snap.min_spare_slots}..{snap.max_spare_slots}, "
        f"{snap.worker_connections} connections per worker)",
        f"connections: {sum(s.open for s in slots)} open, {sum(s.active for s in slots)} active, "
        f"{sum(s.keepalive for s in slots)} keep-alive; {t.accepted} accepted",
        f"requests:    {t.requests} served, {format_bytes(t.response_bytes)} sent",
    ]
    if snap.exited_total:
        lines.append(f"exits:       {_counts(snap.exited_total)}")
    if snap.restarts_total:
        lines.append(f"restarts:    {_counts(snap.restarts_total)}")
    last = snap.last_restart
    if last:
        when = last.get("at")
        ago = f", {format_age(snap.now - when)} ago" if isinstance(when, int | float) else ""
        reason = f": {last['reason']}" if last.get("reason") else ""
        lines.append(
            f"last restart: {last.get('kind', '?')} {last.get('result', '?')}{reason}{ago}"
        )
    for queue in snap.listen_queues:
        lines.append(f"listen queue: {queue.listener} {queue.queued} waiting (limit {queue.limit})")
    if snap.max_workers_reached_total:
        lines.append(f"max_workers reached: {snap.max_workers_reached_total} times")
    return "\n".join(lines)


def _counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))


def render_scoreboard(snap: Snapshot) -> str:
    line = snap.scoreboard_line()
    chunks = [line[i : i + SCOREBOARD_WIDTH] for i in range(0, len(line), SCOREBOARD_WIDTH)]
    key = ", ".join(f'"{SCOREBOARD_LETTERS[name]}" {meaning}' for name, meaning in KEY)
    return "\n".join(["Scoreboard:", *(chunks or [""]), "", f"Key: {key}"])


def render_status(snap: Snapshot) -> str:
    """The whole `ctl status` page."""
    rows = [slot_row(s, snap.now) for s in sorted(snap.slots, key=lambda s: s.slot)]
    table = render_table(COLUMNS, rows) if rows else "(no worker processes)"
    return "\n\n".join([render_summary(snap), table, render_scoreboard(snap)]) + "\n"


REQUEST_COLUMNS: Final = (
    "SLOT", "PID", "AGE", "PHASE", "PROTOCOL", "METHOD", "TARGET", "CLIENT", "PEER",
)  # fmt: skip


def render_requests(view: InFlight) -> str:
    """`ctl status --requests`: every request in flight, oldest first (Apache's ExtendedStatus)."""
    shown = len(view.requests)
    head = f"requests in flight: {view.total}"
    if shown < view.total:
        head += f" (the {shown} oldest shown; status_requests_limit per worker)"
    if view.unanswered:
        head += f"; no answer within 1s from slot(s) {', '.join(map(str, view.unanswered))}"
    rows = [_request_row(r) for r in view.requests]
    if not rows:
        return head + "\n"
    return head + "\n\n" + render_table(REQUEST_COLUMNS, rows) + "\n"


def _request_row(r: RequestView) -> tuple[str, ...]:
    age = format_lag(r.age)
    return (str(r.slot), str(r.pid), age, r.phase, r.protocol, r.method, r.target, r.client, r.peer)
