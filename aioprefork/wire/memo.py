"""Bounded memo dicts for the request hot path.

What repeats from request to request (header names, Host values, Content-Length values, response
heads) is validated or computed once and looked up afterwards. A cache that reaches its limit is
cleared rather than evicted piecemeal: a client sending endless variety costs at most `limit`
entries and a recomputation, and the common values are back after one miss each.
"""

from __future__ import annotations

from typing import Final, TypeVar

__all__ = ["COMPILED", "remember"]


class _Probe:
    pass


# True in the mypyc build (setup.py HOT_PATH). Some memos pay only there: a native loop or
# comparison beats C-level hashing, where the same lines interpreted cost more than they save.
COMPILED: Final = hasattr(_Probe, "__mypyc_attrs__")

K = TypeVar("K")
V = TypeVar("V")


def remember(cache: dict[K, V], key: K, value: V, limit: int) -> V:
    """Store `value` under `key` (clearing `cache` first if it holds `limit` entries); return it."""
    if len(cache) >= limit:
        cache.clear()
    cache[key] = value
    return value
