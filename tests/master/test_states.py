"""master/states.py: the tables are the spec; illegal triggers raise; the docstring cannot drift."""

from __future__ import annotations

import itertools

import pytest

from aioprefork import snapshot
from aioprefork.master import states
from aioprefork.master.states import (
    IllegalTransition,
    MasterState,
    MasterTrigger,
    SlotState,
    SlotTrigger,
    advance,
    advance_slot,
)


def test_docstring_renders_the_tables() -> None:
    doc = states.__doc__ or ""
    for line in states.render().splitlines():
        assert f"    {line}\n" in doc


def test_happy_path() -> None:
    state = MasterState.BOOTING
    for trigger, expected in [
        (MasterTrigger.BOUND, MasterState.STARTING),
        (MasterTrigger.MIN_READY, MasterState.RUNNING),
        (MasterTrigger.RESTART, MasterState.RESTARTING),
        (MasterTrigger.RESTARTED, MasterState.RUNNING),
        (MasterTrigger.STOP, MasterState.STOPPING),
        (MasterTrigger.ALL_EXITED, MasterState.EXITED),
    ]:
        state = advance(state, trigger)
        assert state is expected


@pytest.mark.parametrize(
    ("state", "trigger"),
    [
        (s, t)
        for s, t in itertools.product(MasterState, MasterTrigger)
        if (s, t) not in states.MASTER_TRANSITIONS
    ],
)
def test_every_unlisted_master_transition_raises(
    state: MasterState, trigger: MasterTrigger
) -> None:
    with pytest.raises(IllegalTransition):
        advance(state, trigger)
    assert not states.allowed(state, trigger)


def test_terminal_states_have_no_exit() -> None:
    for state in states.TERMINAL:
        assert not any(s is state for s, _ in states.MASTER_TRANSITIONS)


def test_every_live_state_can_halt_and_every_serving_state_can_stop() -> None:
    for state in set(MasterState) - states.TERMINAL:
        assert advance(state, MasterTrigger.HALT) is MasterState.HALTED
    for state in (
        MasterState.BOOTING,
        MasterState.STARTING,
        MasterState.RUNNING,
        MasterState.RESTARTING,
    ):
        assert advance(state, MasterTrigger.STOP) is MasterState.STOPPING


def test_slot_table() -> None:
    assert advance_slot(SlotState.STARTING, SlotTrigger.READY) is SlotState.READY
    assert advance_slot(SlotState.READY, SlotTrigger.STOP) is SlotState.STOPPING
    assert advance_slot(SlotState.STOPPING, SlotTrigger.EXIT) is SlotState.EXITED
    for bad in [
        (SlotState.READY, SlotTrigger.READY),
        (SlotState.STOPPING, SlotTrigger.READY),
        (SlotState.STOPPING, SlotTrigger.STOP),
        (SlotState.EXITED, SlotTrigger.EXIT),
    ]:
        with pytest.raises(IllegalTransition):
            advance_slot(*bad)


def test_slot_state_values_match_the_snapshot_constants() -> None:
    assert SlotState.STARTING.value == snapshot.STARTING
    assert SlotState.READY.value == snapshot.READY
    assert SlotState.STOPPING.value == snapshot.STOPPING
