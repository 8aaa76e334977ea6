"""The balance decision (worker/balance.fair_share) and the LoadBoard it reads, without servers."""

from __future__ import annotations

import os
import sys

import pytest

from aioprefork.channel.board import LoadBoard
from aioprefork.worker.balance import STALE_MS, Balance, Share, fair_share, now_ms, slack

pytestmark = pytest.mark.timeout(10)


def test_slack_is_one_plus_a_sixteenth() -> None:
    assert [slack(n) for n in (0, 1, 15, 16, 32, 256)] == [1, 1, 1, 2, 3, 17]


def test_a_worker_alone_takes_everything() -> None:
    assert fair_share(5000, [], []) == Share(limit=sys.maxsize, excess=0)


@pytest.mark.parametrize(
    ("mine", "siblings", "limit", "excess"),
    [
        (0, [0, 0, 0], 1, 0),  # a burst starts: one connection ahead of the least is allowed
        (2, [0, 5, 7], 1, 0),  # over the least loaded sibling: the gate shuts, nothing to give
        (32, [30, 33, 31], 32, 0),  # even pool: within both slacks
        (64, [0, 0, 0], 1, 46),  # a burst went to us: keep mean (16) + slack (2)
        (100, [0], 1, 46),  # two workers: keep mean (50) + slack (4)
        (18, [16, 16, 14], 14 + 1, 0),  # 18 is within mean 16 + slack 2: keep them
        (19, [16, 16, 13], 13 + 1, 1),  # one over mean + slack: hand one back
    ],
)
def test_the_gate_follows_the_least_loaded_and_the_excess_the_mean(
    mine: int, siblings: list[int], limit: int, excess: int
) -> None:
    assert fair_share(mine, siblings, siblings) == Share(limit=limit, excess=excess)


def test_the_gate_follows_only_siblings_that_accept() -> None:
    """Siblings with fewer connections whose gates are shut (they shut them a moment ago, when
    we held fewer) cannot take the next connections: we keep our gate open."""
    assert fair_share(9, [2, 3], []) == Share(limit=sys.maxsize, excess=9 - 4 - 1)
    assert fair_share(9, [2, 3, 12], [3, 12]) == Share(limit=3 + 1, excess=9 - 6 - 1)


def test_a_pool_balanced_by_the_gate_never_hands_back() -> None:
    """Every count the gate allows (at most least + slack) is within mean + slack."""
    for least in range(0, 200, 7):
        for others in ([least], [least, least + 3], [least, least * 2, least + 1]):
            mine = fair_share(0, others, others).limit
            assert fair_share(mine, others, others).excess == 0


def _board_with(
    counts: dict[int, int], stale: frozenset[int] = frozenset(), shut: frozenset[int] = frozenset()
) -> LoadBoard:
    board = LoadBoard(8)
    now = now_ms()
    for slot, count in counts.items():
        board.counts[slot] = count
        board.beats[slot] = now - 10 * STALE_MS if slot in stale else now
        board.gates[slot] = slot not in shut
    return board


def test_siblings_are_the_live_slots_but_ours_within_the_pool() -> None:
    board = _board_with(
        {0: 9, 1: 4, 2: 7, 3: 1, 4: 3, 6: 2}, stale=frozenset({3}), shut=frozenset({4})
    )
    board.clear(2)  # withdrawn: stopped taking connections
    balance = Balance(board, slot=0, slots=6)  # slot 6 lies beyond server_limit
    live, accepting = balance.siblings()
    assert (sorted(live), accepting) == ([3, 4], [4])
    assert balance.assess(9) == Share(limit=4 + 1, excess=9 - 5 - 1)
    assert balance.limit == 5


def test_publish_beat_and_withdraw_write_only_our_slot() -> None:
    board = LoadBoard(4)
    balance = Balance(board, slot=2, slots=4)
    balance.publish(17)
    balance.beat()
    balance.publish_gate(True)
    assert board.counts.tolist() == [0, 0, 17, 0]
    assert board.gates.tolist() == [0, 0, 1, 0]
    assert abs(board.beats[2] - now_ms()) < 1000
    assert board.beats.tolist().count(0) == 3
    balance.withdraw()
    assert board.counts.tolist() == board.beats.tolist() == board.gates.tolist() == [0, 0, 0, 0]


def test_a_slot_beyond_the_board_holds_no_balance() -> None:
    board = LoadBoard(4)
    assert board.holds(3) and not board.holds(4) and not board.holds(-1)
    board.clear(9)  # harmless


def test_the_board_is_shared_with_forked_workers() -> None:
    board = LoadBoard()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            Balance(board, slot=5, slots=64).publish(123)
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    assert board.counts[5] == 123
