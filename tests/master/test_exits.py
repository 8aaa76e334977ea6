"""master/exits.py: exit classification and the crash back-off schedule."""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass

import pytest

from aioprefork.master.exits import (
    BOOT_TIMEOUT,
    EARLY_EXIT,
    HUNG,
    TERMINATED,
    CrashRecord,
    ExitCause,
    classify,
    describe,
    died_booting,
    record_crash,
    respawn_delay,
)
from aioprefork.master.states import SlotState


@dataclass
class FakeSlot:  # the two fields classify() reads; a real Slot has them too
    state: SlotState
    retiring: str = ""


def exited(code: int) -> int:
    return code << 8


def killed(sig: signal.Signals) -> int:
    return int(sig)


CASES = [
    # (state, retiring, wait status, cause)
    (SlotState.STARTING, "", exited(3), ExitCause.BOOT_FAILURE),
    (SlotState.STARTING, "", exited(0), ExitCause.BOOT_FAILURE),
    (SlotState.STARTING, "", killed(signal.SIGSEGV), ExitCause.BOOT_FAILURE),
    (SlotState.STOPPING, BOOT_TIMEOUT, killed(signal.SIGKILL), ExitCause.BOOT_FAILURE),
    (SlotState.STOPPING, "shutdown", exited(0), ExitCause.STOPPED),  # stopped while booting
    (SlotState.READY, "", exited(0), ExitCause.CRASH),  # nobody asked it to go
    (SlotState.READY, "", exited(1), ExitCause.CRASH),
    (SlotState.READY, "", killed(signal.SIGKILL), ExitCause.CRASH),
    (SlotState.READY, "max_requests", killed(signal.SIGKILL), ExitCause.RETIRED),
    (SlotState.STOPPING, "max_requests", exited(0), ExitCause.RETIRED),
    (SlotState.STOPPING, "max_memory", exited(0), ExitCause.RETIRED),
    (SlotState.READY, TERMINATED, exited(0), ExitCause.RETIRED),  # a SIGTERM not ours: no crash
    (SlotState.STOPPING, "surplus", exited(0), ExitCause.STOPPED),
    (SlotState.STOPPING, "graceful", killed(signal.SIGKILL), ExitCause.STOPPED),
    (SlotState.STOPPING, HUNG, killed(signal.SIGABRT), ExitCause.HUNG),
    (SlotState.STOPPING, HUNG, killed(signal.SIGKILL), ExitCause.HUNG),
]


@pytest.mark.parametrize(("state", "retiring", "status", "cause"), CASES)
def test_classify(state: SlotState, retiring: str, status: int, cause: ExitCause) -> None:
    assert classify(status, FakeSlot(state, retiring)) is cause


def test_describe_uses_real_wait_statuses() -> None:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert describe(status) == "exit code 3"
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.kill(os.getpid(), signal.SIGKILL)
    _, status = os.waitpid(pid, 0)
    assert describe(status) == "killed by SIGKILL"


def test_schedule() -> None:
    assert [respawn_delay(n) for n in range(1, 12)] == [
        0, 0, 0, 1, 2, 4, 8, 16, 30, 30, 30,
    ]  # fmt: skip


def test_boot_loop_three_at_once_then_back_off() -> None:
    record = CrashRecord()
    now = 1000.0
    not_before = []
    for healthy_for in (None, 0.5, None, 0.9, None, 0.0):  # never READY, or dead right after
        record = record_crash(record, now, healthy_for=healthy_for)
        not_before.append(record.not_before - now)
    assert not_before == [0, 0, 0, 1, 2, 4]
    assert record.consecutive == 6


def test_a_worker_that_served_is_replaced_at_once_and_clears_its_slot() -> None:
    """A request that crashes its worker every 2 s must never earn a back-off (the old schedule
    counted every crash in a row: 1, 2, 4 ... 30 s with no worker left)."""
    now = 1000.0
    record = CrashRecord()
    for _ in range(20):
        record = record_crash(record, now, healthy_for=EARLY_EXIT + 1.0)
        assert record == CrashRecord(0, now)
        now += 2.0
    record = CrashRecord(7, now + 30)
    assert record_crash(record, now, healthy_for=EARLY_EXIT) == CrashRecord(0, now)
    assert died_booting(None) and died_booting(EARLY_EXIT - 0.01)
    assert not died_booting(EARLY_EXIT)
