"""Stall attribution: a thread that notices when the worker's event loop stops turning, and says
where it is stuck, without killing it.

The heartbeat (worker/reporter.py) only lets the master kill a worker whose loop has been silent
for heartbeat_timeout; by then the evidence is gone. Here the loop stamps a clock every quarter
of `stall_threshold` (one call_later, no per-request work), and a daemon thread reads the stamp.
When the stamp is older than the threshold, the thread logs the loop thread's current stack
once for that stall (it is the code holding the loop: a `time.sleep`, a blocking driver, a
CPU-bound handler) and counts it; when the loop turns again it records how long the stall
lasted. The counts reach the master in the next Status frame (loop_stalls, loop_stall_longest).

A stall inside C code that holds the GIL keeps this thread waiting too; it then reports the
stall as it ends, from the first frame the loop thread runs afterwards. faulthandler's SIGABRT
dump at heartbeat_timeout remains the last resort for a loop that never comes back.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
import traceback
from typing import Final

log = logging.getLogger("aioprefork.server")

STACK_LIMIT: Final = 40  # innermost frames logged per stall


class StallWatch:
    """Counts and attributes event-loop stalls longer than `threshold` seconds."""

    def __init__(self, threshold: float, *, slot: int) -> None:
        self.threshold = threshold
        self.slot = slot
        self.stalls = 0  # stalls seen so far
        self.longest = 0.0  # seconds, the longest finished or ongoing stall
        self._stamp = time.monotonic()
        self._period = threshold / 4
        self._stop = threading.Event()
        self._loop_thread = threading.get_ident()
        self._handle: asyncio.TimerHandle | None = None
        self._thread: threading.Thread | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Begin stamping on `loop` (call from the loop's thread) and watching from a thread."""
        self._loop_thread = threading.get_ident()
        self._stamp = time.monotonic()
        self._tick(loop)
        self._thread = threading.Thread(
            target=self._watch, name="aioprefork-stallwatch", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._handle is not None:
            self._handle.cancel()
        if self._thread is not None:
            self._thread.join(timeout=self._period + 1.0)

    def _tick(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stamp = time.monotonic()
        self._handle = loop.call_later(self._period, self._tick, loop)

    def _watch(self) -> None:
        stall_from = 0.0  # the stamp the current stall started from; 0 while the loop turns
        lasted = 0.0  # how long the current stall has lasted so far
        while not self._stop.wait(self._period):
            stamp = self._stamp
            silent = time.monotonic() - stamp
            if silent >= self.threshold:
                if stall_from != stamp:  # a new stall (the loop may have turned in between)
                    if stall_from:
                        self._ended(lasted)
                    stall_from = stamp
                    self.stalls += 1
                    self._report(silent)
                lasted = silent
                self.longest = max(self.longest, silent)
            elif stall_from:
                stall_from = 0.0
                self._ended(lasted)

    def _ended(self, lasted: float) -> None:
        log.warning(
            "worker %d: event loop turned again after a stall of at least %.1fs", self.slot, lasted
        )

    def _report(self, silent: float) -> None:
        frame = sys._current_frames().get(self._loop_thread)
        stack = (
            "".join(traceback.format_stack(frame, limit=STACK_LIMIT)).rstrip()
            if frame is not None
            else "  (the loop thread has no Python frame)"
        )
        log.warning(
            "worker %d: event loop stalled for %.1fs (stall_threshold %gs); the code holding it:\n%s",
            self.slot, silent, self.threshold, stack,
        )  # fmt: skip
