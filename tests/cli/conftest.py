"""Fixtures of the CLI/control tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support import short_tmpdir


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    """A short directory under /tmp (AF_UNIX paths are limited to 107 bytes)."""
    with short_tmpdir() as path:
        yield path
