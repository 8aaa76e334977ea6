"""The worker's heartbeat: a task on the worker's own event loop that sends a Status frame every
second, and at once when the accept gate flips (docs/architecture.md#control-channel).

Because it runs on the serving loop, a loop blocked by the application (a `time.sleep` in a
handler) stops the frames, and the master's heartbeat check sees it; the lateness of each tick
is reported as `loop_lag`. It also decides recycling, once: `Retire("max_requests")` when the
worker has served max_requests_per_worker + a random 0..jitter requests (drawn once per worker so
workers do not recycle together), `Retire("max_memory")` when RSS is above max_worker_memory on
two consecutive samples (one spike is not a leak). After Retire the worker keeps serving until
the master, having started its replacement, tells it to stop.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from typing import Final

from aioprefork.channel.endpoint import PeerGone
from aioprefork.channel.messages import Retire, Status, ToMaster
from aioprefork.worker.stats import WorkerStats

INTERVAL: Final = 1.0  # seconds between Status frames (docs/architecture.md#control-channel)
MEMORY_SAMPLES: Final = 2  # consecutive samples above max_worker_memory before Retire
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


def read_rss() -> int:
    """Resident set size in bytes, from /proc (cheap: one small read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Reporter:
    """Builds and sends Status frames; `run()` is the 1 s loop, `poke()` the accept-flip hook."""

    def __init__(
        self,
        send: Callable[[ToMaster], None],
        stats: WorkerStats,
        accepting: Callable[[], bool],
        *,
        max_requests: int = 0,
        max_requests_jitter: int = 0,
        max_memory: int = 0,
        interval: float = INTERVAL,
        rss: Callable[[], int] = read_rss,
        rng: random.Random | None = None,
    ) -> None:
        self._send = send
        self._stats = stats
        self._accepting = accepting
        jitter = (rng or random.Random()).randint(0, max_requests_jitter) if max_requests else 0
        self.request_limit = max_requests + jitter if max_requests else 0
        self._max_memory = max_memory
        self._interval = interval
        self._rss = rss
        self._over_memory = 0
        self._lag = 0.0
        self.retired = ""  # the reason sent, once

    def poke(self, accepting: bool) -> None:
        """The accept gate flipped: tell the master now, not at the next tick."""
        del accepting  # read through the accepting() callable, like every report
        self.report()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self._interval
            await asyncio.sleep(self._interval)
            self._lag = max(0.0, loop.time() - due)
            self.report()

    def report(self) -> Status | None:
        """Send one Status frame (and a Retire if a limit was reached); None if the master is gone."""
        status = self._stats.status(
            accepting=self._accepting(), loop_lag=self._lag, rss=self._rss()
        )
        try:
            self._send(status)
            reason = self._retire_reason(status)
            if reason:
                self._send(Retire(reason=reason))
                self.retired = reason
        except PeerGone:
            return None
        return status

    def _retire_reason(self, status: Status) -> str:
        if self._max_memory:
            self._over_memory = self._over_memory + 1 if status.rss > self._max_memory else 0
        if self.retired:
            return ""
        if self.request_limit and status.requests_total >= self.request_limit:
            return "max_requests"
        if self._max_memory and self._over_memory >= MEMORY_SAMPLES:
            return "max_memory"
        return ""
