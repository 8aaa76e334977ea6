"""Control-channel messages between the master and one worker (docs/architecture.md#control-channel).

Shared by both sides of the socketpair. Every message is a frozen, slotted, keyword-only dataclass
tagged by `MsgType`; channel/codec.py turns them into frames and back. Never pickle: a worker must
not be able to make the master execute anything.
"""

from __future__ import annotations

import enum
import typing
from dataclasses import dataclass
from typing import Final

PROTOCOL_VERSION: Final = 1

# Request-duration histogram bounds in seconds (Prometheus client defaults, shared by worker and
# master so buckets add up across workers). The +Inf bucket is implicit: it equals the count.
DURATION_BUCKETS: Final = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.075,
    0.1,
    0.25,
    0.5,
    0.75,
    1.0,
    2.5,
    5.0,
    7.5,
    10.0,
)


class MsgType(enum.IntEnum):
    READY = 1
    STATUS = 2
    RETIRE = 3
    FATAL = 4
    STACKS = 5
    REQUESTS = 6
    GRACEFUL_STOP = 16
    STOP = 17
    REOPEN_LOGS = 18
    DUMP = 19
    LIST_REQUESTS = 20
    APPLY = 21


# Why a worker cut a connection to stay available (worker/server.py): at capacity, an idle
# keep-alive one or the slowest client (reading its head or body, or reading our response);
# a stalled reader below send_min_rate; the slowest stalled readers past stalled_write_budget.
SHED_REASONS: Final = (
    "idle",
    "slow_head",
    "slow_body",
    "slow_reader",
    "send_rate",
    "stalled_budget",
)
# The `reason` labels HTTP/2 defences count in Status.rejected (aioprefork/http/h2), listed so each
# series starts at 0.
H2_REJECTION_REASONS: Final = (
    "h2_continuation_flood",
    "h2_control_backlog",
    "h2_empty_frames",
    "h2_header_list_too_large",
    "h2_malformed",
    "h2_ping_flood",
    "h2_protocol",
    "h2_rapid_reset",
    "h2_refused_stream",
    "h2_send_timeout",
    "h2_settings_flood",
    "http2_off",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ready:
    """worker -> master: lifespan startup succeeded and the accept gate is open."""

    TYPE = MsgType.READY
    pid: int
    slot: int
    gen: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Status:
    """worker -> master, every second from a task on the worker loop, and when `accepting` flips.

    Totals are cumulative over the worker's life; the master turns them into server-wide counters
    that never go backwards (it keeps what exited workers had counted).
    """

    TYPE = MsgType.STATUS
    accepting: bool
    reading: int = 0  # connections whose request head is arriving
    active: int = 0  # connections with a request in the app
    keepalive: int = 0  # idle connections between requests
    closing: int = 0  # connections being closed / drained
    upgraded: int = 0  # WebSocket connections
    streams: int = 0  # HTTP/2 streams open (the requests of the HTTP/2 connections)
    h2_requests_total: int = 0  # responses finished over HTTP/2 (in requests_total too)
    accepted_total: int = 0
    handed_back_total: int = 0  # connections whose keep-alive ended to rebalance the pool
    requests_total: int = 0
    response_bytes_total: int = 0
    # ((method, status_class), count): method from a closed set, status_class "1xx".."5xx".
    requests: tuple[tuple[str, str, int], ...] = ()
    # (reason, count): hostile-input and limit rejections (errors.RequestRejected.reason).
    rejected: tuple[tuple[str, int], ...] = ()
    # (reason, count): connections cut to stay available (SHED_REASONS).
    shed: tuple[tuple[str, int], ...] = ()
    # Cumulative counts per DURATION_BUCKETS bound (le), plus sum of durations in seconds.
    duration_buckets: tuple[int, ...] = ()
    duration_sum: float = 0.0
    loop_lag: float = 0.0  # seconds the 1 s reporter tick came late
    rss: int = 0  # bytes
    loop_stalls: int = 0  # stalls longer than stall_threshold (worker/stalls.py)
    loop_stall_longest: float = 0.0  # seconds, the longest of them
    request_timeouts_total: int = 0  # apps cancelled at request_timeout

    @property
    def open(self) -> int:
        return self.reading + self.active + self.keepalive + self.closing + self.upgraded


TERMINATED: Final = "terminated"  # Retire reason: the worker got a SIGTERM the master did not send


@dataclass(frozen=True, slots=True, kw_only=True)
class Retire:
    """worker -> master: max_requests or max_worker_memory reached; start my replacement."""

    TYPE = MsgType.RETIRE
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Fatal:
    """worker -> master, just before exiting on a boot error: the message the operator must see
    (one line) and, for an error in the application's code, its traceback (`detail`)."""

    TYPE = MsgType.FATAL
    code: int
    message: str
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Stacks:
    """worker -> master, the answer to Dump: every thread's and every task's stack, as text."""

    TYPE = MsgType.STACKS
    request: int
    text: str


# One request in flight as a worker reports it: (client, peer, protocol, method, target, phase, age).
RequestRow = tuple[str, str, str, str, str, str, float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Requests:
    """worker -> master, the answer to ListRequests: its oldest requests in flight."""

    TYPE = MsgType.REQUESTS
    request: int
    total: int  # requests in flight, before the bound
    rows: tuple[RequestRow, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class GracefulStop:
    """master -> worker: stop accepting, finish in-flight requests by `deadline` (unix time), exit."""

    TYPE = MsgType.GRACEFUL_STOP
    deadline: float


@dataclass(frozen=True, slots=True, kw_only=True)
class Stop:
    """master -> worker: exit now, aborting in-flight requests."""

    TYPE = MsgType.STOP


@dataclass(frozen=True, slots=True, kw_only=True)
class ReopenLogs:
    """master -> worker: reopen log files (after logrotate)."""

    TYPE = MsgType.REOPEN_LOGS


@dataclass(frozen=True, slots=True, kw_only=True)
class Dump:
    """master -> worker: send your live stacks (Stacks) for `ctl dump`; keep serving."""

    TYPE = MsgType.DUMP
    request: int


@dataclass(frozen=True, slots=True, kw_only=True)
class Apply:
    """master -> worker: `ctl set` changed these live settings (key, value as typed)."""

    TYPE = MsgType.APPLY
    settings: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class ListRequests:
    """master -> worker: report up to `limit` requests in flight, oldest first (Requests)."""

    TYPE = MsgType.LIST_REQUESTS
    request: int
    limit: int
    target_length: int


# The unions by direction: an endpoint sends one and receives the other (channel/endpoint.py),
# and each side's dispatch matches every member of what it receives (mypy checks the match is
# exhaustive). Adding a message: CONTRIBUTING.md, "Add a channel message".
ToMaster = Ready | Status | Retire | Fatal | Stacks | Requests
ToWorker = GracefulStop | Stop | ReopenLogs | Dump | ListRequests | Apply
Message = ToMaster | ToWorker

TO_MASTER: Final[tuple[type[ToMaster], ...]] = typing.get_args(ToMaster)
TO_WORKER: Final[tuple[type[ToWorker], ...]] = typing.get_args(ToWorker)
MESSAGE_TYPES: Final[dict[MsgType, type[Message]]] = {
    cls.TYPE: cls for cls in (*TO_MASTER, *TO_WORKER)
}
