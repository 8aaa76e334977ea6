"""The administrator's commands and the one table mapping signals to them (nginx `signals[]`).

The arbiter's signal handlers only enqueue `SIGNALS[sig]`; the control socket enqueues the same
`Command`s by their `ctl` word; `ctl`'s pidfile fallback sends `SIGNAL_FOR[command]`. One table, so
the CLI, the runtime and the docs cannot disagree.
"""

from __future__ import annotations

import enum
import signal
from collections.abc import Mapping
from typing import Final


class Command(enum.Enum):
    STOP = "stop"  # TERM/INT: drain within graceful_timeout, then exit
    STOP_NOW = "stop-now"  # QUIT: abort in-flight requests
    RESTART = "restart"  # HUP: re-read config, stop every worker now, new generation
    GRACEFUL = "graceful"  # USR1: new generation first, then drain the old one
    GRACEFUL_STOP = "graceful-stop"  # WINCH: like STOP with no timeout
    SCALE_UP = "scale-up"  # TTIN: min_workers += 1
    SCALE_DOWN = "scale-down"  # TTOU: min_workers -= 1
    REOPEN_LOGS = "reopen-logs"
    DUMP = "dump"  # ctl only: one worker's live stacks
    SET = "set"  # ctl only: a live setting (config/live.py)
    UPGRADE = "upgrade"  # USR2: re-exec the master with its listeners (master/upgrade.py)


SIGNALS: Final[Mapping[signal.Signals, Command]] = {
    signal.SIGTERM: Command.STOP,
    signal.SIGINT: Command.STOP,
    signal.SIGQUIT: Command.STOP_NOW,
    signal.SIGHUP: Command.RESTART,
    signal.SIGUSR1: Command.GRACEFUL,
    signal.SIGUSR2: Command.UPGRADE,
    signal.SIGWINCH: Command.GRACEFUL_STOP,
    signal.SIGTTIN: Command.SCALE_UP,
    signal.SIGTTOU: Command.SCALE_DOWN,
}

# The signal `ctl` sends when the control socket is absent (apachectl -k fallback).
SIGNAL_FOR: Final[Mapping[Command, signal.Signals]] = {
    Command.STOP: signal.SIGTERM,
    Command.STOP_NOW: signal.SIGQUIT,
    Command.RESTART: signal.SIGHUP,
    Command.GRACEFUL: signal.SIGUSR1,
    Command.GRACEFUL_STOP: signal.SIGWINCH,
    Command.SCALE_UP: signal.SIGTTIN,
    Command.SCALE_DOWN: signal.SIGTTOU,
    Command.REOPEN_LOGS: signal.SIGUSR1,  # Apache reopens logs on a graceful restart
    Command.UPGRADE: signal.SIGUSR2,
}
