"""The master's and each slot's state machines, written as tables (h11 `_state.py` style).

Rule 1: every state change of the master or of a slot goes through `advance()` /
`advance_slot()`; nothing assigns a state directly. Rule 2: this module knows nothing of
processes, signals or time; the arbiter decides *when* a trigger happened, these tables decide
*what* it means. A trigger that the table does not list for the current state is a bug in the
caller and raises IllegalTransition; that is how impossible orders ("RUNNING after EXITED")
surface in tests instead of in production.

The tables, rendered by `render()` (tests/master/test_states.py keeps this text in sync):

    master: booting --bound--> starting
    master: booting --stop--> stopping
    master: booting --halt--> halted
    master: starting --min_ready--> running
    master: starting --stop--> stopping
    master: starting --halt--> halted
    master: running --restart--> restarting
    master: running --stop--> stopping
    master: running --halt--> halted
    master: restarting --restarted--> running
    master: restarting --stop--> stopping
    master: restarting --halt--> halted
    master: stopping --all_exited--> exited
    master: stopping --halt--> halted
    slot: starting --ready--> ready
    slot: starting --stop--> stopping
    slot: starting --exit--> exited
    slot: ready --stop--> stopping
    slot: ready --exit--> exited
    slot: stopping --exit--> exited
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Final


class IllegalTransition(RuntimeError):
    """A trigger arrived in a state whose table has no row for it: a bug in the caller."""


class MasterState(enum.Enum):
    BOOTING = "booting"  # config, listeners, control socket, pidfile, privileges
    STARTING = "starting"  # first workers forked, fewer than min_workers READY
    RUNNING = "running"
    RESTARTING = "restarting"  # a HUP or USR1 generation change is in progress
    STOPPING = "stopping"  # listeners closed, workers draining
    EXITED = "exited"
    HALTED = "halted"  # no worker could boot (exit 3) or an unrecoverable master error


class MasterTrigger(enum.Enum):
    BOUND = "bound"
    MIN_READY = "min_ready"
    RESTART = "restart"
    RESTARTED = "restarted"  # done, or rolled back: either way the pool serves again
    STOP = "stop"
    ALL_EXITED = "all_exited"
    HALT = "halt"


class SlotState(enum.Enum):
    STARTING = "starting"  # values equal snapshot.STARTING/READY/STOPPING
    READY = "ready"
    STOPPING = "stopping"
    EXITED = "exited"


class SlotTrigger(enum.Enum):
    READY = "ready"  # the worker sent Ready
    STOP = "stop"  # we told it to stop (graceful, immediate, abort)
    EXIT = "exit"  # reaped


M, T = MasterState, MasterTrigger
MASTER_TRANSITIONS: Final[Mapping[tuple[MasterState, MasterTrigger], MasterState]] = {
    (M.BOOTING, T.BOUND): M.STARTING,
    (M.BOOTING, T.STOP): M.STOPPING,
    (M.BOOTING, T.HALT): M.HALTED,
    (M.STARTING, T.MIN_READY): M.RUNNING,
    (M.STARTING, T.STOP): M.STOPPING,
    (M.STARTING, T.HALT): M.HALTED,
    (M.RUNNING, T.RESTART): M.RESTARTING,
    (M.RUNNING, T.STOP): M.STOPPING,
    (M.RUNNING, T.HALT): M.HALTED,
    (M.RESTARTING, T.RESTARTED): M.RUNNING,
    (M.RESTARTING, T.STOP): M.STOPPING,
    (M.RESTARTING, T.HALT): M.HALTED,
    (M.STOPPING, T.ALL_EXITED): M.EXITED,
    (M.STOPPING, T.HALT): M.HALTED,
}

S, ST = SlotState, SlotTrigger
SLOT_TRANSITIONS: Final[Mapping[tuple[SlotState, SlotTrigger], SlotState]] = {
    (S.STARTING, ST.READY): S.READY,
    (S.STARTING, ST.STOP): S.STOPPING,
    (S.STARTING, ST.EXIT): S.EXITED,
    (S.READY, ST.STOP): S.STOPPING,
    (S.READY, ST.EXIT): S.EXITED,
    (S.STOPPING, ST.EXIT): S.EXITED,
}
del M, T, S, ST

TERMINAL: Final = frozenset({MasterState.EXITED, MasterState.HALTED})


def advance(state: MasterState, trigger: MasterTrigger) -> MasterState:
    try:
        return MASTER_TRANSITIONS[state, trigger]
    except KeyError:
        raise IllegalTransition(
            f"master: no transition from {state.value} on {trigger.value}"
        ) from None


def advance_slot(state: SlotState, trigger: SlotTrigger) -> SlotState:
    try:
        return SLOT_TRANSITIONS[state, trigger]
    except KeyError:
        raise IllegalTransition(
            f"slot: no transition from {state.value} on {trigger.value}"
        ) from None


def allowed(state: MasterState, trigger: MasterTrigger) -> bool:
    return (state, trigger) in MASTER_TRANSITIONS


def render() -> str:
    """Both tables as text, one transition per line (embedded in this module's docstring)."""
    lines = [
        f"master: {s.value} --{t.value}--> {n.value}" for (s, t), n in MASTER_TRANSITIONS.items()
    ]
    lines += [f"slot: {s.value} --{t.value}--> {n.value}" for (s, t), n in SLOT_TRANSITIONS.items()]
    return "\n".join(lines)
