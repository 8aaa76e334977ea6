"""/server-status: the mod_status views of a Snapshot, as an HTML page and as `?auto` text.

Pure renderers: Snapshot in, str out; no I/O, no clock (time comes from `snapshot.now`), so a test
can pin every line. metrics/http.py serves them. Every value that reaches the HTML is escaped.

The HTML page is self-contained (inline CSS, no script, no external asset) and refreshes itself
with <meta http-equiv="refresh">. The `?auto` text is one `Key: value` per line, named after
Apache mod_status's ?auto keys where the concept matches, ending with the `Scoreboard:` line.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Final

from aioprefork.config import units
from aioprefork.snapshot import SCOREBOARD_LETTERS, InFlight, SlotView, Snapshot

DEFAULT_REFRESH: Final = 5  # seconds between self-refreshes of the HTML page

# Legend of the scoreboard line, in mod_status's order of appearance.
LETTER_KEY: Final = (
    ("S", "starting", "Starting up"),
    ("_", "idle", "Idle, waiting for connections"),
    ("A", "serving", "Serving requests"),
    ("F", "full", "Full: not accepting"),
    ("G", "stopping", "Gracefully finishing"),
    ("O", "old", "Old generation, finishing"),
    (".", "open", "Open slot with no worker"),
)
_CLASS_OF: Final = {letter: name for letter, name, _ in LETTER_KEY}
assert set(_CLASS_OF) == set(SCOREBOARD_LETTERS.values())


# --- formatting helpers ---------------------------------------------------------------------


def _uptime(seconds: float, *, most: int = 4) -> str:
    """'1 day 2 hours 3 minutes 4 seconds', like mod_status's ServerUptime (`most` largest units)."""
    left = max(0, int(seconds))
    parts: list[str] = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        n, left = divmod(left, size)
        if n or (unit == "second" and not parts):
            parts.append(f"{n} {unit}{'' if n == 1 else 's'}")
    return " ".join(parts[:most])


def _bytes(n: float) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{int(value)} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"  # pragma: no cover - loop always returns


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def _utc(unix: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(unix))


def _num(value: float) -> str:
    """Trim a rate for ?auto the way mod_status does: no trailing zeros."""
    text = f"{value:.6f}".rstrip("0").rstrip(".")
    return text or "0"


# --- derived figures shared by both views ---------------------------------------------------


def _figures(snap: Snapshot) -> dict[str, float]:
    uptime = max(0.0, snap.now - snap.started_at)
    t = snap.totals
    per = uptime if uptime > 0 else 1.0
    letters = snap.scoreboard_line()
    return {
        "uptime": uptime,
        "req_per_sec": t.requests / per,
        "bytes_per_sec": t.response_bytes / per,
        "bytes_per_req": t.response_bytes / t.requests if t.requests else 0.0,
        "duration_per_req": t.duration_sum / t.duration_count if t.duration_count else 0.0,
        "processes": len(snap.slots),
        "busy": letters.count("A") + letters.count("F"),
        "idle": letters.count("_"),
        "starting": letters.count("S"),
        "stopping": letters.count("G") + letters.count("O"),
        "open": sum(s.open for s in snap.slots),
    }


def _phase_sum(slots: Iterable[SlotView], phase: str) -> int:
    return sum(getattr(s, phase) for s in slots)


# --- ?auto ----------------------------------------------------------------------------------


