"""The Prometheus view of the scoreboard: one prometheus-client custom collector over a Snapshot.

`metric_families(snapshot)` is pure: a frozen Snapshot in, metric families out, so every series and
value can be tested on a constructed Snapshot. `SnapshotCollector` only calls the master's snapshot
function once per scrape and hands the result to it.

Invariants (docs/architecture.md#scoreboard-and-metrics):
* every name starts with `aioprefork_`;
* no unbounded label: `pid` appears only in `aioprefork_info`, never a path; per-slot series are
  labelled `slot` (bounded by server_limit) and `generation` (only live generations appear);
* counters come from `Snapshot.totals` and the `*_total` maps, which the scoreboard keeps
  monotonic across worker exits, recycling and restarts; this module never subtracts.
"""

from __future__ import annotations

import platform
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Final

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.metrics_core import Metric

from aioprefork import errors
from aioprefork.channel.messages import DURATION_BUCKETS, H2_REJECTION_REASONS, SHED_REASONS
from aioprefork.snapshot import SCOREBOARD_LETTERS, STARTING, STOPPING, SlotView, Snapshot

PREFIX: Final = "aioprefork_"
_PYTHON: Final = platform.python_version()

MASTER_STATES: Final = (
    "booting",
    "starting",
    "running",
    "restarting",
    "stopping",
    "exited",
    "halted",
)

# Worker states as the mod_status scoreboard names them: one series each, always present, so a
# dashboard sees 0 rather than "no data" when no worker is in that state.
WORKER_STATES: Final = ("starting", "idle", "serving", "full", "stopping", "old")
_STATE_OF_LETTER: Final = {SCOREBOARD_LETTERS[s]: s for s in WORKER_STATES}

# Connection phases the worker reports (worker/stats.PHASES), summed over live workers.
CONNECTION_STATES: Final = ("reading", "active", "keepalive", "closing", "upgraded")


def _rejection_reasons() -> tuple[str, ...]:
    """Every reason the errors tree declares, so each rejection series starts at 0.

    A counter that appears only at its first increment hides that increment from rate(); the set
    is closed (one per RequestRejected subclass), so the label stays bounded.
    """
    seen: set[str] = set()
    todo: list[type[errors.RequestRejected]] = [errors.RequestRejected]
    while todo:
        cls = todo.pop()
        seen.add(cls.reason)
        todo.extend(cls.__subclasses__())
    return tuple(sorted(seen))


def _worker_state(slot: SlotView, worker_connections: int) -> str:
    return _STATE_OF_LETTER[slot.letter(worker_connections)]


def _gauge(name: str, doc: str, value: float, unit: str = "") -> GaugeMetricFamily:
    return GaugeMetricFamily(PREFIX + name, doc, value=value, unit=unit)


def _counter_by(
    name: str, doc: str, label: str, values: Mapping[str, int], preset: Iterable[str] = ()
) -> CounterMetricFamily:
    family = CounterMetricFamily(PREFIX + name, doc, labels=[label])
    merged = dict.fromkeys(preset, 0) | dict(values)
    for key in sorted(merged):
        family.add_metric([key], merged[key])
    return family


