"""Fixtures for the HTTP/2 tests: the protocol tests' ServerThread (a real WorkerServer on a
loopback port, in a thread) serving tests/http2/apps.py."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from support.serving import TEST_LIMITS, ServerThread, serve

from .apps import app

__all__ = ["ServerThread", "h2server", "serve"]


@pytest.fixture(scope="module")
def h2server() -> Iterator[ServerThread]:
    """One server for a module's frame-level cases (each case opens its own connection)."""
    limits = dataclasses.replace(TEST_LIMITS, write_timeout=2.0)
    server = ServerThread(app, limits).start()
    yield server
    server.stop()
