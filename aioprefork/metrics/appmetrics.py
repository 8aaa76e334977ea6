"""Application metrics: what an app registers with prometheus-client in its workers, in our scrape.

Users do nothing special. They use prometheus_client as usual in the app::

    from prometheus_client import Counter
    ORDERS = Counter("shop_orders", "Orders placed", ["kind"])   # module level, or anywhere
    ...
    ORDERS.labels("web").inc()

and their series appear in the master's `/metrics` next to the aioprefork_* ones, summed over the
workers, so no second exporter (and no per-worker scrape) is needed. This is prometheus-client's
multiprocess mode, managed by the master:

1. `prepare()` runs in the master BEFORE the first fork. It creates a fresh private directory
   (mode 0700, under `dir_parent`, else under an existing PROMETHEUS_MULTIPROC_DIR, else the
   system temp dir) and points PROMETHEUS_MULTIPROC_DIR at it, so every worker writes its values
   to mmap files there. prometheus_client picks its value class when it is first imported; if the
   master imported it already, `prepare()` re-selects it too, so forked workers inherit it.
2. `collector()` returns a collector over that directory (prometheus-client's
   MultiProcessCollector, made at the first collect); the master passes it to
   open_metrics_server(..., registry_extra=collector()).
3. `mark_dead(pid)` runs in the master when a worker exits: the dead worker's live gauges
   (multiprocess_mode "livesum", "liveall", "livemax", "livemin", "livemostrecent") disappear, while
   its counters and histograms stay in the sum, so app counters never go backwards either.

prometheus_client is imported only when it has work to do (a scrape, a dead worker that left
files), never just to start: whatever the master imports is in every worker it forks.
4. `cleanup()` at master exit removes the directory and restores the environment.

Caveats are prometheus-client's: Gauges need a `multiprocess_mode` (default "all" adds a `pid`
label; prefer "livesum" or "max"), custom collectors and Info/Enum metrics are not supported in
multiprocess mode, and app metric names must not start with `aioprefork_`. Our own aioprefork_*
metrics never come from these files: they come from the scoreboard Snapshot (collector.py).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric
    from prometheus_client.multiprocess import MultiProcessCollector

ENV: Final = "PROMETHEUS_MULTIPROC_DIR"


class _State:
    """The one multiprocess directory this master manages, and the environment it replaced."""

    path: str | None = None
    saved_env: str | None = None


_state = _State()


def _reselect_value_class() -> None:
    """Make metrics created from now on (in this process and forked children) follow ENV.

    A process that has not imported prometheus_client yet reads ENV when it does.
    """
    values: Any = sys.modules.get("prometheus_client.values")
    if values is not None:
        values.ValueClass = values.get_value_class()


def prepare(dir_parent: str | None = None) -> str:
    """Create the private multiprocess directory, export it, return its path. Call before forking.

    Idempotent: a second call (a graceful restart re-reading config) keeps the directory, so app
    counters keep counting across generations.
    """
    if _state.path is not None and os.path.isdir(_state.path):
        return _state.path
    saved = os.environ.get(ENV)
    parent = dir_parent or (saved if saved and os.path.isdir(saved) else None)
    path = tempfile.mkdtemp(prefix="aioprefork-metrics-", dir=parent)  # mode 0700
    _state.path, _state.saved_env = path, saved
    os.environ[ENV] = path
    _reselect_value_class()
    return path


def saved_environ() -> str | None:
    """PROMETHEUS_MULTIPROC_DIR as it was before prepare(): what a re-exec'd master starts with
    (master/upgrade.py), so that it makes a directory of its own rather than one inside ours."""
    return _state.saved_env


def directory() -> str | None:
    """The prepared directory, or None before prepare() / after cleanup()."""
    return _state.path


class AppCollector:
    """Every worker's files merged at each collect, by prometheus-client's MultiProcessCollector.

    The merger is made at the first collect, so registering this collector imports nothing.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._merger: MultiProcessCollector | None = None

    def collect(self) -> Iterable[Metric]:
        if self._merger is None:
            from prometheus_client.multiprocess import MultiProcessCollector

            self._merger = MultiProcessCollector(None, path=self.path)  # type: ignore[no-untyped-call]
        return self._merger.collect()  # type: ignore[no-any-return, no-untyped-call]


def collector() -> AppCollector:
    """A collector that merges every worker's files; register it next to ours."""
    if _state.path is None:
        raise RuntimeError("appmetrics.prepare() must run before collector()")
    return AppCollector(_state.path)


def mark_dead(pid: int) -> None:
    """A worker exited: drop its live gauges; its counters stay in the totals."""
    path = _state.path
    if path is None or not glob.glob(os.path.join(glob.escape(path), f"*_{pid}.db")):
        return  # it wrote no metric file (`<kind>_<pid>.db`): its app made no metric
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


def cleanup() -> None:
    """At master exit: remove the directory and restore PROMETHEUS_MULTIPROC_DIR as it was."""
    path, saved = _state.path, _state.saved_env
    if path is None:
        return
    _state.path = _state.saved_env = None
    if saved is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = saved
    _reselect_value_class()
    shutil.rmtree(path, ignore_errors=True)
