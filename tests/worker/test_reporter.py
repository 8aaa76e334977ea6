"""worker/reporter.py: heartbeat frames, loop lag, and the one-time Retire decision."""

from __future__ import annotations

import asyncio
import random
import time

import pytest

from aioprefork.channel.endpoint import PeerGone
from aioprefork.channel.messages import DURATION_BUCKETS, Message, Retire, Status
from aioprefork.http.stats import WorkerStats
from aioprefork.worker.reporter import (
    MEMORY_FAST_INTERVAL,
    MEMORY_INTERVAL,
    MEMORY_MARGIN,
    Reporter,
    memory_interval,
    memory_verdict,
    read_rss,
)


def make(**kw: object) -> tuple[Reporter, list[Message], WorkerStats, list[int]]:
    sent: list[Message] = []
    stats = WorkerStats()
    rss = [10_000_000]
    reporter = Reporter(sent.append, stats, lambda: True, rss=lambda: rss[0], **kw)  # type: ignore[arg-type]
    return reporter, sent, stats, rss


def serve(stats: WorkerStats, n: int) -> None:
    for _ in range(n):
        stats.observe("GET", 200, 0.001, 10)


def test_status_carries_the_counters() -> None:
    reporter, sent, stats, _ = make()
    serve(stats, 3)
    reporter.report()
    (status,) = sent
    assert isinstance(status, Status)
    assert (status.accepting, status.requests_total, status.rss) == (True, 3, 10_000_000)


def test_max_requests_retires_on_the_request_that_reaches_it() -> None:
    """Checked on the request path, not once a second: a fast worker served ~2x its limit."""
    reporter, sent, stats, _ = make(max_requests=5)
    serve(stats, 4)
    assert not [m for m in sent if isinstance(m, Retire)]
    serve(stats, 1)
    assert sent == [Retire(reason="max_requests")]  # no Status frame needed
    serve(stats, 10)
    reporter.report()
    retires = [m for m in sent if isinstance(m, Retire)]
    assert retires == [Retire(reason="max_requests")]
    assert reporter.retired == "max_requests"


def test_the_served_count_reaches_the_board_every_few_requests_and_exactly_at_the_limit() -> None:
    published: list[int] = []
    _, _, stats, _ = make(max_requests=40, publish=published.append)
    serve(stats, 100)
    assert published == [16, 32, 40, 56, 72, 88]
    assert stats.requests_total == 100


def test_jitter_is_drawn_once_within_bounds() -> None:
    limits = {
        make(max_requests=100, max_requests_jitter=10, rng=random.Random(seed))[0].request_limit
        for seed in range(50)
    }
    assert limits <= set(range(100, 111)) and len(limits) > 3
    assert make(max_requests=0, max_requests_jitter=10)[0].request_limit == 0


def test_memory_verdict_one_spike_is_not_a_leak_but_far_past_the_limit_is() -> None:
    limit = 100
    assert memory_verdict(90, limit, 0) == (False, 0)
    assert memory_verdict(105, limit, 0) == (False, 1)  # one sample over: maybe a spike
    assert memory_verdict(95, limit, 1) == (False, 0)
    assert memory_verdict(105, limit, 1) == (True, 2)  # twice in a row
    assert memory_verdict(int(limit * MEMORY_MARGIN) + 1, limit, 0)[0]  # far past: at once
    assert memory_verdict(10**12, 0, 0) == (False, 0)  # no limit
    assert memory_interval(50, limit) == MEMORY_INTERVAL
    assert memory_interval(80, limit) == MEMORY_FAST_INTERVAL  # near the limit: sample faster


async def test_memory_watch_retires_at_once_past_the_margin_and_stops_accepting() -> None:
    retired: list[str] = []
    reporter, sent, _, rss = make(max_memory=50_000_000, on_retire=retired.append)
    watch = asyncio.ensure_future(reporter.watch_memory())
    await asyncio.sleep(0.15)
    assert not watch.done()
    rss[0] = 80_000_000
    await asyncio.wait_for(watch, 1.0)
    assert [m for m in sent if isinstance(m, Retire)] == [Retire(reason="max_memory")]
    assert retired == ["max_memory"]


def test_poke_reports_at_once() -> None:
    reporter, sent, _, _ = make()
    reporter.poke(False)
    assert len(sent) == 1 and isinstance(sent[0], Status)


def test_a_gone_master_is_not_an_error() -> None:
    def send(msg: Message) -> None:
        raise PeerGone("gone")

    reporter = Reporter(send, WorkerStats(), lambda: True)
    assert reporter.report() is None


@pytest.mark.timeout(5)
async def test_run_ticks_and_measures_loop_lag() -> None:
    reporter, sent, _, _ = make(interval=0.05)
    task = asyncio.ensure_future(reporter.run())
    await asyncio.sleep(0.12)
    time.sleep(0.1)  # block the loop: the next tick comes late
    await asyncio.sleep(0.08)
    task.cancel()
    statuses = [m for m in sent if isinstance(m, Status)]
    assert len(statuses) >= 2
    assert max(s.loop_lag for s in statuses) >= 0.04


def test_read_rss_is_plausible() -> None:
    assert 1_000_000 < read_rss() < 10_000_000_000


def test_request_counts_keep_a_bounded_method_label() -> None:
    stats = WorkerStats()
    for method, status in (("GET", 200), ("GET", 404), ("PROPFIND", 207), ("BREW", 999)):
        stats.observe(method, status, 0.001, 1)
    assert stats.requests == {("GET", 2): 1, ("GET", 4): 1, ("OTHER", 2): 1, ("OTHER", 9): 1}
    assert stats.requests_total == 4
    rows = stats.status(accepting=True, loop_lag=0.0, rss=0).requests
    assert ("OTHER", "5xx", 1) in rows and ("GET", "4xx", 1) in rows  # 9xx counted as 5xx


def test_durations_and_counts_merge_the_common_case_counters() -> None:
    """GET 2xx and durations within the first bound are counted apart, and read back merged."""
    stats = WorkerStats()
    first = DURATION_BUCKETS[0]
    observed = [
        ("GET", 200, 0.0001),
        ("GET", 204, first),  # on the bound: le=first (bucket 0)
        ("GET", 200, first * 1.001),  # just above: bucket 1
        ("POST", 201, 0.0001),
        ("GET", 500, 1e9),  # +Inf
    ]
    for method, status, duration in observed:
        stats.observe(method, status, duration, 1)
    assert stats.requests == {("GET", 2): 3, ("POST", 2): 1, ("GET", 5): 1}
    assert stats.requests_total == 5
    buckets = stats.duration_buckets
    assert (buckets[0], buckets[1], buckets[-1], sum(buckets)) == (3, 1, 1, 5)
    cumulative = stats.status(accepting=True, loop_lag=0.0, rss=0).duration_buckets
    assert cumulative[0] == 3 and cumulative[-1] == 4  # +Inf is implied by the total
    assert abs(stats.duration_sum - sum(d for _, _, d in observed)) < 1e-6
