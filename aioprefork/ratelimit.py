"""A log budget: at most `limit` lines per `window` seconds, and a count of those held back.

Why: a crash loop or an fd-exhausted accept loop can fail many times a second; each failure
deserves a line until the log says enough, then one line saying how many more there were.
Pure over the clock it is given, so it is tested with plain numbers.
"""

from __future__ import annotations


class RateLimit:
    __slots__ = ("_limit", "_missed", "_used", "_window", "_window_start")

    def __init__(self, limit: int, window: float) -> None:
        self._limit, self._window = limit, window
        self._window_start = -window
        self._used = 0
        self._missed = 0

    def take(self, now: float) -> tuple[bool, int]:
        """(may this event be logged, how many were held back in the window that just ended)."""
        missed = 0
        if now - self._window_start >= self._window:
            missed, self._missed = self._missed, 0
            self._window_start, self._used = now, 0
        if self._used < self._limit:
            self._used += 1
            return True, missed
        self._missed += 1
        return False, missed
