"""Balance: spread connections evenly over the workers that share a listening socket.

Why: every worker polls the same listening socket, and the one that wakes first takes what is
queued (up to ACCEPT_FAN a loop turn, worker/server.py), before any of our code runs. When a
client opens many connections at once (a load balancer's pool, wrk), one worker can take most of
them: two workers given 64 connections at once split them 0/64, 7/57 or 25/39 on our test host.
The kernel has no fair hand-off on a shared socket. SO_REUSEPORT sockets per worker would spread
evenly, but closing one on scale-down resets the connections queued on it.

So each worker balances itself from the LoadBoard (least connections, as a load balancer does):
* gate: it stops accepting while it holds more than its least loaded sibling that is accepting,
  plus a slack, so the kernel gives the next connections to that sibling, and accepts again once
  within it. Only a sibling whose gate is open counts here: when the siblings with fewer
  connections have all stopped accepting (a decision they took a moment ago, when we held fewer),
  we keep accepting, so a burst never finds every gate shut. (Measured before this rule: two
  workers given 128 connections at once took ~0.2 s to accept them in turns, and wrk's p99
  went from 6 to 40-90 ms.)
* hand back: holding more than the pool's mean plus a slack (after a burst), it ends keep-alive
  on the excess: each of those connections gets its next response with `Connection: close`, and
  the client's next connection goes to a sibling. Nothing in flight is cut.
A sibling counts while its heartbeat is fresh. One whose loop is stuck, or that stopped taking
connections, is left out, so it cannot hold the others back. The decision (`fair_share`) is a
pure function; `Balance` is this worker's window on the board.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from aioprefork.channel.board import LoadBoard

__all__ = [
    "BEAT_INTERVAL",
    "HAND_BACK_INTERVAL",
    "PAUSED_INTERVAL",
    "STALE_MS",
    "Balance",
    "Share",
    "fair_share",
    "slack",
]

BEAT_INTERVAL: Final = 0.1  # s between heartbeats, each also re-assessing the share
PAUSED_INTERVAL: Final = 0.01  # s between re-assessments while the gate is shut: siblings fill fast
# s between two hand-backs: what was handed back must land on the siblings (the client reconnects,
# a sibling accepts) before the share is measured again, or connections in transit, held by
# nobody, lower the mean and the same excess is handed back twice (55 -> 8 of a fair 16, measured)
HAND_BACK_INTERVAL: Final = 0.1
STALE_MS: Final = 250  # a sibling silent this long (2.5 beats) is stuck or gone: not counted


def slack(connections: int) -> int:
    """How far above a reference a worker may go: 1, plus 1/16 of it (32 -> 3, 256 -> 17).
    Proportional, so large pools are not reshuffled for a connection or two."""
    return 1 + connections // 16


@dataclass(frozen=True, slots=True)
class Share:
    limit: int  # accept while holding at most this many connections
    excess: int  # connections held beyond the fair share: hand them back


UNBOUNDED: Final = Share(limit=sys.maxsize, excess=0)


def fair_share(mine: int, siblings: Sequence[int], accepting: Sequence[int]) -> Share:
    """This worker's share, given its open connections, those of its live siblings, and those
    of the live siblings whose gate is open (a subset)."""
    if not siblings:
        return UNBOUNDED
    mean = (mine + sum(siblings)) // (len(siblings) + 1)
    limit = sys.maxsize  # no sibling takes connections now: keep taking them
    if accepting:
        least = min(accepting)
        limit = least + slack(least)
    return Share(limit=limit, excess=max(0, mine - mean - slack(mean)))


def now_ms() -> int:
    return time.monotonic_ns() // 1_000_000


class Balance:
    """One worker's slot on the board: publish its count and heartbeat, read its siblings'."""

    __slots__ = ("_board", "_scan", "_slot", "limit")

    def __init__(self, board: LoadBoard, slot: int, slots: int) -> None:
        self._board = board
        self._slot = slot
        self._scan = min(slots, board.size)  # the pool's slot indices (server_limit)
        self.limit = sys.maxsize  # from the last assessment; accept while at most this

    def publish(self, connections: int) -> None:
        self._board.counts[self._slot] = connections

    def beat(self) -> None:
        self._board.beats[self._slot] = now_ms()

    def publish_gate(self, open_: bool) -> None:
        self._board.gates[self._slot] = open_

    def withdraw(self) -> None:
        """Stopped taking connections: siblings stop measuring themselves against us."""
        self._board.clear(self._slot)

    def siblings(self) -> tuple[list[int], list[int]]:
        """The open connections of every sibling whose heartbeat is fresh, and of those of
        them whose gate is open."""
        fresh = now_ms() - STALE_MS
        board = self._board
        counts, gates = board.counts, board.gates
        me = self._slot
        live: list[int] = []
        accepting: list[int] = []
        for i, beat in enumerate(board.beats[: self._scan].tolist()):
            if beat > fresh and i != me:
                count = counts[i]
                live.append(count)
                if gates[i]:
                    accepting.append(count)
        return live, accepting

    def assess(self, connections: int) -> Share:
        share = fair_share(connections, *self.siblings())
        self.limit = share.limit
        return share
