"""The test tiers: every test carries exactly one of the markers declared in pyproject.toml.

    pure        decisions over plain data: no event loop, socket or process (`make unit`)
    in-process  a real event loop and real loopback sockets, inside the test process
    process     real processes: the CLI, a master and its workers, forks
    deploy      containers, HAProxy, systemd (needs `make system-deps`)

A test module may declare its tier itself (`pytestmark = pytest.mark.pure`); otherwise the
tables below give it one: by file first, then by folder. A new folder must be added to FOLDERS
(collection fails loudly until it is), so no test runs without a tier.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

TIERS: Final = ("pure", "in_process", "process", "deploy")
HERE: Final = Path(__file__).resolve().parent

# folder under tests/ -> the tier of its files, unless FILES says otherwise
FOLDERS: Final[dict[str, str]] = {
    "unit": "pure",
    "cli": "process",
    "master": "process",
    "metrics": "in_process",
    "protocol": "in_process",
    "pathsend": "in_process",
    "tls": "in_process",
    "websocket": "in_process",
    "worker": "process",
    "bench": "process",
    "deploy": "deploy",
    "http2": "in_process",
    "hotpath": "process",
    # the folders of the package layout (docs/architecture.md#layers) the tests are moving to
    "http": "in_process",
    "wire": "pure",
    "channel": "pure",
    "config": "pure",
    "asgi": "pure",
    "control": "in_process",
}
FILES: Final[dict[str, str]] = {
    "worker/test_balance.py": "pure",
    "asgi/test_lifespan.py": "in_process",
    "unit/test_listeners.py": "in_process",
    "http/test_connstate.py": "in_process",
    "cli/test_argv.py": "pure",
    "cli/test_render.py": "pure",
    "control/test_protocol.py": "pure",
    "cli/test_reference.py": "pure",
    "control/test_server.py": "in_process",
    "channel/test_codec.py": "pure",
    "master/test_maintenance.py": "pure",
    "master/test_states.py": "pure",
    "master/test_scoreboard.py": "pure",
    "channel/test_endpoint.py": "in_process",
    "metrics/test_collector.py": "pure",
    "metrics/test_dashboard.py": "pure",
    "metrics/test_status_page.py": "pure",
    "metrics/test_appmetrics.py": "process",
    "metrics/test_appmetrics_live.py": "process",
    "metrics/test_prometheus_live.py": "process",
    "http/test_build.py": "pure",
    "http/test_http_framing.py": "pure",
    "http/websocket/test_autobahn.py": "process",
    "http/websocket/test_process.py": "process",
    "http2/test_hpack.py": "pure",
    "http2/test_hpack_corpus.py": "pure",
    "http2/test_frames.py": "pure",
    "http2/test_clients.py": "process",
    "http2/test_restart.py": "process",
}


def tier_of(path: Path) -> str:
    """The tier of a test file by the tables (a module's own pytestmark wins over this)."""
    relative = path.resolve().relative_to(HERE).as_posix()
    if relative in FILES:
        return FILES[relative]
    folder = relative.split("/", 1)[0]
    if folder not in FOLDERS:
        raise pytest.UsageError(f"tests/{relative}: add its folder to FOLDERS in {__file__}")
    return FOLDERS[folder]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        own = [mark.name for mark in item.iter_markers() if mark.name in TIERS]
        if not own:
            item.add_marker(getattr(pytest.mark, tier_of(item.path)))
        elif len(set(own)) > 1:
            raise pytest.UsageError(f"{item.nodeid}: more than one tier marker ({own})")
