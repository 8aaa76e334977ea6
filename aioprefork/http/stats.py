"""Per-worker counters the hot path bumps with integer increments, read once a second.

The HTTP protocol calls `observe()` once per response and `reject()` per refused request; nothing
here formats, locks or allocates per request beyond a dict increment. Connection states are not
counted on transitions: the reporter walks `connections` once a second and reads each one's
`phase` instead, which costs nothing on the hot path.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final, Protocol

from aioprefork.channel.messages import DURATION_BUCKETS, Status

# A closed method set keeps the metrics label bounded (docs/architecture.md#scoreboard-and-metrics).
KNOWN_METHODS: Final = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "CONNECT", "TRACE"}
)
STATUS_CLASSES: Final = ("1xx", "1xx", "2xx", "3xx", "4xx", "5xx")  # index by status // 100
PHASES: Final = ("reading", "active", "keepalive", "closing", "upgraded")
# The histogram's bounds as a list: mypyc keeps a fixed-length float tuple unboxed and would box
# its floats again on every read.
_BOUNDS: Final[list[float]] = list(DURATION_BUCKETS)
_NBOUNDS: Final = len(DURATION_BUCKETS)
_FIRST_BOUND: Final = float(DURATION_BUCKETS[0])


class Connection(Protocol):
    """What the reporter and the graceful drain need from a live connection."""

    @property
    def phase(self) -> str: ...

    def shutdown(self) -> None:
        """Close when idle; finish the request in flight first (graceful stop)."""

    def abort(self) -> None:
        """Close now (immediate stop, or the graceful deadline passed)."""


class WorkerStats:
    __slots__ = (
        "_buckets",
        "_by_method",
        "_fast",
        "_get_2xx",
        "_next_mark",
        "accepted_total",
        "connections",
        "duration_sum",
        "h2_busy",
        "h2_requests_total",
        "h2_streams",
        "handed_back_total",
        "on_mark",
        "rejected",
        "request_timeouts",
        "response_bytes_total",
        "served",
        "shed",
    )

    def __init__(self) -> None:
        self.connections: set[Connection] = set()
        self.accepted_total = 0
        self.handed_back_total = 0  # keep-alive ended to rebalance the pool (worker/balance.py)
        self.h2_streams = 0  # HTTP/2 streams open now, over all this worker's connections
        self.h2_busy = 0  # HTTP/2 connections with at least one stream open
        self.h2_requests_total = 0  # responses finished over HTTP/2
        self.response_bytes_total = 0
        # method label -> responses per status // 100 (0-9); one str-keyed lookup per request
        self._by_method: dict[str, list[int]] = {}
        self.rejected: dict[str, int] = {}
        self.request_timeouts = 0  # apps cancelled at request_timeout
        self.shed: dict[str, int] = {}  # connections cut to stay available, by SHED_REASONS
        self._buckets = [0] * (len(DURATION_BUCKETS) + 1)  # last = +Inf overflow
        self.duration_sum = 0.0
        # The common case counted in plain int fields (unboxed in the compiled build), merged
        # into the tables above when read: GET answered 2xx, and a response within the first
        # histogram bound.
        self._get_2xx = 0
        self._fast = 0
        # Responses finished, and the count at which `on_mark(served)` runs next (it returns the
        # following mark): max_requests_per_worker and the shared board are served from the
        # request path at the cost of one increment and one compare per response.
        self.served = 0
        self._next_mark = -1
        self.on_mark: Callable[[int], int] | None = None

    def set_mark(self, mark: int) -> None:
        """Call `on_mark` when `served` reaches `mark` (-1: never)."""
        self._next_mark = mark if mark > self.served else -1

    def observe(self, method: str, status: int, duration: float, response_bytes: int) -> None:
        """One finished response.

        Written for the mypyc build: the common case bumps int fields, which compile to a
        machine add where a list[int] item is a boxed int (an allocation per bump).
        """
        self.response_bytes_total += response_bytes
        self.served += 1
        if self.served == self._next_mark:
            self._mark()
        if method == "GET" and 200 <= status < 300:
            self._get_2xx += 1
        else:
            counts = self._by_method.get(method)
            if counts is None:
                label = method if method in KNOWN_METHODS else "OTHER"  # a bounded label set
                counts = self._by_method.setdefault(label, [0] * 10)
            cls = status // 100
            counts[cls] = counts[cls] + 1
        if duration <= _FIRST_BOUND:
            self._fast += 1
        else:
            bounds = _BOUNDS
            bucket = 1
            while bucket < _NBOUNDS and bounds[bucket] < duration:  # bisect_left, unrolled
                bucket += 1
            buckets = self._buckets
            buckets[bucket] = buckets[bucket] + 1
        self.duration_sum += duration

    def _mark(self) -> None:
        hook = self.on_mark
        self.set_mark(-1 if hook is None else hook(self.served))

    @property
    def duration_buckets(self) -> list[int]:
        """Responses per histogram bucket (not cumulative); the last one is +Inf."""
        buckets = list(self._buckets)
        buckets[0] += self._fast
        return buckets

    @property
    def requests(self) -> dict[tuple[str, int], int]:
        """(method label, status // 100) -> responses; built when read (once a second)."""
        rows = {
            (method, cls): n
            for method, counts in self._by_method.items()
            for cls, n in enumerate(counts)
            if n
        }
        if self._get_2xx:
            rows[("GET", 2)] = rows.get(("GET", 2), 0) + self._get_2xx
        return rows

    @property
    def requests_total(self) -> int:
        """Responses finished."""
        return self.served

    @property
    def load(self) -> int:
        """Open connections, an HTTP/2 connection counted by its streams (at least 1): what the
        balance between workers compares (worker/balance.py)."""
        return len(self.connections) + self.h2_streams - self.h2_busy

    def reject(self, reason: str) -> None:
        """One refused request (hostile input or limit), labelled by RequestRejected.reason."""
        self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def shed_one(self, reason: str) -> None:
        """One connection cut to keep the worker available (a reason of SHED_REASONS)."""
        self.shed[reason] = self.shed.get(reason, 0) + 1

    def phases(self) -> dict[str, int]:
        counts = dict.fromkeys(PHASES, 0)
        for conn in self.connections:
            counts[conn.phase] = counts.get(conn.phase, 0) + 1
        return counts

    def status(
        self,
        *,
        accepting: bool,
        loop_lag: float,
        rss: int,
        loop_stalls: int = 0,
        loop_stall_longest: float = 0.0,
    ) -> Status:
        """The frame the reporter sends; histogram buckets made cumulative as Prometheus wants."""
        cumulative: list[int] = []
        running = 0
        for count in self.duration_buckets[:-1]:
            running += count
            cumulative.append(running)
        phases = self.phases()
        return Status(
            accepting=accepting,
            reading=phases["reading"],
            active=phases["active"],
            keepalive=phases["keepalive"],
            closing=phases["closing"],
            upgraded=phases["upgraded"],
            streams=self.h2_streams,
            h2_requests_total=self.h2_requests_total,
            accepted_total=self.accepted_total,
            handed_back_total=self.handed_back_total,
            requests_total=self.requests_total,
            response_bytes_total=self.response_bytes_total,
            requests=_requests_rows(self.requests.items()),
            rejected=tuple(sorted(self.rejected.items())),
            shed=tuple(sorted(self.shed.items())),
            duration_buckets=tuple(cumulative),
            duration_sum=self.duration_sum,
            loop_lag=loop_lag,
            rss=rss,
            loop_stalls=loop_stalls,
            loop_stall_longest=loop_stall_longest,
            request_timeouts_total=self.request_timeouts,
        )


def _requests_rows(
    items: Iterable[tuple[tuple[str, int], int]],
) -> tuple[tuple[str, str, int], ...]:
    return tuple(sorted((method, STATUS_CLASSES[min(cls, 5)], n) for (method, cls), n in items))