def _pool(snap: Snapshot) -> Iterator[Metric]:
    """Master identity, state and the pool's shape and policy."""
    info = InfoMetricFamily(PREFIX.rstrip("_"), "aioprefork master identity")
    info.add_metric(["version", "pid"], {"version": snap.version, "pid": str(snap.pid)})
    yield info
    build = InfoMetricFamily(
        PREFIX + "build",
        "Which build serves requests: hot_path is compiled (mypyc) or pure (Python)",
    )
    build.add_metric(
        ["hot_path", "version", "python"],
        {"hot_path": snap.hot_path, "version": snap.version, "python": _PYTHON},
    )
    yield build
    state = GaugeMetricFamily(
        PREFIX + "master_state", "Master state: 1 for the current one", labels=["state"]
    )
    for name in MASTER_STATES:
        state.add_metric([name], 1.0 if snap.master_state == name else 0.0)
    if snap.master_state not in MASTER_STATES:
        state.add_metric([snap.master_state], 1.0)
    yield state
    yield _gauge("master_start_time_seconds", "Unix time the master started", snap.started_at)
    yield _gauge(
        "generation", "Current worker generation (bumped by every restart)", snap.generation
    )

    workers = GaugeMetricFamily(
        PREFIX + "workers", "Live worker processes by scoreboard state", labels=["state"]
    )
    counts = dict.fromkeys(WORKER_STATES, 0)
    for slot in snap.slots:
        counts[_worker_state(slot, snap.worker_connections)] += 1
    for name in WORKER_STATES:
        workers.add_metric([name], counts[name])
    yield workers
    yield _gauge("workers_active", "Current-generation workers not stopping", snap.active_workers)
    yield _gauge("workers_min", "Floor of active workers (min_workers)", snap.min_workers)
    yield _gauge("workers_max", "Ceiling of active workers (max_workers)", snap.max_workers)
    yield _gauge("server_limit", "Ceiling of live worker processes", snap.server_limit)
    yield _gauge("worker_connections", "Connections one worker holds (C)", snap.worker_connections)

    slots = GaugeMetricFamily(
        PREFIX + "connection_slots",
        "Open connections by phase, summed over live workers",
        labels=["state"],
    )
    for phase in CONNECTION_STATES:
        slots.add_metric([phase], sum(getattr(s, phase) for s in snap.slots))
    yield slots
    yield _gauge("http2_streams", "HTTP/2 streams open", sum(s.streams for s in snap.slots))
    yield _gauge(
        "spare_slots", "Free connection capacity of ready current workers", snap.idle_slots
    )
    yield _gauge("spare_slots_min", "Spare slot floor (min_spare_slots)", snap.min_spare_slots)
    yield _gauge("spare_slots_max", "Spare slot ceiling (max_spare_slots)", snap.max_spare_slots)
    yield _gauge("spawn_rate", "Workers the next spare-pool spawn step may start", snap.spawn_rate)


def _lifecycle(snap: Snapshot) -> Iterator[Metric]:
    """Spawns, exits, restarts: what the master did to the pool."""
    yield _counter_by("workers_spawned", "Workers forked, by cause", "cause", snap.spawned_total)
    yield _counter_by("workers_exited", "Workers exited, by cause", "cause", snap.exited_total)
    yield CounterMetricFamily(
        PREFIX + "max_workers_reached",
        "Spare-pool episodes that hit max_workers",
        value=snap.max_workers_reached_total,
    )
    restarts = CounterMetricFamily(
        PREFIX + "restarts", "Restarts by kind and result", labels=["kind", "result"]
    )
    for key in sorted(snap.restarts_total):
        kind, _, result = key.partition(":")
        restarts.add_metric([kind, result], snap.restarts_total[key])
    yield restarts
    yield CounterMetricFamily(
        PREFIX + "heartbeat_timeouts",
        "Workers killed for a stale heartbeat",
        value=snap.heartbeat_timeouts_total,
    )


def _traffic(snap: Snapshot) -> Iterator[Metric]:
    """Server-wide request counters and the latency histogram, aggregated across workers."""
    totals = snap.totals
    yield CounterMetricFamily(
        PREFIX + "connections_accepted", "Connections accepted", value=totals.accepted
    )
    yield CounterMetricFamily(
        PREFIX + "connections_handed_back",
        "Keep-alive connections a worker over its share closed after a response, so that their "
        "clients reconnect to a less loaded sibling (balance_connections)",
        value=totals.handed_back,
    )
    requests = CounterMetricFamily(
        PREFIX + "requests",
        "Responses by request method and status class",
        labels=["method", "status_class"],
    )
    for (method, status_class), count in sorted(totals.by_method_class.items()):
        requests.add_metric([method, status_class], count)
    yield requests
    protocols = CounterMetricFamily(
        PREFIX + "requests_by_protocol",
        "Responses finished, by HTTP version (1.1 includes 1.0)",
        labels=["protocol"],
    )
    protocols.add_metric(["1.1"], totals.requests - totals.h2_requests)
    protocols.add_metric(["2"], totals.h2_requests)
    yield protocols
    yield CounterMetricFamily(
        PREFIX + "response_bytes", "Response bytes sent", value=totals.response_bytes
    )
    yield _counter_by(
        "requests_rejected",
        "Requests refused for hostile input or limits, by reason",
        "reason",
        totals.rejected,
        preset=(*_rejection_reasons(), *H2_REJECTION_REASONS),
    )
    yield _counter_by(
        "connections_shed",
        "Connections a worker cut to stay available, by reason: at capacity an idle keep-alive "
        "one or the slowest client (slow_head, slow_body, slow_reader); a stalled reader under "
        "send_min_rate (send_rate); the slowest stalled readers past stalled_write_budget",
        "reason",
        totals.shed,
        preset=SHED_REASONS,
    )
    cumulative = list(totals.duration_buckets) or [0] * len(DURATION_BUCKETS)
    count = max(totals.duration_count, cumulative[-1] if cumulative else 0)
    buckets = [
        (str(float(bound)), float(n))
        for bound, n in zip(DURATION_BUCKETS, cumulative, strict=False)
    ]
    buckets.append(("+Inf", float(count)))
    yield CounterMetricFamily(
        PREFIX + "request_timeouts",
        "Requests whose app was cancelled at request_timeout (each logged with its stack)",
        value=totals.request_timeouts,
    )
    yield CounterMetricFamily(
        PREFIX + "loop_stalls",
        "Times a worker's event loop did not turn for stall_threshold (its stack is logged)",
        value=totals.loop_stalls,
    )
    yield HistogramMetricFamily(
        PREFIX + "request_duration_seconds",
        "Time from request head to the end of the response",
        buckets=buckets,
        sum_value=totals.duration_sum,
        unit="seconds",
    )


