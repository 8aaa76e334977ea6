"""Processes the tests start: the installed `aioprefork` script, a clean environment, a
process's children (from /proc) and killing a whole process group by its leader's pid."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from pathlib import Path
from typing import Final

REPO: Final = Path(__file__).resolve().parents[2]
# The console script of the environment running the tests (a venv's bin, beside its python).
AIOPREFORK: Final = str(Path(sys.executable).with_name("aioprefork"))


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without any AIOPREFORK_* setting, wide enough that --help never wraps."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIOPREFORK_")}
    env.update(COLUMNS="250", TERM="dumb", NO_COLOR="1")
    env.update(extra)
    return env


def children(pid: int) -> dict[int, str]:
    """{pid: command line} of the live (non-zombie) children of `pid`, from /proc."""
    found: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_bytes()
            fields = stat[stat.rindex(b")") + 2 :].split()
            if int(fields[1]) != pid or fields[0] == b"Z":
                continue
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        found[int(entry)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def kill_group(pid: int) -> None:
    """SIGKILL the process group led by `pid` (a master started with start_new_session, and the
    workers it forked); nothing if it is gone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
