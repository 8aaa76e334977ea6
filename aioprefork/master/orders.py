"""Orders to the master, and the control socket's side of them (docs/architecture.md#signals-and-ctl).

An order is what the arbiter's queue carries: a bare `Command` (from a signal handler, which only
enqueues), a `Job` (a `ctl` request, which streams progress back), or a marker string (`REAP` from
SIGCHLD, `WAKE` when a worker changed state). `answer()` is the control socket's handler: it turns
one request into a Job, enqueues it and relays the Job's replies.

Invariants: nothing here changes the pool or the master's state (master/commands.py carries the
orders out); a Job sends exactly one final reply ({"ok": ...}) and nothing after it; a bad request
gets its error reply without reaching the queue; `status` is answered at once, never queued.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aioprefork.master.signals import Command
from aioprefork.snapshot import InFlight, Snapshot

log = logging.getLogger("aioprefork.server")

REAP: Final = "reap"  # queue marker from the SIGCHLD handler
WAKE: Final = "wake"  # queue marker: a worker changed state, check progress now
CTL_WORDS: Final = {
    "graceful": Command.GRACEFUL,
    "restart": Command.RESTART,
    "graceful-stop": Command.GRACEFUL_STOP,
    "reopen-logs": Command.REOPEN_LOGS,
    "dump": Command.DUMP,
    "set": Command.SET,
    "upgrade": Command.UPGRADE,
}


@dataclass(eq=False)
class Job:
    """One order in flight: progress lines, then exactly one final reply (read by `ctl`; for a
    signal nobody reads them, and the log has them)."""

    command: Command
    args: Mapping[str, Any] = field(default_factory=dict)
    replies: asyncio.Queue[dict[str, Any]] = field(default_factory=asyncio.Queue)
    done: bool = False

    def progress(self, text: str) -> None:
        log.info("%s", text)
        if not self.done:
            self.replies.put_nowait({"progress": text})

    def finish(self, ok: bool, text: str) -> None:
        (log.info if ok else log.error)("%s", text)
        if not self.done:
            self.done = True
            reply = {"ok": True, "result": text} if ok else {"ok": False, "error": text}
            self.replies.put_nowait(reply)


Order = Command | Job | str


def command_for(request: Mapping[str, Any]) -> Command | str:
    """The Command a `ctl` request (other than `status`) asks for, or why it is refused."""
    cmd = request.get("cmd")
    if cmd == "stop":
        return Command.STOP_NOW if request.get("now") else Command.STOP
    if cmd == "scale":
        n = str(request.get("n", ""))
        if not n.lstrip("+-").isdigit():
            return f"scale: bad n {n!r}: expected +1, -1 or a count"
        return Command.SCALE_DOWN if n.startswith("-") else Command.SCALE_UP
    if isinstance(cmd, str) and cmd in CTL_WORDS:
        return CTL_WORDS[cmd]
    return f"unknown command {cmd!r}"


async def answer(
    request: Mapping[str, Any],
    submit: Callable[[Order], None],
    snapshot: Callable[[], Snapshot],
    in_flight: Callable[[], Awaitable[InFlight]] | None = None,
    live_settings: Callable[[], dict[str, str]] | None = None,
) -> AsyncIterator[dict[str, Any]]:
    """The `ctl` handler: status at once (with the requests in flight when asked: a second at
    most); pool changes stream progress, then one final reply."""
    if request.get("cmd") == "status":
        reply = {"ok": True, "snapshot": snapshot().to_json()}
        if request.get("requests") and in_flight is not None:
            reply["requests"] = (await in_flight()).to_json()
        yield reply
        return
    if request.get("cmd") == "settings":
        yield {"ok": True, "settings": live_settings() if live_settings is not None else {}}
        return
    command = command_for(request)
    if isinstance(command, str):
        yield {"ok": False, "error": command}
        return
    job = Job(command, args=dict(request))
    submit(job)
    while True:
        reply = await job.replies.get()
        yield reply
        if "ok" in reply:
            return