# (name, help, unit, value of one slot): every per-slot gauge, labelled slot + generation.
_SLOT_GAUGES: Final[tuple[tuple[str, str, str, Callable[[SlotView], float | None]], ...]] = (
    ("slot_connections", "Open connections of the worker in this slot", "", lambda s: s.open),
    ("slot_accepting", "1 when the worker in this slot accepts", "", lambda s: int(s.accepting)),
    (
        "slot_ready",
        "1 when the worker in this slot is ready (not starting or stopping)",
        "",
        lambda s: int(s.state not in (STARTING, STOPPING)),
    ),
    ("slot_requests", "Requests served by the worker in this slot", "", lambda s: s.requests_total),
    (
        "slot_heartbeat_age_seconds",
        "Seconds since the worker in this slot last reported",
        "seconds",
        lambda s: s.heartbeat_age,
    ),
    (
        "slot_loop_lag_seconds",
        "Event-loop lag the worker in this slot measured",
        "seconds",
        lambda s: s.loop_lag,
    ),
    ("slot_rss_bytes", "Resident memory of the worker in this slot", "bytes", lambda s: s.rss),
    (
        "slot_loop_stall_longest_seconds",
        "Longest event-loop stall (past stall_threshold) of the worker in this slot",
        "seconds",
        lambda s: s.loop_stall_longest,
    ),
    (
        "slot_start_time_seconds",
        "Unix time the worker in this slot was forked",
        "seconds",
        lambda s: s.started_at,
    ),
)


def _per_slot(snap: Snapshot) -> Iterator[Metric]:
    for name, doc, unit, value_of in _SLOT_GAUGES:
        family = GaugeMetricFamily(PREFIX + name, doc, labels=["slot", "generation"], unit=unit)
        for slot in snap.slots:
            value = value_of(slot)
            if value is not None:  # no heartbeat yet: no sample, rather than a made-up 0
                family.add_metric([str(slot.slot), str(slot.gen)], value)
        yield family


def _listen_queues(snap: Snapshot) -> Iterator[Metric]:
    """Each TCP listener's accept queue: clients waiting for a worker (an autoscaling signal)."""
    depth = GaugeMetricFamily(
        PREFIX + "listen_queue_depth",
        "Connections the kernel accepted that no worker has taken yet, per listener",
        labels=["listener"],
    )
    limit = GaugeMetricFamily(
        PREFIX + "listen_queue_limit",
        "Length limit of the listener's accept queue (its effective backlog)",
        labels=["listener"],
    )
    for queue in snap.listen_queues:
        depth.add_metric([queue.listener], queue.queued)
        limit.add_metric([queue.listener], queue.limit)
    yield depth
    yield limit


def metric_families(snap: Snapshot) -> list[Metric]:
    """Every aioprefork_* family for one snapshot, in a stable order."""
    return [
        *_pool(snap),
        *_lifecycle(snap),
        *_traffic(snap),
        *_listen_queues(snap),
        *_per_slot(snap),
    ]


class SnapshotCollector:
    """A prometheus-client collector: one snapshot per scrape, rendered by metric_families()."""

    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterable[Metric]:
        return metric_families(self._snapshot())

    def describe(self) -> Iterable[Metric]:
        """Nothing up front: registering must not take a snapshot."""
        return ()
