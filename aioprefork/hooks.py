"""Lifecycle hooks: the operator's own functions, named `module:function` in the config, run at
fixed points of the master's and the workers' lives (gunicorn's server hooks).

    on_starting        master, once, before the listeners are bound; raising stops the start
    when_ready         master, once, when the first generation serves
    on_reload          master, at each graceful or hard restart, with the new config
    on_exit            master, once, just before it exits
    post_fork          each worker, right after fork, before the app is imported
    post_worker_init   each worker, after the app is imported and its lifespan started
    worker_exit        each worker, after it drained, just before it exits

Each hook is a plain function taking one HookContext. One that raises is reported in one line
naming the hook, with its traceback once; in the master that is all (serving goes on), except
for on_starting, whose failure stops the start (exit 3); in a worker, post_fork and
post_worker_init failing is a boot failure, reported like an app that cannot import.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from aioprefork.config.model import Config
from aioprefork.errors import BootError

log = logging.getLogger("aioprefork.app")

MASTER_HOOKS: Final = ("on_starting", "when_ready", "on_reload", "on_exit")
WORKER_HOOKS: Final = ("post_fork", "post_worker_init", "worker_exit")
HOOKS: Final = MASTER_HOOKS + WORKER_HOOKS


class HookError(BootError):
    """A hook could not be resolved, or raised where that stops the start or the boot (exit 3;
    load_checked turns a hook that cannot be resolved into a ConfigError first, exit 2)."""

    def __init__(self, name: str, problem: str) -> None:
        self.name, self.problem = name, problem
        super().__init__(f"hook {name}: {problem}")


@dataclass(frozen=True, slots=True)
class HookContext:
    """What a hook is told: which hook, in which process, for which generation (and slot)."""

    hook: str
    config: Config
    pid: int
    generation: int
    slot: int | None = None  # the worker's slot (worker hooks only)


def resolve(name: str, path: str, app_dir: str) -> Callable[[HookContext], object]:
    """Import `path` ("module:function") for hook `name`. HookError (one line) when it cannot."""
    module_name, colon, attr = path.partition(":")
    if not colon or not module_name.strip() or not attr.strip():
        raise HookError(name, f"expected module:function, e.g. myhooks:{name}")
    directory = os.path.abspath(app_dir)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    try:
        obj: Any = importlib.import_module(module_name.strip())
        for part in attr.strip().split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        why = " ".join(str(exc).split())
        raise HookError(name, f"cannot load {path!r}: {type(exc).__name__}: {why}") from exc
    if not callable(obj) or inspect.iscoroutinefunction(obj):
        raise HookError(name, f"{path!r} is not a plain function taking one HookContext")
    hook: Callable[[HookContext], object] = obj
    return hook


@dataclass(frozen=True, slots=True)
class Hooks:
    """The hooks a config names, imported once."""

    config: Config
    functions: Mapping[str, Callable[[HookContext], object]] = field(default_factory=dict)

    @classmethod
    def load(cls, config: Config, names: tuple[str, ...] = HOOKS) -> Hooks:
        found = {
            name: resolve(name, getattr(config, name), config.app_dir)
            for name in names
            if getattr(config, name)
        }
        return cls(config, found)

    def run(
        self, name: str, *, generation: int, slot: int | None = None, strict: bool = False
    ) -> None:
        """Call hook `name` if configured. A raise is logged once, in one line plus its
        traceback; with `strict` it then becomes a HookError for the caller to stop on."""
        function = self.functions.get(name)
        if function is None:
            return
        context = HookContext(name, self.config, os.getpid(), generation, slot)
        try:
            function(context)
        except Exception as exc:
            problem = f"{getattr(self.config, name)} raised {type(exc).__name__}: {exc}"
            log.error("hook %s: %s", name, problem, exc_info=exc)
            if strict:
                raise HookError(name, problem) from exc
