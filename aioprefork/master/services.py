"""The master-only services: the control socket, the metrics listener, the app-metrics directory.

Opened once in BOOTING, after the pid file and before the first fork and the privilege drop (so a
root master can chown them to --user), and closed once at exit, after every worker is gone.
Invariants: no worker keeps a service (the child closes every inherited fd, master/fork.py);
a control socket nobody asked for (no ctl_socket, no pid_file) that cannot be bound is a
warning, not a BOOTING failure, because signals still work; closing never raises.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
from typing import TYPE_CHECKING

from aioprefork.config.model import Config
from aioprefork.errors import BindError, UserError
from aioprefork.master import daemon

if TYPE_CHECKING:
    from aioprefork.control.server import ControlServer, Handler
    from aioprefork.metrics.http import InFlightFn, MetricsServer, SnapshotFn

log = logging.getLogger("aioprefork.server")


class Services:
    """What the master serves itself (not the workers' listeners); one instance per master."""

    def __init__(self) -> None:
        self.control: ControlServer | None = None
        self.metrics: MetricsServer | None = None
        self.appmetrics = False  # the app-metrics directory exists and is ours to clean up
        self.in_flight: InFlightFn | None = None  # /server-status?requests (the arbiter's)

    async def open(
        self,
        config: Config,
        owner: tuple[int, int] | None,
        handler: Handler,
        snapshot: SnapshotFn,
        *,
        metrics_bind_given: bool = True,
    ) -> None:
        """Control socket, then app metrics and the metrics listener. UserError: BOOTING fails.

        `metrics_bind_given`: the operator chose the metrics address. When they did not and the
        default one is taken (a second local server, an OpenTelemetry exporter: 9464 is its
        default too), the server runs without metrics and says so in one line."""
        await self._open_control(config, owner, handler)
        await self._open_metrics(config, owner, snapshot, metrics_bind_given)

    async def _open_control(
        self, config: Config, owner: tuple[int, int] | None, handler: Handler
    ) -> None:
        from aioprefork.control.server import open_control_server

        path = daemon.ctl_socket_path(config)
        try:
            if daemon.is_default_ctl_socket(config):
                daemon.private_dir(os.path.dirname(path))  # never a path others could squat
            self.control = await open_control_server(path, handler, owner=owner)
        except UserError as exc:
            if config.ctl_socket or config.pid_file:
                raise  # asked for explicitly: a BOOTING failure
            log.warning("no control socket (%s); signals still work", exc)

    async def _open_metrics(
        self,
        config: Config,
        owner: tuple[int, int] | None,
        snapshot: SnapshotFn,
        metrics_bind_given: bool,
    ) -> None:
        from aioprefork.metrics import appmetrics

        directory = appmetrics.prepare()
        self.appmetrics = True
        if owner is not None and os.geteuid() == 0:
            os.chown(directory, *owner)  # workers write their app metrics there as --user
        if config.metrics:
            from aioprefork.metrics.http import open_metrics_server

            try:
                self.metrics = await open_metrics_server(
                    config.metrics_bind,
                    snapshot,
                    registry_extra=appmetrics.collector(),
                    in_flight=self.in_flight,
                )
            except BindError as exc:
                cause = exc.__cause__
                in_use = isinstance(cause, OSError) and cause.errno == errno.EADDRINUSE
                if metrics_bind_given or not in_use:
                    raise
                log.warning(
                    "metrics: the default address %s is in use (another server, or an"
                    " OpenTelemetry exporter?): serving without /metrics; choose a free one with"
                    " --metrics-bind HOST:PORT, or turn them off with --no-metrics",
                    config.metrics_bind,
                )

    async def hand_over(self) -> None:
        """ctl upgrade: free the control socket's path and the metrics port for the new master.
        Connections in flight (the `ctl upgrade` waiting for its outcome) stay open."""
        if self.control is not None:
            self.control.stop_listening()
            self.control = None
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                await self.metrics.close()
            self.metrics = None

    async def take_back(self, config: Config, handler: Handler, snapshot: SnapshotFn) -> None:
        """The upgrade failed: answer on the control socket and the metrics port again."""
        try:
            await self._open_control(config, None, handler)
            await self._open_metrics(config, None, snapshot, metrics_bind_given=False)
        except UserError as exc:
            log.error("after the failed upgrade: %s", exc)

    def worker_exited(self, pid: int) -> None:
        """Drop a dead worker's live app gauges (its counters stay in the sum)."""
        if self.appmetrics:
            from aioprefork.metrics import appmetrics

            appmetrics.mark_dead(pid)

    async def close(self) -> None:
        for server in (self.control, self.metrics):
            if server is not None:
                with contextlib.suppress(Exception):
                    await server.close()
        if self.appmetrics:
            from aioprefork.metrics import appmetrics

            appmetrics.cleanup()
