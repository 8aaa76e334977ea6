"""The legal states of one HTTP connection, written down once (as master/states.py does for slots).

Internal and pure; compiled with the hot path, so the constants are inlined where
http/protocol.py tests them. A connection's state is three fields of HttpProtocol:

* `_state`, where the parser is: IDLE (between messages), HEAD (inside a request head), BODY
  (head done, body may still arrive), DEAD (refused, closing or upgraded: nothing more is parsed);
* `phase`, what http/stats.py publishes: reading, active, keepalive, closing, upgraded;
* the deadline its one timer enforces (`_deadline_kind` while `_deadline` is set, else NONE).

LEGAL lists every combination that may be observed between two callbacks; anything else is a
bug. tests/http/test_connstate.py drives connections through their lifecycles and checks each
observed combination against it. docs/architecture.md#connection draws the same table.
"""

from __future__ import annotations

from typing import Final

# Where the parser is in the current message.
IDLE: Final = 0  # between messages: no byte of the next head yet
HEAD: Final = 1  # inside a request head
BODY: Final = 2  # head done, body (if any) still arriving
DEAD: Final = 3  # refused or upgraded: nothing more is parsed

# Deadline kinds (one timer per connection).
NONE: Final = 0
KEEPALIVE: Final = 1  # keepalive_timeout between requests (or the grace of a graceful stop)
HEADER: Final = 2  # header_timeout: the whole head must arrive (slowloris)
BODY_WAIT: Final = 3  # body_timeout: the next body bytes the app waits for
WRITE: Final = 4  # write_timeout: a closing connection's client must read our answer
LINGER: Final = 5  # a refused client gets this long to read the answer before the close

STATE_NAMES: Final = ("idle", "head", "body", "dead")
DEADLINE_NAMES: Final = ("none", "keepalive", "header", "body", "write", "linger")

# (parser state, phase, deadline) -> when it happens
LEGAL: Final[dict[tuple[int, str, int], str]] = {
    (IDLE, "reading", HEADER): "connection made, no byte of the first request yet",
    (IDLE, "reading", KEEPALIVE): "graceful stop while idle: a moment for a request on the wire",
    (IDLE, "keepalive", KEEPALIVE): "between requests",
    (IDLE, "active", NONE): "the request is read, the app answers",
    (HEAD, "reading", HEADER): "a request head arriving",
    (HEAD, "active", HEADER): "the app answers, the next pipelined head arriving",
    (BODY, "active", BODY_WAIT): "the app runs and waits for body bytes",
    (DEAD, "closing", NONE): "closed, or refused with the answer written",
    (DEAD, "closing", WRITE): "closing, our answer still in the send buffer",
    (DEAD, "closing", LINGER): "refused: FIN sent, reading what the client still sends",
    (DEAD, "active", NONE): "refused behind a running request: its answer goes first",
    (DEAD, "upgraded", NONE): "handed to the WebSocket protocol",
}


def describe(state: int, phase: str, deadline: int) -> str:
    """One combination as text, e.g. 'idle/keepalive/keepalive' (for test failures and logs)."""
    return f"{STATE_NAMES[state]}/{phase}/{DEADLINE_NAMES[deadline]}"


def render() -> str:
    """The table, one row per line (docs/architecture.md#connection shows it)."""
    return "\n".join(f"{describe(*key)}: {why}" for key, why in LEGAL.items())
