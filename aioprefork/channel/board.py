"""LoadBoard: every worker's open-connection count and heartbeat, in memory the pool shares.

Why not the control channel: a worker decides whether to take the next connection inside its
accept path, many times in a millisecond during a burst, from its siblings' counts as they are
now. A status frame relayed by the master once a second is far too late for that (Apache keeps
its scoreboard in shared memory for the same reason).

The master maps it once, before the first fork (anonymous MAP_SHARED pages are inherited by
every child, across generations), and clears a slot when it reaps that slot's worker. Each
worker writes only its own slot. Layout: four arrays of native signed 64-bit words indexed by
slot: `counts` (open connections), `beats` (CLOCK_MONOTONIC in milliseconds, one clock for every
process on the host; 0 means "not taking connections"), `gates` (1 while the worker's
listeners are polled, so it takes the next connections) and `served` (responses finished, written
every few requests: the master reads it when it reaps a worker that was SIGKILLed before its last
Status frame, so aioprefork_requests_total loses none of that worker's last second). An aligned 8-byte store is one
instruction on the platforms we run on, so a reader sees the old value or the new one, never a
mix, and nothing here needs more: a count read a moment late only delays a balance decision.
"""

from __future__ import annotations

import mmap
from typing import Final

__all__ = ["CAPACITY", "LoadBoard"]

# Slots the board holds. server_limit may be raised by a reload, and a board cannot grow under
# running workers, so it is mapped this large once: 128 KiB of address space, of which only the
# pages of slots in use are ever touched. Workers in higher slots take part in no balancing.
CAPACITY: Final = 4096
_WORD: Final = 8


class LoadBoard:
    __slots__ = ("_map", "beats", "counts", "gates", "served", "size")

    def __init__(self, size: int = CAPACITY) -> None:
        self.size = size
        self._map = mmap.mmap(-1, 4 * _WORD * size)  # anonymous; MAP_SHARED is the default
        words = memoryview(self._map).cast("q")
        self.counts: memoryview = words[:size]
        self.beats: memoryview = words[size : 2 * size]
        self.gates: memoryview = words[2 * size : 3 * size]
        self.served: memoryview = words[3 * size :]

    def holds(self, slot: int) -> bool:
        return 0 <= slot < self.size

    def clear(self, slot: int) -> None:
        """The slot's worker is gone: it neither holds nor takes connections."""
        if self.holds(slot):
            self.beats[slot] = 0
            self.gates[slot] = 0
            self.counts[slot] = 0
            self.served[slot] = 0

    def served_by(self, slot: int) -> int:
        return int(self.served[slot]) if self.holds(slot) else 0
