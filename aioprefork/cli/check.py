"""What `check-config` checks beyond the values themselves, and how it explains the pool.

`serve` refuses some things only when it gets to them: a listen address whose host does not
resolve, an app that cannot be imported. check-config does them first (apachectl -t), each
refusal ONE line: the binds are resolved here, and the app is imported in a child process, so
that nothing the app does at import (threads, connections, signal handlers, sys.modules) leaks
into this one. Binding is not tried: the server being checked may be the one holding the port.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Final

from aioprefork.config.model import Config
from aioprefork.errors import AppLoadError, BindError

PROBE_MARK: Final = "aioprefork-probe: "  # the child's verdict line on stderr


def resolve_binds(config: Config) -> None:
    """Every TCP listen address resolves (what bind_all and the metrics listener will ask
    getaddrinfo), the metrics address included. BindError."""
    addresses = [a for a in config.binds() if not a.startswith(("unix:", "fd://"))]
    if config.metrics:
        addresses.append(config.metrics_bind)
    for address in addresses:
        host, _, port = address.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        try:
            socket.getaddrinfo(
                host or None, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
            )
        except socket.gaierror as exc:
            raise BindError(f"cannot bind {address}: unknown host ({exc.strerror})") from None


def import_app(config: Config, timeout: float) -> None:
    """Import config.app as a worker would, in a child process. AppLoadError, one line."""
    command = [sys.executable, "-c", "from aioprefork.cli.check import probe; probe()"]
    command += [config.app, config.app_dir, "factory" if config.factory else ""]
    try:
        child = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        raise AppLoadError(
            f"importing app {config.app!r} took more than boot_timeout ({timeout:g}s)"
        ) from None
    if child.returncode == 0:
        return
    verdicts = [line for line in child.stderr.splitlines() if line.startswith(PROBE_MARK)]
    if verdicts:
        raise AppLoadError(verdicts[-1][len(PROBE_MARK) :])
    last = (child.stderr.strip().splitlines() or ["no output"])[-1]
    raise AppLoadError(
        f"importing app {config.app!r} ended the process (exit {child.returncode}): {last}"
    )


def probe() -> None:
    """The child: `python -c ... APP APP_DIR [factory]`; exit 0 when the app loads."""
    from aioprefork.asgi.loader import load_app

    app, app_dir, factory = sys.argv[1:4]
    try:
        load_app(app, factory=factory == "factory", app_dir=app_dir)
    except AppLoadError as exc:
        print(f"{PROBE_MARK}{exc}", file=sys.stderr, flush=True)
        os._exit(2)  # no atexit handlers, no threads joined: whatever the app started stops here
    os._exit(0)


def describe_pool(config: Config) -> list[str]:
    """How the pool will be sized, in words (check-config prints these under the table)."""
    if config.workers == 0:
        return ["pool: none; workers = 0 serves in this process, without a master (debugging)"]
    grow = (
        f"grows with load up to max_workers = {config.max_workers}, and retires idle workers "
        f"when more than max_spare_slots = {config.max_spare_slots} connection slots are free, "
        f"never below {config.min_workers}"
        if config.max_workers > config.min_workers
        else "never grows (max_workers = min_workers)"
    )
    if config.min_workers >= config.workers:
        return [
            f"pool: {config.min_workers} workers always (min_workers = {config.min_workers}); "
            f"it {grow}.",
            "pool: for Apache's spare pool, where idle workers retire down to a smaller floor, "
            "set min_workers below workers (e.g. --min-workers 1).",
        ]
    return [
        f"pool: starts {config.workers} workers; Apache's spare pool: it keeps "
        f"{config.min_spare_slots}..{config.max_spare_slots} free connection slots "
        f"(min_spare_slots..max_spare_slots), so it {grow}.",
    ]


def live_settings(config: Config, timeout: float = 1.0) -> dict[str, str]:
    """The `ctl set` overrides of the server running with this configuration, if one answers on
    its control socket ({} otherwise): check-config shows what is in force, labelled "ctl"."""
    from aioprefork.control import protocol
    from aioprefork.master.daemon import ctl_socket_path

    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout)
            sock.connect(ctl_socket_path(config))
            sock.sendall(protocol.encode(protocol.request("settings")))
            decoder = protocol.FrameDecoder()
            while True:
                data = sock.recv(65536)
                if not data:
                    return {}
                for frame in decoder.feed(data):
                    settings = frame.get("settings")
                    if frame.get("ok") and isinstance(settings, dict):
                        return {str(k): str(v) for k, v in settings.items()}
                    return {}
    except (OSError, ValueError):
        return {}
