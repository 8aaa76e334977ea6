"""Lifecycle hooks for tests/master/test_hooks.py: each appends one line to $HOOK_LOG."""

from __future__ import annotations

import os

from aioprefork.hooks import HookContext


def _note(ctx: HookContext) -> None:
    line = f"{ctx.hook} pid={ctx.pid} gen={ctx.generation} slot={ctx.slot} app={ctx.config.app}\n"
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(line)


on_starting = when_ready = on_reload = on_exit = _note
post_fork = post_worker_init = worker_exit = _note


def refuse(ctx: HookContext) -> None:
    _note(ctx)
    raise RuntimeError(f"{ctx.hook} says no")


async def not_plain(ctx: HookContext) -> None:
    """A coroutine function: refused at start (hooks are plain functions)."""