def render_auto(snap: Snapshot) -> str:
    """mod_status `?auto`: `Key: value` lines, the Scoreboard line last."""
    f = _figures(snap)
    t = snap.totals
    lines = [
        ("ServerVersion", f"aioprefork/{snap.version}"),
        ("ServerMPM", "prefork-async"),
        ("HotPath", snap.hot_path),
        ("MasterPID", str(snap.pid)),
        ("MasterState", snap.master_state),
        ("Generation", str(snap.generation)),
        ("CurrentTime", _utc(snap.now)),
        ("RestartTime", _utc(snap.started_at)),
        ("ServerUptimeSeconds", str(int(f["uptime"]))),
        ("ServerUptime", _uptime(f["uptime"])),
        ("Uptime", str(int(f["uptime"]))),
        ("Total Accesses", str(t.requests)),
        ("Total kBytes", str(t.response_bytes // 1024)),
        ("Total Connections", str(t.accepted)),
        ("ReqPerSec", _num(f["req_per_sec"])),
        ("BytesPerSec", _num(f["bytes_per_sec"])),
        ("BytesPerReq", _num(f["bytes_per_req"])),
        ("DurationPerReq", _num(f["duration_per_req"] * 1000)),
        ("BusyWorkers", str(int(f["busy"]))),
        ("IdleWorkers", str(int(f["idle"]))),
        ("StartingWorkers", str(int(f["starting"]))),
        ("Processes", str(int(f["processes"]))),
        ("Stopping", str(int(f["stopping"]))),
        ("ActiveWorkers", str(snap.active_workers)),
        ("MinWorkers", str(snap.min_workers)),
        ("MaxWorkers", str(snap.max_workers)),
        ("ServerLimit", str(snap.server_limit)),
        ("WorkerConnections", str(snap.worker_connections)),
        ("ConnsTotal", str(int(f["open"]))),
        ("ConnsReading", str(_phase_sum(snap.slots, "reading"))),
        ("ConnsActive", str(_phase_sum(snap.slots, "active"))),
        ("ConnsAsyncKeepAlive", str(_phase_sum(snap.slots, "keepalive"))),
        ("ConnsAsyncClosing", str(_phase_sum(snap.slots, "closing"))),
        ("ConnsUpgraded", str(_phase_sum(snap.slots, "upgraded"))),
        ("SpareSlots", str(snap.idle_slots)),
        ("MinSpareSlots", str(snap.min_spare_slots)),
        ("MaxSpareSlots", str(snap.max_spare_slots)),
        ("SpawnRate", str(snap.spawn_rate)),
        ("ListenQueue", str(snap.queued)),
        ("LoopStalls", str(t.loop_stalls)),
        ("Scoreboard", snap.scoreboard_line()),
    ]
    return "".join(f"{key}: {value}\n" for key, value in lines)


# --- HTML -----------------------------------------------------------------------------------

_CSS: Final = """
:root{--bg:#f5f7fa;--card:#fff;--ink:#1f2933;--muted:#66788a;--line:#e3e8ee;--accent:#2f6fde;
--S:#3b82f6;--idle:#cbd5e1;--A:#16a34a;--F:#ea580c;--G:#a855f7;--O:#94a3b8;--open:#eef1f5}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
header{background:#111827;color:#f9fafb;padding:18px 32px;display:flex;align-items:center;
justify-content:space-between;flex-wrap:wrap;gap:12px}
header h1{margin:0;font-size:20px;font-weight:600;letter-spacing:.2px}
header h1 span{color:#9ca3af;font-weight:400}
.meta{color:#cbd5e1;font-size:13px;display:flex;gap:18px;flex-wrap:wrap;align-items:center}
.badge{display:inline-block;padding:2px 10px;border-radius:999px;font-size:12px;font-weight:600;
text-transform:uppercase;letter-spacing:.5px;background:#374151;color:#f9fafb}
.badge.running{background:#15803d}.badge.restarting,.badge.starting,.badge.booting{background:#b45309}
.badge.stopping,.badge.exited,.badge.halted{background:#b91c1c}
main{max-width:1240px;margin:0 auto;padding:24px 32px 40px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(240px,1fr));gap:14px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:14px 16px}
.card .label{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.6px}
.card .value{font-size:22px;font-weight:600;margin-top:4px;font-variant-numeric:tabular-nums}
.card .sub{color:var(--muted);font-size:12px;margin-top:2px}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:16px 20px;
margin-top:18px}
h2{font-size:15px;margin:0 0 12px;font-weight:600}
.board{display:flex;flex-wrap:wrap;gap:4px;margin-bottom:12px}
.cell{width:26px;height:26px;border-radius:5px;display:flex;align-items:center;justify-content:center;
font:600 13px/1 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;color:#fff}
.cell.starting{background:var(--S)}.cell.idle{background:var(--idle);color:#334155}
.cell.serving{background:var(--A)}.cell.full{background:var(--F)}.cell.stopping{background:var(--G)}
.cell.old{background:var(--O)}.cell.open{background:var(--open);color:#9aa5b1}
.key{display:flex;flex-wrap:wrap;gap:6px 18px;color:var(--muted);font-size:12px}
.key span{display:inline-flex;align-items:center;gap:6px}
.key .cell{width:18px;height:18px;font-size:11px}
table{width:100%;border-collapse:collapse;font-variant-numeric:tabular-nums}
th{text-align:right;color:var(--muted);font-weight:500;font-size:12px;text-transform:uppercase;
letter-spacing:.5px;padding:6px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
td{text-align:right;padding:7px 10px;border-bottom:1px solid var(--line);white-space:nowrap}
th:first-child,td:first-child,td.l,th.l{text-align:left}
tbody tr:hover{background:#f8fafc}
tr.old td{color:var(--muted)}
.pill{display:inline-flex;align-items:center;gap:6px}
.pill .cell{width:18px;height:18px;font-size:11px}
.yes{color:#15803d}.no{color:#b91c1c}.dim{color:var(--muted)}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(260px,1fr));gap:0 18px}
.grid section{margin-top:18px}
.empty{color:var(--muted);font-style:italic}
footer{color:var(--muted);font-size:12px;text-align:center;margin-top:22px}
footer a{color:var(--accent);text-decoration:none}
"""


# html.escape(value, quote=True) as one table: `import html` also loads html.entities (0.5 MiB
# for unescape) into the master, and so into every worker it forks.
_ESCAPES: Final = str.maketrans(
    {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;"}
)


def _e(value: object) -> str:
    return str(value).translate(_ESCAPES)


def _card(label: str, value: str, sub: str = "") -> str:
    sub_html = f'<div class="sub">{_e(sub)}</div>' if sub else ""
    return (
        f'<div class="card"><div class="label">{_e(label)}</div>'
        f'<div class="value">{_e(value)}</div>{sub_html}</div>'
    )


def _cell(letter: str, title: str = "") -> str:
    tip = f' title="{_e(title)}"' if title else ""
    return f'<span class="cell {_CLASS_OF[letter]}"{tip}>{_e(letter)}</span>'


def _cards(snap: Snapshot, f: Mapping[str, float]) -> str:
    t = snap.totals
    capacity = snap.worker_connections * snap.active_workers
    cards = [
        _card("Uptime", _uptime(f["uptime"], most=2), f"since {_utc(snap.started_at)}"),
        _card("Requests", f"{t.requests:,}", f"{f['req_per_sec']:.2f} req/s average"),
        _card("Traffic", _bytes(t.response_bytes), f"{_bytes(f['bytes_per_sec'])}/s average"),
        _card("Mean latency", _ms(f["duration_per_req"]), f"{t.duration_count:,} timed responses"),
        _card(
            "Workers",
            f"{snap.active_workers}",
            f"min {snap.min_workers} · max {snap.max_workers} · limit {snap.server_limit}",
        ),
        _card(
            "Connections",
            f"{int(f['open']):,}",
            f"of {capacity:,} ({snap.worker_connections:,} per worker)",
        ),
        _card(
            "Spare slots",
            f"{snap.idle_slots:,}",
            f"target {snap.min_spare_slots:,} to {snap.max_spare_slots:,}",
        ),
        _card("Accepted", f"{t.accepted:,}", f"spawn rate {snap.spawn_rate}"),
        _card(
            "Listen queue",
            f"{snap.queued:,}",
            ", ".join(f"{q.listener}: {q.queued}/{q.limit}" for q in snap.listen_queues)
            or "no TCP listener",
        ),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


def _scoreboard(snap: Snapshot) -> str:
    by_index = {s.slot: s for s in snap.slots}
    cells = []
    for i, letter in enumerate(snap.scoreboard_line()):
        slot = by_index.get(i)
        title = f"slot {i}: " + (f"pid {slot.pid}, gen {slot.gen}" if slot else "open")
        cells.append(_cell(letter, title))
    key = "".join(f"<span>{_cell(letter)}{_e(text)}</span>" for letter, _, text in LETTER_KEY)
    return (
        f'<section><h2>Scoreboard</h2><div class="board">{"".join(cells)}</div>'
        f'<div class="key">{key}</div></section>'
    )


_SLOT_COLUMNS: Final = (
    "Slot", "PID", "Gen", "State", "Accepting", "Open", "Active", "Keep-alive",
    "Requests", "Age", "Heartbeat", "Loop lag", "Stalls", "RSS",
)  # fmt: skip


_LEFT_COLUMNS: Final = frozenset({3})  # the State column reads better left-aligned


def _slot_row(slot: SlotView, snap: Snapshot) -> str:
    letter = slot.letter(snap.worker_connections)
    state = _CLASS_OF[letter] + (f" ({slot.retiring})" if slot.retiring else "")
    accepting = '<span class="yes">yes</span>' if slot.accepting else '<span class="no">no</span>'
    heartbeat = (
        f"{slot.heartbeat_age:.1f} s"
        if slot.heartbeat_age is not None
        else "<span class=dim>—</span>"
    )
    cells = [
        _e(slot.slot),
        _e(slot.pid),
        _e(slot.gen),
        f'<span class="pill">{_cell(letter)}{_e(state)}</span>',
        accepting,
        _e(slot.open),
        _e(slot.active),
        _e(slot.keepalive),
        f"{slot.requests_total:,}",
        _e(units.format_age(snap.now - slot.started_at)) if slot.started_at else "—",
        heartbeat,
        _e(_ms(slot.loop_lag)),
        _e(f"{slot.loop_stalls} (max {_ms(slot.loop_stall_longest)})" if slot.loop_stalls else 0),
        _e(_bytes(slot.rss)) if slot.rss else "—",
    ]
    row_class = "" if slot.current else ' class="old"'
    tds = "".join(
        f'<td class="l">{c}</td>' if i in _LEFT_COLUMNS else f"<td>{c}</td>"
        for i, c in enumerate(cells)
    )
    return f"<tr{row_class}>{tds}</tr>"


def _slots_table(snap: Snapshot) -> str:
    head = "".join(
        f'<th class="l">{_e(c)}</th>' if i in _LEFT_COLUMNS else f"<th>{_e(c)}</th>"
        for i, c in enumerate(_SLOT_COLUMNS)
    )
    rows = "".join(_slot_row(s, snap) for s in sorted(snap.slots, key=lambda s: s.slot))
    if not rows:
        rows = f'<tr><td colspan="{len(_SLOT_COLUMNS)}" class="empty">no workers</td></tr>'
    return (
        f"<section><h2>Workers</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{rows}</tbody></table></section>"
    )


def _small_table(title: str, columns: tuple[str, ...], rows: list[tuple[object, ...]]) -> str:
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    if rows:
        body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    else:
        body = f'<tr><td colspan="{len(columns)}" class="empty">none yet</td></tr>'
    return (
        f"<section><h2>{_e(title)}</h2><table><thead><tr>{head}</tr></thead>"
        f"<tbody>{body}</tbody></table></section>"
    )


def _details(snap: Snapshot) -> str:
    t = snap.totals
    requests = [(method, cls, f"{n:,}") for (method, cls), n in sorted(t.by_method_class.items())]
    rejected = [(reason, f"{n:,}") for reason, n in sorted(t.rejected.items()) if n]
    causes = sorted(set(snap.spawned_total) | set(snap.exited_total))
    lifecycle = [
        (c, f"{snap.spawned_total.get(c, 0):,}", f"{snap.exited_total.get(c, 0):,}") for c in causes
    ]
    restarts: list[tuple[object, ...]] = []
    for key, n in sorted(snap.restarts_total.items()):
        kind, _, result = key.partition(":")
        restarts.append((kind, result or "—", f"{n:,}"))
    if snap.heartbeat_timeouts_total:
        restarts.append(("heartbeat timeout", "killed", f"{snap.heartbeat_timeouts_total:,}"))
    if snap.max_workers_reached_total:
        restarts.append(("max_workers reached", "warned", f"{snap.max_workers_reached_total:,}"))
    return (
        '<div class="grid">'
        + "".join(
            (
                _small_table("Requests", ("Method", "Status", "Count"), list(requests)),
                _small_table("Rejected requests", ("Reason", "Count"), list(rejected)),
                _small_table("Spawns and exits", ("Cause", "Spawned", "Exited"), list(lifecycle)),
                _small_table("Restarts and events", ("Kind", "Result", "Count"), restarts),
            )
        )
        + "</div>"
    )


def render_requests_auto(view: InFlight) -> str:
    """`?auto&requests`: after the ?auto lines, one `Request:` line per request in flight."""
    lines = [f"RequestsInFlight: {view.total}\n"]
    if view.unanswered:
        lines.append(f"RequestsUnanswered: {' '.join(map(str, view.unanswered))}\n")
    for r in view.requests:
        lines.append(
            f"Request: slot={r.slot} pid={r.pid} age={r.age:.3f} phase={r.phase.replace(' ', '_')} "
            f"protocol={r.protocol} method={r.method} client={r.client} peer={r.peer} "
            f"target={r.target}\n"
        )
    return "".join(lines)


def _requests_table(view: InFlight) -> str:
    columns = ("Slot", "PID", "Age", "Phase", "Protocol", "Method", "Target", "Client", "Peer")
    rows: list[tuple[object, ...]] = [
        (r.slot, r.pid, _ms(r.age), r.phase, r.protocol, r.method, r.target, r.client, r.peer)
        for r in view.requests
    ]
    note = f"{view.total} in flight"
    if len(rows) < view.total:
        note += f", the {len(rows)} oldest shown"
    if view.unanswered:
        note += f"; slot(s) {', '.join(map(str, view.unanswered))} did not answer within 1 s"
    return _small_table(f"Requests in flight ({note})", columns, rows)


def render_html(
    snap: Snapshot, *, refresh: int = DEFAULT_REFRESH, requests: InFlight | None = None
) -> str:
    """The mod_status page: summary cards, scoreboard with its key, one row per slot, details;
    with `requests` (?requests), every request in flight, oldest first."""
    f = _figures(snap)
    state = _e(snap.master_state)
    return (
        "<!doctype html>\n"
        '<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="refresh" content="{int(refresh)}">'
        '<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>aioprefork server status</title><style>{_CSS}</style></head><body>"
        f"<header><h1>aioprefork <span>server status</span></h1>"
        f'<div class="meta"><span class="badge {state}">{state}</span>'
        f"<span>version {_e(snap.version)}</span><span>hot path {_e(snap.hot_path)}</span>"
        f"<span>master pid {_e(snap.pid)}</span>"
        f"<span>generation {_e(snap.generation)}</span>"
        f"<span>{_e(_utc(snap.now))}</span></div></header>"
        f"<main>{_cards(snap, f)}{_scoreboard(snap)}{_slots_table(snap)}"
        f"{_requests_table(requests) if requests is not None else ''}{_details(snap)}"
        f'<footer>Refreshes every {int(refresh)} s · <a href="?auto">machine-readable</a> · '
        f'<a href="?requests">requests in flight</a> · <a href="?json">JSON</a> · '
        f'<a href="/metrics">/metrics</a></footer></main></body></html>\n'
    )
