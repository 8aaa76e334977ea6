"""Temporary directories with short paths: AF_UNIX socket paths are limited to 107 bytes, and a
test may run from a clone deep in a private directory, so sockets never live under tmp_path."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def short_tmpdir(prefix: str = "apf-") -> Iterator[Path]:
    """A fresh private directory under /tmp, removed with everything in it on exit."""
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
