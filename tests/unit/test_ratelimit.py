"""aioprefork/ratelimit.py: a log budget over plain clock values."""

from __future__ import annotations

from aioprefork.ratelimit import RateLimit


def test_budget_then_count_of_the_held_back() -> None:
    limit = RateLimit(2, 10.0)
    assert [limit.take(t) for t in (0.0, 1.0, 2.0, 3.0, 9.9)] == [
        (True, 0), (True, 0), (False, 0), (False, 0), (False, 0),
    ]  # fmt: skip
    assert limit.take(10.0) == (True, 3)  # a new window says how many went unlogged
    assert limit.take(10.5) == (True, 0)
    assert limit.take(30.0) == (True, 0)
