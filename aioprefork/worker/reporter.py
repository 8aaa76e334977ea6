"""The worker's heartbeat: a task on the worker's own event loop that sends a Status frame every
second, and at once when the accept gate flips (docs/architecture.md#control-channel).

Because it runs on the serving loop, a loop blocked by the application (a `time.sleep` in a
handler) stops the frames, and the master's heartbeat check sees it; the lateness of each tick
is reported as `loop_lag`. It also decides recycling, once (README "Reliability"):

- `Retire("max_requests")` from the request path itself (`on_served`, run by WorkerStats every
  PUBLISH_EVERY responses and exactly at the limit): max_requests_per_worker + a random
  0..jitter drawn once per worker, so workers do not recycle together; a once-a-second check let
  a fast worker serve twice its limit. The same hook writes the count to the shared board.
- `Retire("max_memory")` from a memory watch that samples RSS often (every MEMORY_FAST_INTERVAL
  once past MEMORY_NEAR of the limit, and on the request path every PUBLISH_EVERY responses, so a
  worker answering thousands of requests a second cannot outrun the timer): at once past
  MEMORY_MARGIN x the limit, else on two consecutive samples over it (one spike is not a leak).

Either way `on_retire` then stops the worker accepting, so a leak stops growing and a request
limit holds while the replacement boots.

After Retire the worker finishes what it holds until the master, having started its replacement,
tells it to stop.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable
from typing import Final

from aioprefork.channel.endpoint import PeerGone
from aioprefork.channel.messages import Retire, Status, ToMaster
from aioprefork.http.stats import WorkerStats
from aioprefork.worker.stalls import StallWatch

INTERVAL: Final = 1.0  # seconds between Status frames (docs/architecture.md#control-channel)
MEMORY_SAMPLES: Final = 2  # consecutive samples above max_worker_memory before Retire
MEMORY_MARGIN: Final = 1.1  # this far past the limit one sample is enough
MEMORY_NEAR: Final = 0.75  # past this share of the limit, sample every MEMORY_FAST_INTERVAL
MEMORY_INTERVAL: Final = 0.1  # seconds (reading /proc/self/statm costs a few microseconds)
MEMORY_FAST_INTERVAL: Final = 0.01
PUBLISH_EVERY: Final = 16  # responses between two writes of the served count to the board
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


def read_rss() -> int:
    """Resident set size in bytes, from /proc (cheap: one small read)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, IndexError, ValueError):  # pragma: no cover - not Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_verdict(rss: int, limit: int, over_before: int) -> tuple[bool, int]:
    """(retire now, consecutive samples over the limit) after one RSS sample."""
    if not limit or rss <= limit:
        return False, 0
    over = over_before + 1
    return rss > limit * MEMORY_MARGIN or over >= MEMORY_SAMPLES, over


def memory_interval(rss: int, limit: int) -> float:
    return MEMORY_FAST_INTERVAL if rss > limit * MEMORY_NEAR else MEMORY_INTERVAL


class Reporter:
    """Builds and sends Status frames; `run()` is the 1 s loop, `poke()` the accept-flip hook,
    `on_served()` the request-path hook, `watch_memory()` the max_worker_memory loop."""

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
        publish: Callable[[int], None] | None = None,
        on_retire: Callable[[str], None] | None = None,
        stalls: StallWatch | None = None,
    ) -> None:
        self._send = send
        self._stats = stats
        self._accepting = accepting
        self._jitter = (rng or random.Random()).randint(0, max_requests_jitter)
        self.request_limit = max_requests + self._jitter if max_requests else 0
        self._max_memory = max_memory
        self._interval = interval
        self._rss = rss
        self.stalls = stalls  # set once serving starts (worker/process.py)
        self._over_memory = 0
        self._lag = 0.0
        self._publish = publish
        self._on_retire = on_retire
        self.retired = ""  # the reason sent, once
        stats.on_mark = self.on_served
        stats.set_mark(self._next_mark(stats.served))

    def set_request_limit(self, max_requests: int) -> None:
        """`ctl set max_requests_per_worker`: the new limit (with this worker's jitter), checked
        from the next response on; a worker already past it retires at once."""
        self.request_limit = max_requests + self._jitter if max_requests else 0
        served = self._stats.served
        if self.request_limit and served >= self.request_limit:
            self.retire("max_requests")
        self._stats.set_mark(self._next_mark(served))

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

    async def watch_memory(self) -> None:
        """Sample RSS until max_worker_memory retires this worker (nothing to do without one)."""
        limit = self._max_memory
        while limit and not self.retired:
            rss = self._check_memory()
            if self.retired:
                return
            await asyncio.sleep(memory_interval(rss, limit))

    def _check_memory(self) -> int:
        """One RSS sample against max_worker_memory (retiring when it says so); the sample."""
        rss = self._rss()
        retire, self._over_memory = memory_verdict(rss, self._max_memory, self._over_memory)
        if retire:
            self.retire("max_memory")
        return rss

    def on_served(self, served: int) -> int:
        """WorkerStats' mark: publish the count, retire at the request limit, and sample memory
        (a timer alone lags behind a worker answering thousands of requests a second, as a
        fresh replacement does when it takes a backlog at once); the next mark."""
        if self._publish is not None:
            self._publish(served)
        if self.request_limit and served >= self.request_limit:
            self.retire("max_requests")
        if self._max_memory and not self.retired:
            self._check_memory()
        return self._next_mark(served)

    def _next_mark(self, served: int) -> int:
        every = self._publish is not None or self._max_memory
        mark = served + PUBLISH_EVERY if every else -1
        limit = self.request_limit
        if limit > served and not self.retired and (mark < 0 or limit < mark):
            mark = limit
        return mark

    def retire(self, reason: str) -> None:
        """Ask the master for a replacement, once."""
        if self.retired:
            return
        self.retired = reason
        try:
            self._send(Retire(reason=reason))
        except PeerGone:
            return
        if self._on_retire is not None:
            self._on_retire(reason)

    def report(self) -> Status | None:
        """Send one Status frame (and a Retire if a limit was reached); None if the master is gone."""
        stalls = self.stalls
        status = self._stats.status(
            accepting=self._accepting(),
            loop_lag=self._lag,
            rss=self._rss(),
            loop_stalls=stalls.stalls if stalls is not None else 0,
            loop_stall_longest=stalls.longest if stalls is not None else 0.0,
        )
        if self._publish is not None:
            self._publish(status.requests_total)
        try:
            self._send(status)
        except PeerGone:
            return None
        if self.request_limit and status.requests_total >= self.request_limit:
            self.retire("max_requests")
        return status
